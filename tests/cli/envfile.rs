//! The env file corpus: every line but the assignments we own stays byte-identical.

use crate::common::*;

/// (input, expected output) with <K> standing for the new key; `None` where the file is
/// ambiguous to the loaders servers use and `use` must refuse it, untouched.
const CORPUS: &[(&[u8], Option<&str>)] = &[
    (b"", Some("MCP_API_KEY=<K>\nAPI_KEY_REQUIRED=true\n")),
    (
        b"# comment\n\nPORT=8000\n",
        Some("# comment\n\nPORT=8000\nMCP_API_KEY=<K>\nAPI_KEY_REQUIRED=true\n"),
    ),
    (
        b"export MCP_API_KEY=old\nexport API_KEY_REQUIRED=false\n",
        Some("export MCP_API_KEY=<K>\nexport API_KEY_REQUIRED=true\n"),
    ),
    (
        b"MCP_API_KEY=\"old\"\nAPI_KEY_REQUIRED='false'\nZ=1",
        Some("MCP_API_KEY=\"<K>\"\nAPI_KEY_REQUIRED='true'\nZ=1"),
    ),
    (
        b"A=1\r\nMCP_API_KEY=old\r\n# c\r\n",
        Some("A=1\r\nMCP_API_KEY=<K>\r\n# c\r\nAPI_KEY_REQUIRED=true\r\n"),
    ),
    (
        b"MCP_API_KEY=one\nX=2\nMCP_API_KEY=two # dup\n",
        // Assigned twice: refused rather than guessed.
        None,
    ),
    (
        b"NO_NEWLINE=yes",
        Some("NO_NEWLINE=yes\nMCP_API_KEY=<K>\nAPI_KEY_REQUIRED=true\n"),
    ),
    (
        b"  # indented comment\n\tMCP_API_KEY = old\n#MCP_API_KEY=commented\n",
        // Node 20 reads `\tMCP_API_KEY` as the name and glues the indented comment on.
        None,
    ),
    (
        b"BIN=\xff\xfe\nAPI_KEY_REQUIRED=true\n",
        Some("BIN=\u{fffd}\u{fffd}\nAPI_KEY_REQUIRED=true\nMCP_API_KEY=<K>\n"),
    ),
];

#[test]
fn corpus_edits_touch_only_our_assignments() {
    let e = Env::with_vault();
    let (id, key) = e.create("env", &[]);
    for (input, expected) in CORPUS {
        std::fs::write(e.env_file(), input).unwrap();
        let Some(expected) = expected else {
            e.cmd().args(["use", &id]).assert().code(1);
            assert_eq!(&std::fs::read(e.env_file()).unwrap(), input);
            continue;
        };
        e.cmd().args(["use", &id]).assert().success();
        let got = std::fs::read(e.env_file()).unwrap();
        let mut want = expected.replace("<K>", &key).into_bytes();
        // Invalid UTF-8 bytes must survive as the same bytes, not as replacement chars.
        if input.contains(&0xff) {
            want = String::from_utf8(want)
                .unwrap()
                .replace("\u{fffd}\u{fffd}", "\u{1}\u{2}")
                .into_bytes();
            for b in want.iter_mut() {
                if *b == 1 {
                    *b = 0xff;
                } else if *b == 2 {
                    *b = 0xfe;
                }
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(got, want);
    }
}

#[test]
fn a_symlinked_env_file_is_followed() {
    let e = Env::with_vault();
    let (id, key) = e.create("link", &[]);
    std::fs::create_dir(e.path().join("real")).unwrap();
    let target = e.path().join("real/app.env");
    std::fs::write(&target, "A=1\n").unwrap();
    std::os::unix::fs::symlink("real/app.env", e.env_file()).unwrap();
    e.cmd().args(["use", &id]).assert().success();
    assert!(std::fs::symlink_metadata(e.env_file())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        format!("A=1\nMCP_API_KEY={key}\nAPI_KEY_REQUIRED=true\n")
    );
}
