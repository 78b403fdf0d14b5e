//! Helpers shared by the adversarial tests: a seeded PRNG (timing is random, the choices
//! are reproducible), spawning the binary for SIGKILL, privilege detection, file listings,
//! and building vaults with hand-written payloads.

use std::path::Path;
use std::process::{Command, Output};

use mcp_key_vault::format::Envelope;
use mcp_key_vault::SecretString;
use mcp_key_vault::{crypto, KdfParams};

use crate::common::{bin, Env, PASS};

/// SplitMix64: small, seedable, good enough to pick operations and delays.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `ADVERSARIAL_SEED` if set, else from the clock; the seed is printed so a
    /// failing run's choices can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("ADVERSARIAL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{test}: ADVERSARIAL_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The binary as a `std::process::Command` (which can be spawned and killed), configured
/// like [`Env::cmd`]: the test's directory, a cleared environment, the passphrase.
pub fn spawnable(e: &Env) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(e.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TZ", "UTC")
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS);
    c
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The largest resident set of any waited-for child of this process so far, in KiB.
pub fn children_peak_rss_kib() -> i64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own and pass by valid pointer.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) } == 0;
    assert!(ok, "getrusage");
    r.ru_maxrss
}

/// How to run the binary so that file permissions apply (see `common::unprivileged`).
pub fn unprivileged(e: &Env) -> Option<assert_cmd::Command> {
    crate::common::unprivileged(e).map(|run| run())
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|d| {
            d.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Writes a vault at `e.vault()` whose payload is exactly `plain`, validly encrypted under
/// [`PASS`]: what an attacker who knows the passphrase, or a bug, could leave behind.
pub fn write_sealed_payload(e: &Env, plain: &[u8]) {
    let kdf = KdfParams::MINIMUM;
    let salt = mcp_key_vault::rng::bytes(16);
    let mut nonce = [0u8; 24];
    mcp_key_vault::rng::fill(&mut nonce);
    let key = crypto::derive_key(&SecretString::new(PASS.into()), &salt, &kdf).expect("derive");
    let ad = Envelope::associated_data(&kdf, &salt, &nonce);
    let ciphertext = crypto::seal(&key, &nonce, &ad, plain);
    let bytes = Envelope {
        kdf,
        salt,
        nonce,
        ciphertext,
    }
    .to_bytes();
    std::fs::create_dir_all(e.vault().parent().expect("parent")).expect("mkdir");
    std::fs::write(e.vault(), bytes).expect("write vault");
}

/// `init` with the weakest KDF, plus `extra` arguments (e.g. `--vault P`).
pub fn init_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    v.push("init".into());
    v.extend(crate::common::WEAK.iter().map(|s| s.to_string()));
    v
}
