//! `unlock` / `lock`: a session agent per vault, reachable only by this uid.
//!
//! Each test points TMPDIR at its own directory, so its agents and sockets are its own,
//! and a guard ends every agent it started, also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A vault plus a private TMPDIR for its session sockets; ends its agents on drop (also
/// used by `headers`, which a client runs inside a session).
pub(crate) struct Sess {
    pub(crate) env: Env,
    tmp: PathBuf,
    pids: std::cell::RefCell<Vec<u32>>,
}

impl Sess {
    pub(crate) fn new() -> Sess {
        let env = Env::with_vault();
        let tmp = env.path().join("t");
        std::fs::create_dir(&tmp).unwrap();
        Sess {
            env,
            tmp,
            pids: Default::default(),
        }
    }

    /// The binary with the passphrase in the environment.
    pub(crate) fn cmd(&self) -> assert_cmd::Command {
        let mut c = self.env.cmd();
        c.env("TMPDIR", &self.tmp);
        c
    }

    /// The binary with no passphrase source and no terminal (a new session, stdin null).
    pub(crate) fn no_source(&self, args: &[&str]) -> Output {
        StdCommand::new("setsid")
            .arg("-w")
            .arg(bin())
            .args(args)
            .current_dir(self.env.path())
            .env_clear()
            .env("TMPDIR", &self.tmp)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .output()
            .expect("setsid is part of util-linux")
    }

    /// `unlock` with the given timeout; returns the agent's pid.
    pub(crate) fn unlock(&self, timeout: &str) -> u32 {
        let out = self
            .cmd()
            .args(["unlock", "--json", "--timeout", timeout])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "unlock failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["unlocked"], true);
        let pid = v["pid"].as_u64().unwrap() as u32;
        self.pids.borrow_mut().push(pid);
        pid
    }

    fn status(&self) -> (Option<i32>, serde_json::Value) {
        let out = self
            .cmd()
            .args(["unlock", "--status", "--json"])
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    }

    fn socket_dir(&self) -> PathBuf {
        self.tmp.join("mcp-key-manager-0")
    }

    /// The socket files in the session directory.
    fn sockets(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.socket_dir()) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Sess {
    fn drop(&mut self) {
        for pid in self.pids.borrow().iter() {
            sigkill(*pid);
        }
    }
}

/// SIGKILL through the shell's builtin `kill` (no procps needed); errors are ignored.
fn sigkill(pid: u32) {
    let _ = StdCommand::new("sh")
        .args(["-c", "kill -9 \"$0\"", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether any thread of a process is running. A killed process's leader turns zombie
/// before its other threads have exited, and those still hold its descriptors (the agent's
/// listening socket); only when every thread is a zombie or gone has it let go of them.
fn alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X')))
        })
    })
}

/// Waits until the process's main thread is a zombie or gone: the earliest moment a user
/// could notice the agent is dead, while its other threads may still hold the socket.
fn wait_leader_dead(pid: u32, within: Duration) -> bool {
    let leader_alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X')))
        })
    };
    let start = Instant::now();
    while leader_alive() {
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

#[test]
fn a_session_needs_no_passphrase_until_lock() {
    let s = Sess::new();
    let (id, _) = s.env.create("k", &[]);
    // Without a session, a command with no source and no terminal fails.
    assert_eq!(s.no_source(&["list"]).status.code(), Some(3));
    let before = chrono::Utc::now();
    let pid = s.unlock("60s");
    let (code, st) = s.status();
    assert_eq!(code, Some(0));
    assert_eq!(st["live"], true);
    assert_eq!(st["pid"].as_u64(), Some(u64::from(pid)));
    let exp = chrono::DateTime::parse_from_rfc3339(st["expires_at"].as_str().unwrap()).unwrap();
    let left = exp.signed_duration_since(before).num_seconds();
    assert!((58..=62).contains(&left), "expires in {left}s");

    // Reading and writing both use the session.
    let out = s.no_source(&["list", "--json"]);
    assert!(out.status.success(), "{}", all_output(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    let out = s.no_source(&["revoke", &id]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(
        s.env.open_vault().keys()[0]
            .status(chrono::Utc::now())
            .as_str(),
        "revoked"
    );
    assert_eq!(s.sockets().len(), 1);

    let out = s.cmd().args(["lock", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ended"], true);
    assert!(
        wait_dead(pid, Duration::from_secs(3)),
        "agent {pid} still runs"
    );
    assert!(s.sockets().is_empty(), "{:?}", s.sockets());
    assert_eq!(s.no_source(&["list"]).status.code(), Some(3));
    let (code, st) = s.status();
    assert_eq!(code, Some(1));
    assert_eq!(st["live"], false);
    // A second lock is no error and says nothing ended.
    let out = s.cmd().args(["lock", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ended"], false);
}

#[test]
fn a_session_ends_at_its_timeout_and_leaves_no_socket() {
    let s = Sess::new();
    let pid = s.unlock("2s");
    let out = s.no_source(&["list"]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        wait_dead(pid, Duration::from_secs(6)),
        "agent {pid} outlived its timeout"
    );
    assert!(s.sockets().is_empty(), "{:?}", s.sockets());
    assert_eq!(s.no_source(&["list"]).status.code(), Some(3));
}

#[test]
fn unlock_takes_the_passphrase_and_a_wrong_one_starts_nothing() {
    let s = Sess::new();
    let out = s
        .env
        .bare()
        .env("TMPDIR", &s.tmp)
        .env("MCP_KEY_VAULT_PASSPHRASE", "not it")
        .arg("unlock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(s.sockets().is_empty());
    assert_eq!(s.status().0, Some(1));
    // Starting a session never comes from a session: with one live, `unlock` still needs
    // the passphrase.
    s.unlock("60s");
    assert_eq!(s.no_source(&["unlock"]).status.code(), Some(3));
    for bad in ["15x", "0", "25h", "-5m", "1.5h"] {
        s.cmd().args(["unlock", "--timeout", bad]).assert().code(2);
    }
}

#[test]
fn unlocking_again_replaces_the_agent() {
    let s = Sess::new();
    let first = s.unlock("60s");
    let second = s.unlock("120s");
    assert_ne!(first, second);
    assert!(wait_dead(first, Duration::from_secs(3)));
    assert_eq!(s.sockets().len(), 1);
    assert_eq!(s.status().1["pid"].as_u64(), Some(u64::from(second)));
}

#[test]
fn a_session_opens_only_its_own_vault() {
    let s = Sess::new();
    s.unlock("60s");
    let other = s.env.path().join("other.json");
    s.cmd()
        .args(["init", "--vault", "other.json"])
        .args(WEAK)
        .assert()
        .success();
    assert!(other.exists());
    let out = s.no_source(&["list", "--vault", "other.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(s.no_source(&["list"]).status.success());
    // The same vault named by another path (a symlink, a relative path) is the same session.
    std::os::unix::fs::symlink(s.env.vault(), s.env.path().join("link.json")).unwrap();
    assert!(s
        .no_source(&["list", "--vault", "link.json"])
        .status
        .success());
    assert!(s
        .no_source(&[
            "list",
            "--vault",
            "./mcp_key_manager/../mcp_key_manager/keys.json"
        ])
        .status
        .success());
}

#[test]
fn rekey_ends_the_session() {
    let s = Sess::new();
    let pid = s.unlock("60s");
    s.cmd()
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", "a brand new passphrase")
        .arg("rekey")
        .args(WEAK)
        .assert()
        .success();
    assert!(wait_dead(pid, Duration::from_secs(3)));
    assert!(s.sockets().is_empty());
    assert_eq!(s.no_source(&["list"]).status.code(), Some(3));
}

#[test]
fn a_killed_agents_socket_is_cleaned_up() {
    let s = Sess::new();
    let pid = s.unlock("60s");
    sigkill(pid);
    // Asked as soon as the agent's main thread is dead, perhaps before its other threads
    // have let go of the listening socket: the status must still find the session ended.
    assert!(wait_leader_dead(pid, Duration::from_secs(3)));
    // SIGKILL gave the agent no chance to clean up.
    assert_eq!(s.sockets().len(), 1);
    let (code, st) = s.status();
    assert_eq!(
        (code, &st["live"]),
        (Some(1), &serde_json::Value::Bool(false))
    );
    assert!(s.sockets().is_empty(), "the stale socket was not removed");
    // A command falls back to the passphrase sources as if no session had been.
    assert_eq!(s.no_source(&["list"]).status.code(), Some(3));
    // And a new session starts where the dead one was.
    let again = s.unlock("60s");
    sigkill(again);
    assert!(wait_dead(again, Duration::from_secs(3)));
    let out = s.cmd().arg("list").output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(s.sockets().is_empty(), "a command's fetch removes it too");
}

#[test]
fn the_agent_keeps_its_secret_out_of_argv_environ_and_open_files() {
    let s = Sess::new();
    let pid = s.unlock("60s");
    // The derived key, computed here from the vault's header.
    let bytes = std::fs::read(s.env.vault()).unwrap();
    // Format 2: the key of the passphrase slot (what a session holds).
    let h = mcp_key_vault::v2::Header::parse(&bytes).unwrap();
    let mcp_key_vault::v2::SlotKind::Passphrase { kdf, salt, .. } = &h.slots[0].kind else {
        panic!("the fixture's slot is a passphrase slot")
    };
    let key = mcp_key_vault::crypto::derive_key(
        &mcp_key_vault::SecretString::new(PASS.into()),
        salt,
        kdf,
    )
    .unwrap();
    let key_hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    for (what, data) in [("cmdline", &cmdline), ("environ", &environ)] {
        let text = String::from_utf8_lossy(data);
        assert!(!text.contains(PASS), "passphrase in {what}");
        assert!(!text.contains(&key_hex), "key (hex) in {what}");
        assert!(
            !data.windows(32).any(|w| w == key.expose()),
            "key (raw) in {what}"
        );
    }
    assert!(environ.is_empty(), "the agent inherits no environment");
    assert!(String::from_utf8_lossy(&cmdline).contains("session-agent"));
    // Detached: stdio on /dev/null, no inherited pipe, one socket.
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            std::fs::read_link(e.unwrap().path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    fds.sort();
    assert_eq!(fds.len(), 4, "{fds:?}");
    assert_eq!(
        &fds[..3],
        ["/dev/null", "/dev/null", "/dev/null"],
        "{fds:?}"
    );
    assert!(fds[3].starts_with("socket:"), "{fds:?}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // setsid: the agent leads its own session, away from the terminal's.
    let sid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = sid.rsplit(')').next().unwrap();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "session id (stat field 6)");
    // mlock: as root (CAP_IPC_LOCK) it cannot be refused.
    if is_root() {
        let vmlck = status
            .lines()
            .find(|l| l.starts_with("VmLck:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert!(vmlck >= 4, "VmLck {vmlck} kB");
    }
}

/// A directory and a vault that uid 65534 owns, for running as another user.
fn nobody_env() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    std::fs::create_dir(&t).unwrap();
    StdCommand::new("chown")
        .args(["-R", "65534:65534"])
        .arg(d.path())
        .status()
        .unwrap();
    (d, t)
}

fn as_nobody(dir: &Path, tmp: &Path) -> StdCommand {
    let mut c = StdCommand::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", tmp)
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
        .stdin(Stdio::null());
    c
}

#[test]
#[ignore = "needs root (runs the agent as another uid); .ci/run runs it with --ignored"]
#[cfg(target_os = "linux")]
fn the_agent_is_not_dumpable() {
    assert!(
        is_root(),
        "needs root to run the agent as another uid and compare"
    );
    // /proc/PID files of a non-dumpable process belong to root, whoever runs it: run the
    // agent as uid 65534 and look at the owner.
    let (d, tmp) = nobody_env();
    let init = as_nobody(d.path(), &tmp)
        .arg(bin())
        .arg("init")
        .args(WEAK)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", all_output(&init));
    let out = as_nobody(d.path(), &tmp)
        .arg(bin())
        .args(["unlock", "--json", "--timeout", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = v["pid"].as_u64().unwrap() as u32;
    let guard = KillOnDrop(pid);
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "{status}"
    );
    let owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "/proc/{pid} of a dumpable process would belong to 65534"
    );
    // The session directory of that user is its own and private.
    let md = std::fs::symlink_metadata(tmp.join("mcp-key-manager-65534")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (65534, 0o700));
    let locked = as_nobody(d.path(), &tmp)
        .arg(bin())
        .args(["lock", "--json"])
        .output()
        .unwrap();
    assert!(locked.status.success(), "{}", all_output(&locked));
    assert!(wait_dead(pid, Duration::from_secs(3)));
    drop(guard);
}

struct KillOnDrop(u32);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        sigkill(self.0);
    }
}

/// A raw client of the socket protocol in Perl (part of every Debian/Ubuntu base system):
/// connects, sends `GET`, prints how many bytes came back.
const PROBE: &str = r#"
use IO::Socket::UNIX;
$SIG{PIPE} = 'IGNORE';
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]);
if (!$s) { print "connect-failed: $!\n"; exit 0; }
local $SIG{ALRM} = sub { print "timeout\n"; exit 0; };
alarm 5;
syswrite($s, "GET\n");
my ($buf, $n, $chunk) = ('', 0, '');
while (($n = sysread($s, $chunk, 8192)) && $n > 0) { $buf .= $chunk; }
print "got " . length($buf) . "\n";
"#;

fn perl() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/perl");
    let found = p.exists();
    tool_or_skip(
        "the other-uid socket test",
        found,
        "/usr/bin/perl is missing",
    )
    .then_some(p)
}

#[test]
#[ignore = "needs root (acts as another uid); .ci/run runs it with --ignored"]
fn another_uid_gets_nothing_from_the_socket() {
    assert!(is_root(), "needs root to act as another uid");
    let Some(perl) = perl() else { return };
    let s = Sess::new();
    s.unlock("60s");
    let sock = s.sockets().pop().unwrap();
    let probe = |as_other: bool| -> String {
        let mut c = if as_other {
            let mut c = StdCommand::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&perl);
            c
        } else {
            StdCommand::new(&perl)
        };
        let out = c
            .arg("-e")
            .arg(PROBE)
            .arg(&sock)
            .env_clear()
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !said.is_empty(),
            "the probe said nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        said
    };
    // The probe works: the owner gets the session secret (a header and 94 bytes).
    let mine = probe(false);
    assert!(mine.starts_with("got ") && mine != "got 0", "{mine}");
    // Another uid cannot even reach the socket: the directory is 0700.
    let theirs = probe(true);
    assert!(theirs.starts_with("connect-failed"), "{theirs}");
    // Opened up on purpose, the directory and socket let it connect, and the agent's
    // SO_PEERCRED check still hands it nothing.
    use std::os::unix::fs::PermissionsExt;
    let perm = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    let t = s.tmp.clone();
    perm(s.env.path(), 0o711).unwrap();
    perm(&t, 0o711).unwrap();
    perm(&s.socket_dir(), 0o711).unwrap();
    perm(&sock, 0o666).unwrap();
    let theirs = probe(true);
    perm(&sock, 0o600).unwrap();
    perm(&s.socket_dir(), 0o700).unwrap();
    perm(&t, 0o700).unwrap();
    perm(s.env.path(), 0o700).unwrap();
    assert_eq!(theirs, "got 0", "another uid was answered");
    // The agent is still there for its owner.
    assert!(s.no_source(&["list"]).status.success());
}

#[test]
fn a_session_directory_that_is_not_private_is_refused() {
    let s = Sess::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(s.socket_dir()).unwrap();
    std::fs::set_permissions(s.socket_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = s.cmd().arg("unlock").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mode 0700"),
        "{}",
        all_output(&out)
    );
    assert!(s.sockets().is_empty());
    // Commands still work with their passphrase, saying why the session is not used.
    let out = s.cmd().arg("list").output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    // A symlink in its place is never followed.
    std::fs::remove_dir(s.socket_dir()).unwrap();
    let elsewhere = s.env.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, s.socket_dir()).unwrap();
    s.cmd().arg("unlock").assert().code(1);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn lock_ends_the_session_of_a_vault_that_was_moved_away() {
    let s = Sess::new();
    let pid = s.unlock("60s");
    std::fs::rename(s.env.vault(), s.env.path().join("moved.json")).unwrap();
    let (code, st) = s.status();
    assert_eq!(
        (code, &st["live"]),
        (Some(0), &serde_json::Value::Bool(true))
    );
    let out = s.cmd().args(["lock", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ended"], true, "{}", all_output(&out));
    assert!(wait_dead(pid, Duration::from_secs(3)));
}

/// Review of this turn: another user can squat the session directory's name in a shared
/// temp directory (where we cannot remove it); sessions then live in a private directory
/// in our home instead of being disabled, and the squatter's directory is never used.
#[test]
fn a_squatted_session_directory_falls_back_to_the_home_directory() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sess::new();
    std::fs::create_dir(s.socket_dir()).unwrap();
    std::fs::set_permissions(s.socket_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = s.env.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = s
        .cmd()
        .env("HOME", &home)
        .args(["unlock", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    s.pids.borrow_mut().push(v["pid"].as_u64().unwrap() as u32);
    let fallback = home.join(".cache/mcp-key-manager-sessions");
    assert_eq!(
        std::fs::read_dir(&fallback).unwrap().count(),
        1,
        "one socket there"
    );
    assert_eq!(
        std::fs::read_dir(s.socket_dir()).unwrap().count(),
        0,
        "none in the squatted one"
    );
    let mode = std::fs::metadata(&fallback).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // A command with no passphrase source finds the session there.
    let out = StdCommand::new("setsid")
        .arg("-w")
        .arg(bin())
        .arg("list")
        .current_dir(s.env.path())
        .env_clear()
        .env("TMPDIR", &s.tmp)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    s.cmd().env("HOME", &home).arg("lock").assert().success();
}
