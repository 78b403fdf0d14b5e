//! Replays every committed fuzz input through the properties the fuzz targets assert,
//! so `cargo test` checks them on every machine without cargo-fuzz or a nightly
//! compiler: each file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes
//! through the same `check_*` function as in `fuzz/fuzz_targets/<target>.rs`.

use std::path::{Path, PathBuf};

use crate::checks;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.expect("read a fuzz input directory").path())
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        out.extend(paths);
    }
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let paths = inputs(target);
    assert!(
        !paths.is_empty(),
        "no committed inputs for the {target} target"
    );
    let failed: Vec<String> = paths
        .iter()
        .filter(|p| {
            let data = std::fs::read(p).expect("read a fuzz input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs break a property (reproduce with \
         `cargo fuzz run {target} <file>`):\n  {}",
        failed.len(),
        paths.len(),
        failed.join("\n  ")
    );
}

#[test]
fn vault_open() {
    replay("vault_open", checks::check_vault_open);
}

#[test]
fn vault_header() {
    replay("vault_header", checks::check_vault_header);
}

#[test]
fn envfile() {
    replay("envfile", checks::check_envfile);
}

#[test]
fn legacy_store() {
    replay("legacy_store", checks::check_legacy_store);
}

#[test]
fn vault2_header() {
    replay("vault2_header", checks::check_vault2_header);
}

#[test]
fn vault2_payload() {
    replay("vault2_payload", checks::check_vault2_payload);
}

#[test]
fn key_format() {
    replay("key_format", checks::check_key_format);
}

/// `set` on an empty value right before a comment keeps the comment out of the value.
#[test]
fn set_on_an_empty_value_before_a_comment_keeps_the_comment_apart() {
    // Found by the `envfile` target (fuzz/regressions/envfile/empty_value_comment): on
    // `K= # note`, `set` wrote `K=v# note`, which every dotenv loader (and `get`) reads as
    // `v# note`.
    let out = mcp_key_manager::envfile::apply(
        b"MCP_API_KEY= # filled by `use`\n",
        &[("MCP_API_KEY", "k1")],
    );
    assert_eq!(out, b"MCP_API_KEY= k1 # filled by `use`\n");
    let f = mcp_key_manager::envfile::EnvFile::parse(&out);
    assert_eq!(f.get("MCP_API_KEY").as_deref(), Some("k1"));
    checks::check_env_set(b"A=#c\r\nB=1", "A", "v");
}

/// A vault header with a salt longer than the documented 16-64 bytes is refused.
#[test]
fn a_salt_longer_than_64_bytes_is_refused() {
    // Found by the header property test (fuzz/regressions/vault_header/salt_65_bytes): the
    // base64 length check admitted 65- and 66-byte salts.
    use mcp_key_vault::{Envelope, KdfParams};
    for len in [64, 65, 66] {
        let env = Envelope {
            kdf: KdfParams {
                memory_kib: 128,
                iterations: 1,
                parallelism: 1,
            },
            salt: vec![7; len],
            nonce: [0; 24],
            ciphertext: vec![0; 16],
        };
        let parsed = Envelope::parse(&env.to_bytes());
        if len <= 64 {
            assert_eq!(parsed.expect("a 64-byte salt is accepted"), env);
        } else {
            let e = parsed.expect_err("a longer salt is refused");
            assert!(
                matches!(e, mcp_key_vault::OpenError::Corrupt { .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("kdf.salt"), "{e}");
        }
    }
}

/// A large JSON array given as a vault is refused without an allocation out of proportion.
#[test]
fn a_large_json_array_as_a_vault_needs_no_large_allocation() {
    // Found with the allocation bound of the `vault_open` property: `Envelope::detect` built
    // a full `serde_json::Value` tree of any file that was not a well-formed vault, so a 1 MB
    // array of zeros cost one 16 MiB allocation (16x; about 4 GiB for a file at the 256 MB
    // size bound), against docs/vault-format-1.md's "a hostile file cannot make the tool
    // allocate gigabytes". Fixed in 0bdf668 (a streaming probe of the top level).
    let mut array = b"[".to_vec();
    for _ in 0..500_000 {
        array.extend_from_slice(b"0,");
    }
    array.extend_from_slice(b"0]");
    let mut nested = b"{\"a\":[".to_vec();
    for _ in 0..500_000 {
        nested.extend_from_slice(b"[],");
    }
    nested.extend_from_slice(b"[]]}");
    for data in [array, nested] {
        // The same check the fuzz target makes, on an input larger than it generates.
        checks::check_vault_open(&data);
    }
}

/// A float in a key's `metadata` (carried over from the Python tool) survives a save exactly.
#[test]
fn metadata_floats_survive_a_save_exactly() {
    // Found by the `vault_open` payload mode: serde_json (without its `float_roundtrip`
    // feature) parses some 17-digit floats one unit in the last place off, so the float
    // changed on every save. Proposed fix: `serde_json = { version = "1", features =
    // ["float_roundtrip"] }`.
    let payload = format!(
        r#"{{"hash_key":"{}","keys":[{{"id":"0123456789abcdef","name":"n",
        "created_at":"2025-01-01T00:00:00Z","secret":"s","hash":"{}",
        "metadata":{{"f":-1.2014861983459543e-147,"g":-2.1347157889423907e-165}}}}]}}"#,
        "11".repeat(32),
        "22".repeat(32)
    );
    let p = mcp_key_vault::Payload::from_json(payload.as_bytes()).expect("parses");
    let out = String::from_utf8(p.to_json().to_vec()).expect("UTF-8");
    assert!(out.contains("-1.2014861983459543e-147"), "{out}");
    assert!(out.contains("-2.1347157889423907e-165"), "{out}");
}
