//! Leak sweep: every command, in every output format, is run and its
//! stdout and stderr — and the vault files, the verifier files and the history — are
//! scanned for every key (full key and its 64-hex secret), every imported legacy key, and
//! every passphrase. Only `create` and `rotate` stdout may hold the key they just made,
//! and `use --print` stdout the key it was asked for; nothing may ever hold a passphrase.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use super::util::{code, stderr};
use crate::common::{Env, PASS, WEAK};

const NEW_PASS: &str = "a different passphrase, rekeyed";
const WRONG_PASS: &str = "not the passphrase at all";

/// Two keys of the Python tool's format (64 hex, no `mcp_` prefix).
const LEGACY_KEYS: [&str; 2] = [
    "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3",
    "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b",
];

fn legacy_store() -> String {
    serde_json::json!({
        "fd5c5b5177095c73": {
            "key_id": "fd5c5b5177095c73", "key_value": LEGACY_KEYS[0],
            "name": "Production Key", "description": "prod",
            "created_at": "2026-10-01T09:15:00.123456", "expires_at": "2030-01-01T00:00:00",
            "is_active": true, "permissions": ["generate", "info", "health"],
            "metadata": {"owner": "ops"}
        },
        "0a1b2c3d4e5f6a7b": {
            "key_id": "0a1b2c3d4e5f6a7b", "key_value": LEGACY_KEYS[1],
            "name": "Old Key", "description": "",
            "created_at": "2025-01-01T00:00:00", "expires_at": null,
            "is_active": false, "permissions": ["info"], "metadata": {}
        }
    })
    .to_string()
}

/// Every full key of this tool's format in `text`.
fn keys_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| mcp_key_vault::keyfmt::classify(t) != mcp_key_vault::keyfmt::Shape::Malformed)
        .filter(|t| t.starts_with("mcp_") || t.starts_with("mkm_"))
        .map(str::to_string)
        .collect()
}

struct Run {
    label: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Keys this output may show on stdout.
    allowed: Vec<String>,
}

struct Sweep {
    e: Env,
    runs: Vec<Run>,
    files: Vec<(String, Vec<u8>)>,
    /// Full keys made so far (their secret parts are derived when scanning).
    keys: Vec<String>,
}

impl Sweep {
    /// Runs a configured command, expecting `exit`; stdout may show `allowed` keys.
    fn cmd(&mut self, label: &str, mut c: assert_cmd::Command, exit: i32) -> Output {
        let o = c
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .expect("run");
        assert_eq!(code(&o), exit, "{label}: {}", stderr(&o));
        self.runs.push(Run {
            label: label.to_string(),
            stdout: o.stdout.clone(),
            stderr: o.stderr.clone(),
            allowed: Vec::new(),
        });
        // The vault after every command, too.
        if let Ok(b) = fs::read(self.e.vault()) {
            self.files.push((format!("vault after {label}"), b));
        }
        o
    }

    /// Runs the binary with the passphrase and `args`.
    fn run(&mut self, args: &[&str], exit: i32) -> Output {
        let mut c = self.e.cmd();
        c.args(args);
        self.cmd(&args.join(" "), c, exit)
    }

    /// As [`Sweep::run`] with `stdin`.
    fn run_stdin(&mut self, args: &[&str], stdin: String, exit: i32) -> Output {
        let mut c = self.e.cmd();
        c.args(args).write_stdin(stdin);
        self.cmd(&format!("{} < keys", args.join(" ")), c, exit)
    }

    /// A command that makes a key and prints it: exactly one new key on stdout, which is
    /// then allowed there and added to the secrets.
    fn run_maker(&mut self, args: &[&str]) -> String {
        let o = self.run(args, 0);
        let found = keys_in(&String::from_utf8_lossy(&o.stdout));
        assert_eq!(found.len(), 1, "{args:?} shows exactly one key");
        let key = found[0].clone();
        assert!(!self.keys.contains(&key), "{args:?} printed an old key");
        self.keys.push(key.clone());
        self.runs.last_mut().unwrap().allowed.push(key.clone());
        key
    }

    fn id_of(key: &str) -> String {
        key[4..20].to_string()
    }

    fn file(&mut self, label: &str, p: PathBuf) {
        self.files.push((label.into(), fs::read(&p).expect(label)));
    }
}

#[test]
fn no_command_in_any_format_leaks_a_key_or_the_passphrase() {
    let mut s = Sweep {
        e: Env::new(),
        runs: Vec::new(),
        files: Vec::new(),
        keys: Vec::new(),
    };
    let p = |s: &Sweep, rel: &str| s.e.path().join(rel);

    // -- init, create (human, --json, -q, -u) --
    let mut init = vec!["init", "--json"];
    init.extend(WEAK);
    s.run(&init, 0);
    let mut init_b = vec!["--vault", "b/keys.json", "init"];
    init_b.extend(WEAK);
    s.run(&init_b, 0);
    let alpha = s.run_maker(&["create", "alpha", "-d", "first key"]);
    let beta = s.run_maker(&["create", "beta", "--json"]);
    let gamma = s.run_maker(&["create", "gamma", "-q"]);
    let delta = s.run_maker(&[
        "create", "delta", "-u", "-e", "0", "-p", "info", "-p", "generate", "--json",
    ]);
    let eps = s.run_maker(&["create", "eps", "-e", "1", "-d", "expires soon"]);
    s.run_maker(&["--vault", "b/keys.json", "create", "in b"]);
    let (a, b, g, d, ep) = (
        Sweep::id_of(&alpha),
        Sweep::id_of(&beta),
        Sweep::id_of(&gamma),
        Sweep::id_of(&delta),
        Sweep::id_of(&eps),
    );

    // -- read-only commands, every format --
    for args in [
        &["list"][..],
        &["list", "-a"],
        &["list", "-k"],
        &["list", "--show-keys", "--active-only"],
        &["list", "--json"],
        &["list", "-k", "--json"],
        &["list", "--expiring", "30"],
        &["view", &a],
        &["view", &d, "--json"],
        &["view", &a[..6]],
    ] {
        s.run(args, 0);
    }

    // -- use, use --print, enable-requirement --
    s.run(&["use", &b], 0);
    let o = s.run(&["use", "--print", &g], 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), gamma);
    s.runs.last_mut().unwrap().allowed.push(gamma.clone());
    s.run(&["use", &b, "--json"], 0);
    s.run(&["enable-requirement"], 0);
    s.run(&["enable-requirement", "--json"], 0);

    // -- verify: stdin, --from-env, --verifier; check; export-verifier --
    let wrong_secret = format!("mcp_{a}_{}", "e".repeat(64));
    let mixed = format!(
        "{alpha}\nnot a key\n{beta}\n{wrong_secret}\n{}\n",
        LEGACY_KEYS[0]
    );
    s.run_stdin(&["verify"], mixed.clone(), 1);
    s.run_stdin(&["verify", "--json"], mixed.clone(), 1);
    s.run_stdin(&["verify", "--require", "info"], format!("{alpha}\n"), 0);
    s.run(&["verify", "--from-env"], 0);
    s.run(&["verify", "--from-env", "--json"], 0);
    s.run(&["verify", "--from-env", "--require", "admin"], 1);
    s.run(&["export-verifier", "--out", "ver/verifier.json"], 0);
    s.run(
        &["export-verifier", "--out", "ver/verifier2.json", "--json"],
        0,
    );
    for args in [
        &["verify", "--verifier", "ver/verifier.json"][..],
        &["verify", "--verifier", "ver/verifier.json", "--json"],
    ] {
        let mut c = s.e.bare();
        c.args(args).write_stdin(mixed.clone());
        s.cmd(&format!("{} (no passphrase)", args.join(" ")), c, 1);
    }
    s.run(&["check"], 0);
    s.run(&["check", "--json"], 0);
    s.run(&["check", "--strict"], 1);
    s.run(&["check", "--warn-days", "0", "--json"], 0);

    // -- rotate (every format), grant, deny, revoke, delete --
    let alpha2 = s.run_maker(&["rotate", &a, "--json"]);
    let gamma2 = s.run_maker(&["rotate", &g, "-q"]);
    s.run_maker(&["rotate", &b, "--grace-days", "7"]); // beta is in .env: it follows
    s.run_maker(&["rotate", &ep, "-u", "--grace-days", "1", "--json"]);
    let (a2, g2) = (Sweep::id_of(&alpha2), Sweep::id_of(&gamma2));
    s.run(&["grant", &a2, "admin", "billing:read"], 0);
    s.run(&["deny", &a2, "admin", "--json"], 0);
    s.run(&["revoke", &g2], 0);
    s.run(&["revoke", &a, "--json"], 0);
    s.run(&["delete", &d, "--yes"], 0);
    s.run(&["delete", &ep, "--yes", "--json"], 0);

    // -- failures: their messages must not leak either --
    s.run(&["use", &g2], 1);
    s.run(&["use", "--print", &g2], 1);
    s.run(&["view", "ffffffffffffffff"], 1);
    s.run(&["rotate", &a], 1);
    s.run(&["create", "bad\x1bname"], 2);
    s.run(&["grant", &a2, "NOT VALID"], 2);
    let mut c = s.e.cmd();
    c.env("MCP_KEY_VAULT_PASSPHRASE", WRONG_PASS).arg("list");
    s.cmd("list (wrong passphrase)", c, 3);
    let mut c = s.e.bare();
    c.arg("list");
    s.cmd("list (no passphrase)", c, 3);
    fs::write(p(&s, "pw.txt"), format!("{PASS}\n")).unwrap();
    let mut c = s.e.bare();
    c.args(["--passphrase-file", "pw.txt", "list", "--json"]);
    s.cmd("list --passphrase-file", c, 0);

    // -- history, every format --
    s.run(&["history"], 0);
    s.run(&["history", "--json"], 0);
    s.run(&["history", &a], 0);
    s.run(&["history", &d, "--json"], 0); // a deleted key's history

    // -- rekey there and back --
    fs::write(p(&s, "newpw.txt"), format!("{NEW_PASS}\n")).unwrap();
    let mut rekey = vec!["rekey", "--new-passphrase-file", "newpw.txt"];
    rekey.extend(WEAK);
    s.run(&rekey, 0);
    let mut c = s.e.cmd();
    c.env("MCP_KEY_VAULT_PASSPHRASE", NEW_PASS)
        .args(["list", "-k"]);
    s.cmd("list -k (new passphrase)", c, 0);
    let mut c = s.e.cmd();
    c.env("MCP_KEY_VAULT_PASSPHRASE", PASS).arg("list");
    s.cmd("list (old passphrase after rekey)", c, 3);
    let mut c = s.e.cmd();
    c.env("MCP_KEY_VAULT_PASSPHRASE", NEW_PASS)
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", PASS)
        .args(["rekey", "--json"]);
    s.cmd("rekey --json (back)", c, 0);

    // -- import-legacy (human and --json), then the imported vault --
    for dir in ["legacy", "legacy2"] {
        fs::create_dir(p(&s, dir)).unwrap();
        fs::write(p(&s, &format!("{dir}/keys.json")), legacy_store()).unwrap();
    }
    s.run(&["--vault", "legacy/keys.json", "list"], 4); // refuses, names import-legacy
    let mut imp = vec!["--vault", "legacy/keys.json", "import-legacy"];
    imp.extend(WEAK);
    s.run(&imp, 0);
    let mut imp = vec!["--vault", "legacy2/keys.json", "import-legacy", "--json"];
    imp.extend(WEAK);
    s.run(&imp, 0);
    s.run(&["--vault", "legacy/keys.json", "list", "-k"], 0);
    s.run(&["--vault", "legacy/keys.json", "list", "-k", "--json"], 0);
    s.run(
        &["--vault", "legacy/keys.json", "view", "fd5c", "--json"],
        0,
    );
    s.run(&["--vault", "legacy/keys.json", "history", "--json"], 0);
    s.run_stdin(
        &["--vault", "legacy/keys.json", "verify"],
        format!("{}\n{}\n", LEGACY_KEYS[0], LEGACY_KEYS[1]),
        1,
    );
    s.run(
        &[
            "--vault",
            "legacy/keys.json",
            "export-verifier",
            "--out",
            "ver/legacy.json",
        ],
        0,
    );

    // -- completions, man, help, version --
    s.run(&["completions", "bash"], 0);
    s.run(&["man"], 0);
    s.run(&["--help"], 0);
    s.run(&["-h"], 0);
    s.run(&["--version"], 0);
    for sub in [
        "init",
        "create",
        "list",
        "view",
        "revoke",
        "delete",
        "use",
        "enable-requirement",
        "verify",
        "check",
        "export-verifier",
        "rotate",
        "grant",
        "deny",
        "rekey",
        "history",
        "import-legacy",
        "completions",
        "man",
    ] {
        // With the passphrase file variable set too: clap shows `env` values in help.
        let mut c = s.e.cmd();
        c.env("MCP_KEY_VAULT_PASSPHRASE_FILE", "pw.txt")
            .args([sub, "--help"]);
        s.cmd(&format!("{sub} --help"), c, 0);
        s.run(&["help", sub], 0);
    }

    // -- the files --
    for (label, rel) in [
        ("vault", "mcp_key_manager/keys.json"),
        ("vault b", "b/keys.json"),
        ("imported vault", "legacy/keys.json"),
        ("imported vault 2", "legacy2/keys.json"),
        ("verifier", "ver/verifier.json"),
        ("verifier 2", "ver/verifier2.json"),
        ("legacy verifier", "ver/legacy.json"),
    ] {
        let path = p(&s, rel);
        s.file(label, path);
    }

    // -- the scan --
    let mut secrets: Vec<(String, String)> = Vec::new();
    for k in &s.keys {
        secrets.push((format!("key {}", Sweep::id_of(k)), k.clone()));
        secrets.push((
            format!("secret of {}", Sweep::id_of(k)),
            k[21..].to_string(),
        ));
    }
    for k in LEGACY_KEYS {
        secrets.push(("legacy key".into(), k.to_string()));
    }
    for pw in [PASS, NEW_PASS, WRONG_PASS] {
        secrets.push(("a passphrase".into(), pw.to_string()));
    }
    // The scanner sees a key where one is: create's output holds it before the allowance.
    let shown = String::from_utf8_lossy(
        &s.runs
            .iter()
            .find(|r| r.label.starts_with("create alpha"))
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(shown.contains(&alpha) && shown.contains(&alpha[21..]));

    let mut problems = Vec::new();
    for r in &s.runs {
        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
        for k in &r.allowed {
            out = out.replace(k.as_str(), "<allowed key>");
        }
        let err = String::from_utf8_lossy(&r.stderr);
        for (what, secret) in &secrets {
            if out.contains(secret.as_str()) {
                problems.push(format!("{what} in the stdout of `{}`", r.label));
            }
            if err.contains(secret.as_str()) {
                problems.push(format!("{what} in the stderr of `{}`", r.label));
            }
        }
    }
    for (label, bytes) in &s.files {
        let text = String::from_utf8_lossy(bytes);
        for (what, secret) in &secrets {
            if text.contains(secret.as_str()) {
                problems.push(format!("{what} in the {label} file"));
            }
        }
    }
    println!(
        "leaks: {} command runs and {} file snapshots scanned for {} secrets: {} findings",
        s.runs.len(),
        s.files.len(),
        secrets.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "leaks:\n  {}", problems.join("\n  "));
}
