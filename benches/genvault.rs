//! Writes the vault files that `benches/compare.sh` times the CLI against, through the
//! library rather than by thousands of CLI calls. A generator, not a benchmark: it is a
//! bench target only so that it is built with the same optimised profile as the others
//! (`cargo bench --no-run`); without `--out` it does nothing.
//!
//! ```text
//! MCP_KEY_VAULT_PASSPHRASE=... cargo bench --bench genvault -- --out DIR \
//!     [--sizes 10,1000,10000,100000] [--memory-kib 19456] [--iterations 2] [--all-keys 100000]
//!     [--format 1|2]
//! ```
//!
//! `--format 1` writes vaults of the old format (the default is the current one, 2), so
//! one binary can be timed against both.
//!
//! For each size N it writes `DIR/N/keys.json` (a vault of N keys, at the weakest setting
//! the CLI accepts for new vaults unless told otherwise), `DIR/N/id` (the id of the last
//! key: the worst case for an id lookup) and `DIR/N/key` (that key in full, mode 0600, for
//! `verify`). With `--all-keys N`, `DIR/N/all-keys` holds every key of that vault, one per
//! line. These are throwaway benchmark keys; nothing is printed but paths and sizes.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use mcp_key_vault::{KdfParams, SecretString, Vault};

fn write_private(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn main() {
    let out: String = common::arg("--out", String::new());
    if out.is_empty() {
        // A plain `cargo bench` runs every bench target: this one generates files and times
        // nothing, so without a destination it has nothing to do.
        eprintln!("genvault generates vaults, it measures nothing: genvault --out DIR [--sizes 10,1000,...]");
        return;
    }
    let kdf = KdfParams {
        memory_kib: common::arg("--memory-kib", KdfParams::MINIMUM.memory_kib),
        iterations: common::arg("--iterations", KdfParams::MINIMUM.iterations),
        parallelism: common::arg("--parallelism", KdfParams::MINIMUM.parallelism),
    };
    let all_keys: usize = common::arg("--all-keys", 0);
    let format: u32 = common::arg("--format", 2);
    assert!(format == 1 || format == 2, "--format is 1 or 2");
    let pass = SecretString::new(
        std::env::var("MCP_KEY_VAULT_PASSPHRASE")
            .expect("set MCP_KEY_VAULT_PASSPHRASE to the passphrase for the benchmark vaults"),
    );
    // Whole seconds, as every time the CLI writes (records::now).
    let now = mcp_key_vault::records::now();
    for n in common::sizes(&[10, 1000, 10_000, 100_000]) {
        assert!(n > 0, "a benchmark vault needs at least one key");
        let dir = Path::new(&out).join(n.to_string());
        fs::create_dir_all(&dir).expect("create the output directory");
        let (mut vault, keys) = common::build_vault(n, &pass, kdf, now);
        if format == 1 {
            let mut v1 = Vault::create_format1(&pass, kdf).expect("KDF settings in bounds");
            *v1.payload_mut_unchecked() = std::mem::take(vault.payload_mut_unchecked());
            vault = v1;
        }
        let bytes = vault.to_bytes();
        write_private(&dir.join("keys.json"), &bytes);
        let last = vault.keys().last().expect("at least one key");
        write_private(&dir.join("id"), last.id.as_bytes());
        let mut key = keys
            .last()
            .expect("at least one key")
            .expose()
            .as_bytes()
            .to_vec();
        key.push(b'\n');
        write_private(&dir.join("key"), &key);
        if n == all_keys {
            let mut all = Vec::with_capacity(n * 86);
            for k in &keys {
                all.extend_from_slice(k.expose().as_bytes());
                all.push(b'\n');
            }
            write_private(&dir.join("all-keys"), &all);
        }
        println!("{} {} keys {} bytes", dir.display(), n, bytes.len());
    }
}
