//! Hermetic fixtures shared by the integration test crates: a temporary working directory,
//! the real binary with a cleared environment, and vault edits through the library.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mcp_key_vault::{SecretString, Vault};

/// The passphrase every fixture vault uses.
pub const PASS: &str = "correct horse battery staple";
/// The weakest KDF settings the tool allows, to keep tests quick.
pub const WEAK: [&str; 4] = ["--kdf-memory-kib", "19456", "--kdf-iterations", "2"];

/// A temporary working directory in which the binary runs.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// This user's configuration (trusted vaults, hooks): apart from the working directory,
    /// one per test.
    pub config: tempfile::TempDir,
}

/// The path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-key-manager"))
}

impl Env {
    /// An empty directory, no vault.
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
            config: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// An empty directory with an initialised vault (weakest KDF), copied from a
    /// template made once per test process: a test that is not about `init` does not
    /// pay a process and a key derivation for it.
    pub fn with_vault() -> Env {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let bytes = TEMPLATE.get_or_init(|| {
            let weak = mcp_key_vault::KdfParams::MINIMUM;
            let mut v = Vault::create(&SecretString::new(PASS.into()), weak).expect("vault");
            let init = mcp_key_vault::EventAction::Init;
            v.record(chrono::Utc::now(), init, None, None);
            v.to_bytes()
        });
        let e = Env::new();
        let vault = e.vault();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(vault.parent().expect("parent"))
            .expect("vault directory");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&vault)
            .expect("vault file");
        std::io::Write::write_all(&mut f, bytes).expect("write vault");
        e
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default vault path, as the Python tool had it.
    pub fn vault(&self) -> PathBuf {
        self.path().join("mcp_key_manager/keys.json")
    }

    /// The default env file.
    pub fn env_file(&self) -> PathBuf {
        self.path().join(".env")
    }

    /// The binary, in this directory, with no `MCP_*` variable but the passphrase.
    pub fn cmd(&self) -> Command {
        let mut c = self.bare();
        c.env("MCP_KEY_VAULT_PASSPHRASE", PASS);
        c
    }

    /// The binary with a cleared environment and no passphrase at all.
    pub fn bare(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TZ", "UTC")
            // The user's own configuration (trusted vaults, hooks): one per test.
            .env("MCP_KEY_MANAGER_CONFIG_DIR", self.config.path());
        c
    }

    /// Runs `create` with `--json` and the given extra args; returns (id, key).
    pub fn create(&self, name: &str, extra: &[&str]) -> (String, String) {
        let out = self
            .cmd()
            .args(["create", name, "--json"])
            .args(extra)
            .output()
            .expect("run create");
        assert!(
            out.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("create --json");
        (
            v["id"].as_str().expect("id").to_string(),
            v["key"].as_str().expect("key").to_string(),
        )
    }

    /// Runs a command and parses its stdout as JSON, asserting success.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cmd().args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    /// Opens the vault through the library, lets `f` change it, and saves it.
    pub fn edit_vault(&self, f: impl FnOnce(&mut Vault)) {
        let bytes = std::fs::read(self.vault()).expect("read vault");
        let mut v = Vault::open(&bytes, &SecretString::new(PASS.into())).expect("open vault");
        f(&mut v);
        std::fs::write(self.vault(), v.to_bytes()).expect("write vault");
    }

    /// The vault, opened through the library.
    pub fn open_vault(&self) -> Vault {
        let bytes = std::fs::read(self.vault()).expect("read vault");
        Vault::open(&bytes, &SecretString::new(PASS.into())).expect("open vault")
    }

    pub fn read_env(&self) -> String {
        std::fs::read_to_string(self.env_file()).unwrap_or_default()
    }
}

/// stdout and stderr of an output, as one lossy string (for leak scans).
pub fn all_output(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a test whose prerequisite `what` is `available` may run: `true` when it is;
/// otherwise a local run prints `SKIPPED <what>: <why>` and gets `false` (the test returns
/// early), and a run with `CI=true` fails, since CI installs every tool the tests drive.
pub fn tool_or_skip(what: &str, available: bool, why: impl std::fmt::Display) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what} cannot run: {why}"
    );
    eprintln!("SKIPPED {what}: {why}");
    false
}

/// Whether a `check --json` report holds a finding with this code.
pub fn has_finding(check: &serde_json::Value, code: &str) -> bool {
    check["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["code"] == code))
}

/// Whether this process runs as root (euid 0), from /proc/self/status.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The uid/gid the binary runs as, through `setpriv`, when a test needs file modes to
/// apply and runs as root.
pub const NOBODY: u32 = 65534;

/// Hands `p` and everything below it to `id` (links themselves, not their targets).
pub fn chown_tree(p: &Path, id: u32) {
    std::os::unix::fs::lchown(p, Some(id), Some(id)).expect("chown");
    if p.is_dir() && !p.is_symlink() {
        for entry in std::fs::read_dir(p).expect("read dir") {
            chown_tree(&entry.expect("dir entry").path(), id);
        }
    }
}

/// How to run the binary so that file permissions apply: directly when not root; as
/// `nobody` through `setpriv` when root (root ignores modes); `None` when neither works.
/// When it returns `Some` for root, `e`'s directory has been handed to `nobody`.
pub fn unprivileged(e: &Env) -> Option<Box<dyn Fn() -> Command + '_>> {
    if !is_root() {
        return Some(Box::new(|| e.cmd()));
    }
    let ok = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    println!("note: running as root: the binary runs as uid {NOBODY} via setpriv");
    chown_tree(e.path(), NOBODY);
    Some(Box::new(|| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .current_dir(e.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TZ", "UTC")
            .env("MCP_KEY_VAULT_PASSPHRASE", PASS);
        c
    }))
}

/// A format-2 key (`mkm_<id>_<secret>` and its checksum): right in shape and checksum,
/// whether or not a vault holds it.
pub fn key2(id: &str, secret: &str) -> String {
    let body = format!("mkm_{id}_{secret}");
    let sum = mcp_key_vault::keyfmt::checksum(&body);
    format!("{body}{}", String::from_utf8_lossy(&sum))
}

/// `key` with its character at `at` replaced by another base62 character: a typo.
pub fn typo(key: &str, at: usize) -> String {
    let mut b = key.as_bytes().to_vec();
    b[at] = if b[at] == b'Q' { b'R' } else { b'Q' };
    String::from_utf8(b).expect("ASCII")
}
