//! Completions, man page, version, colour and escapes, and README examples.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn completions_for_every_shell() {
    let e = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = e.bare().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let s = String::from_utf8(out.stdout).unwrap();
        assert!(s.len() > 500, "{shell}");
        assert!(
            s.contains("import-legacy") && s.contains("export-verifier"),
            "{shell}"
        );
    }
}

#[test]
fn man_page_is_roff() {
    let e = Env::new();
    e.bare()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie").or(predicate::str::contains(".TH")))
        .stdout(predicate::str::contains("mcp-key-manager"));
}

#[test]
fn version_names_the_vault_format() {
    Env::new()
        .bare()
        .arg("--version")
        .assert()
        .success()
        .stdout(
            predicate::str::contains(env!("CARGO_PKG_VERSION"))
                .and(predicate::str::contains("vault formats: reads 1 and 2")),
        );
}

#[test]
fn no_escape_bytes_when_not_a_terminal_or_no_color() {
    let e = Env::with_vault();
    let (id, _) = e.create("colour", &[]);
    e.create("revoked", &[]);
    for args in [
        vec!["list"],
        vec!["view", &id],
        vec!["check"],
        vec!["history"],
    ] {
        for no_color in [false, true] {
            let mut c = e.cmd();
            if no_color {
                c.env("NO_COLOR", "1");
            }
            let out = c.args(&args).output().unwrap();
            assert!(!out.stdout.contains(&0x1b), "{args:?}");
            assert!(!out.stderr.contains(&0x1b), "{args:?}");
        }
    }
}

/// Colour is for terminals only, and `NO_COLOR` turns it off even there: `list` under a
/// pseudo-terminal (util-linux `script`) shows the status in colour, and plain with
/// `NO_COLOR=1`.
#[test]
fn colour_under_a_terminal_unless_no_color() {
    let e = Env::with_vault();
    e.create("colour", &[]);
    let run = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &format!("{} list", bin().display()), "/dev/null"])
            .current_dir(e.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .env("MCP_KEY_VAULT_PASSPHRASE", PASS);
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().expect("util-linux `script` runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(false);
    assert!(coloured.contains("\x1b[32mactive\x1b[0m"), "{coloured:?}");
    let plain = run(true);
    assert!(
        plain.contains("active") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let e = Env::new();
    e.bare().arg("frobnicate").assert().code(2);
    e.bare().args(["create"]).assert().code(2);
    e.bare().args(["list", "--bogus"]).assert().code(2);
}
