//! At a terminal: three tries for a mistyped passphrase, under a pseudo-terminal made by
//! `script` (util-linux); none for a passphrase from the environment.

use std::io::{Read, Write};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// The binary running under `script`, so that it has a controlling terminal; the test
/// types into it and reads what it shows.
struct Pty {
    child: Child,
    screen: Arc<Mutex<String>>,
}

impl Pty {
    fn run(e: &Env, args: &str) -> Pty {
        Pty::run_with(e, args, &[])
    }

    fn run_with(e: &Env, args: &str, vars: &[(&str, &std::path::Path)]) -> Pty {
        let mut child = StdCommand::new("script")
            .args(["-qefc", &format!("{} {args}", bin().display()), "/dev/null"])
            .current_dir(e.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TZ", "UTC")
            .env("TERM", "dumb")
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script is part of util-linux");
        let screen = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let s = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pty { child, screen }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits until `text` has appeared `n` times.
    fn wait_for(&self, text: &str, n: usize) {
        let start = Instant::now();
        while self.screen().matches(text).count() < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "waited for {text:?} x{n}; screen: {}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_line(&mut self, s: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{s}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn exit_code(mut self) -> (Option<i32>, String) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (st.code(), self.screen());
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("no exit; screen: {}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

const PROMPT: &str = "Vault passphrase:";

#[test]
fn a_mistyped_passphrase_may_be_typed_again() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let mut p = Pty::run(&e, "list");
    p.wait_for(PROMPT, 1);
    p.type_line("not the passphrase");
    p.wait_for(PROMPT, 2);
    p.type_line(PASS);
    let (code, screen) = p.exit_code();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("try again (2 of 3 tries left)"), "{screen}");
    assert!(screen.contains(&id), "{screen}");
    assert!(!screen.contains(PASS), "echoed: {screen}");
}

#[test]
fn three_wrong_passphrases_end_with_exit_3() {
    let e = Env::with_vault();
    let mut p = Pty::run(&e, "revoke 0123");
    for i in 1..=3 {
        p.wait_for(PROMPT, i);
        p.type_line(&format!("wrong {i}"));
    }
    let (code, screen) = p.exit_code();
    assert_eq!(code, Some(3), "{screen}");
    assert_eq!(screen.matches(PROMPT).count(), 3, "{screen}");
    assert!(screen.contains("(3 tries)"), "{screen}");
    assert!(!screen.contains("wrong 1"), "echoed: {screen}");
}

#[test]
fn retries_also_guard_unlock_and_writes() {
    let e = Env::with_vault();
    // `create` on an existing vault takes the locked write path.
    let mut p = Pty::run(&e, "create second --json");
    p.wait_for(PROMPT, 1);
    p.type_line("nope");
    p.wait_for(PROMPT, 2);
    p.type_line(PASS);
    let (code, screen) = p.exit_code();
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(e.open_vault().keys().len(), 1);
    // `unlock` too; its agent is ended at once.
    let tmp = e.path().join("t");
    std::fs::create_dir(&tmp).unwrap();
    let mut p = Pty::run_with(&e, "unlock --timeout 20s", &[("TMPDIR", &tmp)]);
    p.wait_for(PROMPT, 1);
    p.type_line("nope");
    p.wait_for(PROMPT, 2);
    p.type_line(PASS);
    let (code, screen) = p.exit_code();
    let locked = e
        .bare()
        .env("TMPDIR", &tmp)
        .args(["lock", "--json"])
        .output()
        .unwrap();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("Unlocked"), "{screen}");
    let v: serde_json::Value = serde_json::from_slice(&locked.stdout).unwrap();
    assert_eq!(v["ended"], true);
}

#[test]
fn a_passphrase_from_the_environment_gets_one_attempt() {
    let e = Env::with_vault();
    let out = e
        .bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "not it")
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("try again") && !err.contains("tries"),
        "{err}"
    );
    // Even with a terminal at hand: the variable is the source, tried once.
    let out = StdCommand::new("script")
        .args(["-qefc", &format!("{} list", bin().display()), "/dev/null"])
        .current_dir(e.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MCP_KEY_VAULT_PASSPHRASE", "not it")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(
        !shown.contains(PROMPT) && !shown.contains("try again"),
        "{shown}"
    );
}
