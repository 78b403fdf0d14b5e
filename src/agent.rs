//! The unlock session agent: one small process per user and vault file that holds an
//! opaque session secret and hands it, over a Unix socket in a directory private to the
//! user, to processes of the same uid only.
//!
//! This module knows sockets, processes and bytes; what the bytes mean (today a derived
//! vault key with the KDF settings and salt it fits) is the caller's business.
//!
//! Invariants:
//! - The secret reaches the agent only through a pipe on its stdin, never argv or the
//!   environment; the agent starts with an empty environment.
//! - The socket lives only in a directory owned by this uid with mode 0700, checked (not
//!   created blindly, never followed through a symlink) on every use; the socket file is
//!   0600 and its owner is checked by clients.
//! - Every connection's peer uid (SO_PEERCRED, recorded by the kernel) is checked on both
//!   ends before a byte of the secret moves; the agent drops any other uid unanswered.
//! - The agent is not dumpable, locks the secret's pages against swap where allowed,
//!   detaches from the terminal, and removes its socket when it ends: at its deadline, at
//!   `STOP`, or when its socket was removed or replaced.
//! - Every read on either side is bounded in size and time; a dead agent's socket (connect
//!   refused) is removed by the next client.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sys;
use mcp_key_vault::secret::SecretBytes;

/// The hidden subcommand that runs the agent (see `cli::Command::SessionAgent`).
pub const AGENT_SUBCOMMAND: &str = "session-agent";
/// Largest session secret the agent accepts.
pub const MAX_SECRET: usize = 4096;
/// Longest session.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Read and write bound for one exchange on the socket.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `start` waits for a new agent to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request or header line.
const MAX_LINE: usize = 64;
/// How long to wait before asking a dying agent again (its threads need a moment to exit).
const DYING_AGENT_PAUSE: Duration = Duration::from_millis(200);
/// How often the agent checks that its socket is still its own.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// A live session, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The agent's process id.
    pub pid: u32,
    /// When the agent ends by itself (whole seconds).
    pub expires_at: DateTime<Utc>,
    /// The socket it listens on.
    pub socket: PathBuf,
    /// Whether the secret's pages are locked against swap (`mlock` may be refused).
    pub memory_locked: bool,
}

/// Parses a session length: `900` (seconds), `90s`, `15m`, `1h`, `1h30m`; from 1 second
/// to 24 hours.
///
/// # Errors
/// A message for clap (exit 2) naming the accepted forms.
pub fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    let bad = || {
        format!(
            "{:?} is not a duration; use seconds (900) or a number with s, m or h \
             (90s, 15m, 1h, 1h30m), at most 24h",
            mcp_key_vault::display::sanitize(s)
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut units_seen = 0;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            if num.len() > 6 {
                return Err(bad());
            }
            continue;
        }
        let mul = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        units_seen += 1;
        total += n * mul;
    }
    if !num.is_empty() {
        if units_seen > 0 {
            return Err(bad());
        }
        total = num.parse().map_err(|_| bad())?;
    }
    let d = Duration::from_secs(total);
    if d.is_zero() || d > MAX_TIMEOUT {
        return Err(format!(
            "the session length must be between 1s and 24h, not {}",
            mcp_key_vault::display::sanitize(s)
        ));
    }
    Ok(d)
}

// ---- the private directory and the socket's name ----

/// The directory holding the sockets, checked; created (0700) when `create`.
/// `None` when it does not exist and `create` is false.
fn socket_dir(create: bool) -> Result<Option<PathBuf>> {
    let uid = sys::euid();
    if let Some(rt) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        // Used only when it is what the spec promises: absolute, ours, 0700.
        if rt.is_absolute() && check_private_dir(&rt, uid).is_ok() {
            return private_dir(rt.join("mcp-key-manager"), uid, create);
        }
    }
    let tmp = std::env::temp_dir().join(format!("mcp-key-manager-{uid}"));
    match private_dir(tmp, uid, create) {
        // Another user can squat the name in a shared /tmp (and, under the sticky bit, we
        // cannot remove it): then a directory in our home, which nobody else can create.
        Err(squatted) => match std::env::var_os("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() && check_owned_dir(&home, uid) => {
                let cache = home.join(".cache");
                if create && !cache.exists() {
                    let _ = std::fs::DirBuilder::new().mode(0o700).create(&cache);
                }
                private_dir(cache.join("mcp-key-manager-sessions"), uid, create)
            }
            _ => Err(squatted),
        },
        ok => ok,
    }
}

/// Whether `dir` is a real directory owned by `uid` (a home directory need not be 0700).
fn check_owned_dir(dir: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid)
}

fn private_dir(dir: PathBuf, uid: u32, create: bool) -> Result<Option<PathBuf>> {
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Ok(None);
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                // Someone (perhaps another of our processes) made it meanwhile: check it.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create the session directory", &dir, e)),
            }
        }
        Err(e) => return Err(Error::io("inspect the session directory", &dir, e)),
        Ok(_) => {}
    }
    check_private_dir(&dir, uid)?;
    Ok(Some(dir))
}

/// A directory is private when it is a real directory (not a symlink), owned by `uid`,
/// with no permission for group or others.
fn check_private_dir(dir: &Path, uid: u32) -> Result<()> {
    let md = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io("inspect the session directory", dir, e))?;
    if !md.file_type().is_dir() || md.uid() != uid || md.mode() & 0o777 != 0o700 {
        return Err(Error::failed(format!(
            "the session directory {} is not a directory owned by you with mode 0700 (it \
             belongs to user {}, mode {:o}); sessions are disabled until it is removed or \
             fixed",
            mcp_key_vault::display::path(dir),
            md.uid(),
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The socket's file name: a hash of the vault's canonical path, so that one vault has one
/// session and the name reveals nothing but the hash.
fn socket_name(vault_canonical: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let h = Sha256::digest(vault_canonical.as_os_str().as_bytes());
    format!(
        "{}.sock",
        h[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The socket of this vault's session; `None` when the directory does not exist yet and
/// `create` is false.
fn socket_path(vault_canonical: &Path, create: bool) -> Result<Option<PathBuf>> {
    let Some(dir) = socket_dir(create)? else {
        return Ok(None);
    };
    let p = dir.join(socket_name(vault_canonical));
    // sockaddr_un holds 108 bytes including the terminating NUL.
    if p.as_os_str().len() > 107 {
        return Err(Error::failed(format!(
            "the session socket path {} is too long for a Unix socket; set TMPDIR or \
             XDG_RUNTIME_DIR to a shorter directory",
            p.display()
        )));
    }
    Ok(Some(p))
}

// ---- the client side ----

/// Connects to the agent at `path`, checking the socket file's owner and the agent's uid.
/// A socket nobody listens on (its agent was killed) is removed; `None` then.
fn connect(path: &Path) -> Result<Option<UnixStream>> {
    let uid = sys::euid();
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("inspect the session socket", path, e)),
    };
    if !md.file_type().is_socket() || md.uid() != uid {
        return Err(Error::failed(format!(
            "{} is not a socket owned by you; remove it to use sessions again",
            path.display()
        )));
    }
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            remove_stale(path);
            return Ok(None);
        }
        Err(e) => return Err(Error::io("connect to the session agent at", path, e)),
    };
    let peer = sys::peer_uid(&stream)
        .map_err(|e| Error::io("check the session agent's owner at", path, e))?;
    if peer != uid {
        return Err(Error::failed(format!(
            "the process behind {} runs as uid {peer}, not as you; it was not asked for anything",
            path.display()
        )));
    }
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| Error::io("configure the session socket", path, e))?;
    Ok(Some(stream))
}

/// Removes a socket whose agent is gone. Only a socket (never a file or a link) in our
/// checked directory reaches here.
fn remove_stale(path: &Path) {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.file_type().is_socket() && md.uid() == sys::euid() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes.
fn read_line(r: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(16);
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ if b[0] == b'\n' => break,
            _ => line.push(b[0]),
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other("line too long"));
        }
    }
    String::from_utf8(line).map_err(|_| std::io::Error::other("line is not UTF-8"))
}

/// Connects and sends one request; the stream (for any payload that follows) and the
/// answer's header line, or `None` when no agent listens. An agent that dies while we ask
/// (its listener still open for a moment after SIGKILL while its threads exit) is asked once
/// more after a short pause, when its socket refuses and is removed as stale.
fn ask(path: &Path, cmd: &str) -> Result<Option<(UnixStream, String)>> {
    for attempt in 0..2 {
        let Some(mut s) = connect(path)? else {
            return Ok(None);
        };
        match exchange(&mut s, cmd) {
            Ok(line) if line == "ERR" || !line.starts_with("OK") => {
                return Err(Error::failed(format!(
                    "the session agent at {} gave an unexpected answer; run `mcp-key-manager \
                     lock`",
                    path.display()
                )))
            }
            Ok(line) => return Ok(Some((s, line))),
            Err(e)
                if attempt == 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::BrokenPipe
                    ) =>
            {
                std::thread::sleep(DYING_AGENT_PAUSE);
            }
            Err(e) => return Err(Error::io("talk to the session agent at", path, e)),
        }
    }
    unreachable!("the second attempt returns")
}

fn exchange(stream: &mut UnixStream, cmd: &str) -> std::io::Result<String> {
    stream.write_all(format!("{cmd}\n").as_bytes())?;
    read_line(stream)
}

fn bad_answer(path: &Path) -> Error {
    Error::failed(format!(
        "the session agent at {} gave a malformed answer; run `mcp-key-manager lock`",
        path.display()
    ))
}

/// The session secret of this vault, or `None` when no session is live. Never waits for
/// more than a few seconds.
///
/// # Errors
/// [`Error::Failed`] when the session directory or socket is not private to this user or
/// the agent is not ours; [`Error::Io`] when talking to it fails.
pub fn fetch(vault_canonical: &Path) -> Result<Option<SecretBytes>> {
    let Some(path) = socket_path(vault_canonical, false)? else {
        return Ok(None);
    };
    let Some((mut s, line)) = ask(&path, "GET")? else {
        return Ok(None);
    };
    let n: usize = line
        .strip_prefix("OK ")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_SECRET).contains(n))
        .ok_or_else(|| bad_answer(&path))?;
    let mut buf = SecretBytes::new(vec![0u8; n]);
    read_exact_secret(&mut s, &mut buf)
        .map_err(|e| Error::io("read from the session agent at", &path, e))?;
    Ok(Some(buf))
}

fn read_exact_secret(s: &mut UnixStream, buf: &mut SecretBytes) -> std::io::Result<()> {
    s.read_exact(buf.expose_mut())
}

/// The live session of this vault, if any.
///
/// # Errors
/// As [`fetch`].
pub fn status(vault_canonical: &Path) -> Result<Option<SessionInfo>> {
    let Some(path) = socket_path(vault_canonical, false)? else {
        return Ok(None);
    };
    status_at(&path)
}

fn status_at(path: &Path) -> Result<Option<SessionInfo>> {
    let Some((_, line)) = ask(path, "STATUS")? else {
        return Ok(None);
    };
    let mut parts = line.split(' ').skip(1);
    let pid: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad_answer(path))?;
    let expires_at = parts
        .next()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
        .ok_or_else(|| bad_answer(path))?;
    let memory_locked = parts.next() == Some("locked");
    Ok(Some(SessionInfo {
        pid,
        expires_at,
        socket: path.to_path_buf(),
        memory_locked,
    }))
}

/// Ends this vault's session; whether one was live. The agent removes its socket before it
/// answers, so when this returns no session is reachable.
///
/// # Errors
/// As [`fetch`].
pub fn stop(vault_canonical: &Path) -> Result<bool> {
    let Some(path) = socket_path(vault_canonical, false)? else {
        return Ok(false);
    };
    stop_at(&path)
}

fn stop_at(path: &Path) -> Result<bool> {
    Ok(ask(path, "STOP")?.is_some())
}

/// Ends the session of a vault whose key changed (rekey): the same as [`stop`], named for
/// the reason so callers read well.
///
/// # Errors
/// As [`stop`].
pub fn invalidate(vault_canonical: &Path) -> Result<bool> {
    stop(vault_canonical)
}

/// Starts an agent holding `secret` for this vault for `timeout`, replacing a live one.
/// Returns once the agent answers on its socket.
///
/// # Errors
/// [`Error::Usage`] for an empty or oversized secret or a timeout out of range;
/// [`Error::Failed`] when the session directory is not private or the agent does not come
/// up; [`Error::Io`] for spawning or piping problems.
pub fn start(
    vault_canonical: &Path,
    secret: SecretBytes,
    timeout: Duration,
) -> Result<SessionInfo> {
    check_start(&secret, timeout)?;
    let path = socket_path(vault_canonical, true)?.expect("created on request");
    // One vault, one agent: a live one is replaced, a dead one's socket removed.
    stop_at(&path)?;
    let mut child = spawn_agent(&path, timeout)?;
    hand_secret(&mut child, secret)?;
    await_ready(&mut child)?;
    let info = status_at(&path)?;
    match info {
        Some(info) if info.pid == child.id() => Ok(info),
        _ => Err(abandon(
            &mut child,
            "the session agent does not answer on its socket".into(),
        )),
    }
    // `child` is dropped without waiting: the agent outlives this process by design.
}

/// Refuses a secret or a session length that [`start`] does not accept.
fn check_start(secret: &SecretBytes, timeout: Duration) -> Result<()> {
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(Error::usage(format!(
            "a session secret must be 1 to {MAX_SECRET} bytes"
        )));
    }
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(Error::usage(
            "the session length must be between 1s and 24h",
        ));
    }
    Ok(())
}

/// Spawns this program as the agent for the socket at `path`, its stdin and stdout piped.
fn spawn_agent(path: &Path, timeout: Duration) -> Result<std::process::Child> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find the running program", Path::new("/proc/self/exe"), e))?;
    Command::new(&exe)
        .arg(AGENT_SUBCOMMAND)
        .arg("--socket")
        .arg(path)
        .arg("--timeout-secs")
        .arg(timeout.as_secs().to_string())
        // The agent inherits nothing: no passphrase variable, no terminal, no cwd.
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start the session agent", &exe, e))
}

/// Ends an agent that did not come up as it should, and the error saying so.
fn abandon(child: &mut std::process::Child, msg: String) -> Error {
    let _ = child.kill();
    let _ = child.wait();
    Error::failed(msg)
}

/// Writes the secret to the agent's stdin (never argv or the environment) and drops our
/// copy of it.
fn hand_secret(child: &mut std::process::Child, secret: SecretBytes) -> Result<()> {
    let wrote = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(secret.expose()))
        .unwrap_or_else(|| Err(std::io::ErrorKind::BrokenPipe.into()));
    drop(secret);
    if let Err(e) = wrote {
        return Err(abandon(
            child,
            format!("could not hand the session to its agent: {e}"),
        ));
    }
    Ok(())
}

/// Waits for the agent's one line on stdout, which says it is listening (or why not).
fn await_ready(child: &mut std::process::Child) -> Result<()> {
    // Read on a thread so a stuck agent cannot hold us past START_TIMEOUT.
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let _ = tx.send(read_line(&mut stdout));
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(_)) => {
            return Err(abandon(
                child,
                "the session agent ended before it was ready".into(),
            ))
        }
        Err(_) => {
            return Err(abandon(
                child,
                format!(
                    "the session agent did not start within {}s",
                    START_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    if let Some(why) = line.strip_prefix("error ") {
        return Err(abandon(
            child,
            format!("the session agent could not start: {why}"),
        ));
    }
    Ok(())
}

// ---- the agent ----

/// The agent process: reads the secret from stdin, listens on `socket` until `timeout`
/// passes, `STOP` arrives, or the socket is no longer its own. Run only through the hidden
/// subcommand that [`start`] spawns.
///
/// # Errors
/// Only for failures before it is ready; they are also reported on stdout to [`start`].
pub fn serve(socket: &Path, timeout: Duration) -> Result<()> {
    let r = prepare(socket, timeout);
    let mut out = std::io::stdout();
    let (listener, secret, locked, deadline, ident) = match r {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "error {e}");
            return Err(e);
        }
    };
    let expires_at = Utc::now()
        + chrono::Duration::from_std(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
    let expires_unix = expires_at.timestamp();
    let paging = if locked { "locked" } else { "unlocked" };
    let _ = writeln!(out, "ready {} {expires_unix}", std::process::id());
    let _ = out.flush();
    // Detach: hold no pipe or terminal of whoever started us.
    let _ = sys::stdio_to_null();

    let watch_path = socket.to_path_buf();
    std::thread::spawn(move || loop {
        let now = Instant::now();
        if now >= deadline || !still_ours(&watch_path, ident) {
            shutdown(&watch_path, ident);
        }
        std::thread::sleep(WATCH_INTERVAL.min(deadline - now));
    });

    let uid = sys::euid();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else {
            // Out of descriptors or similar: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // The kernel's record of who connected; anyone else gets nothing, not even an answer.
        match sys::peer_uid(&conn) {
            Ok(peer) if peer == uid => {}
            _ => continue,
        }
        if Instant::now() >= deadline {
            shutdown(socket, ident);
        }
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(cmd) = read_line(&mut conn) else {
            continue;
        };
        let _ = match cmd.as_str() {
            "GET" => conn
                .write_all(format!("OK {}\n", secret.len()).as_bytes())
                .and_then(|()| conn.write_all(secret.expose())),
            "STATUS" => conn.write_all(
                format!("OK {} {expires_unix} {paging}\n", std::process::id()).as_bytes(),
            ),
            "STOP" => {
                // Unreachable first, then say so: a client that sees "OK" finds no session.
                remove_if_ours(socket, ident);
                let _ = conn.write_all(b"OK\n");
                drop(secret);
                std::process::exit(0);
            }
            _ => conn.write_all(b"ERR\n"),
        };
    }
    shutdown(socket, ident)
}

type Prepared = (UnixListener, SecretBytes, bool, Instant, (u64, u64));

fn prepare(socket: &Path, timeout: Duration) -> Result<Prepared> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(Error::usage(
            "the session length must be between 1s and 24h",
        ));
    }
    let deadline = Instant::now() + timeout;
    sys::close_inherited_fds();
    let _ = sys::new_session();
    let (secret, locked) = read_secret()?;
    // The directory was made and checked by `start`; check again, as we are about to
    // put a socket into it.
    if let Some(dir) = socket.parent() {
        check_private_dir(dir, sys::euid())?;
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| Error::io("listen on the session socket", socket, e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("restrict the session socket", socket, e))?;
    let md = std::fs::symlink_metadata(socket)
        .map_err(|e| Error::io("inspect the session socket", socket, e))?;
    Ok((listener, secret, locked, deadline, (md.dev(), md.ino())))
}

/// Reads the secret from stdin into a buffer whose pages are locked against swap, when
/// the system allows it; whether it did.
fn read_secret() -> Result<(SecretBytes, bool)> {
    let mut buf = SecretBytes::new(vec![0u8; MAX_SECRET + 1]);
    // Not fatal when refused (a small RLIMIT_MEMLOCK must not prevent sessions): `unlock`
    // warns, and swap may then hold the key as it may hold any process's memory.
    let locked = sys::lock_memory(buf.expose()).is_ok();
    let mut n = 0;
    let mut stdin = std::io::stdin().lock();
    loop {
        let dst = &mut buf.expose_mut()[n..];
        if dst.is_empty() {
            return Err(Error::usage(format!(
                "a session secret must be at most {MAX_SECRET} bytes"
            )));
        }
        match stdin.read(dst) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::io(
                    "read the session secret from",
                    Path::new("stdin"),
                    e,
                ))
            }
        }
    }
    if n == 0 {
        return Err(Error::usage("no session secret on stdin"));
    }
    buf.truncate(n);
    Ok((buf, locked))
}

fn still_ours(path: &Path, ident: (u64, u64)) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|md| (md.dev(), md.ino()) == ident)
}

fn remove_if_ours(path: &Path, ident: (u64, u64)) {
    if still_ours(path, ident) {
        let _ = std::fs::remove_file(path);
    }
}

/// Ends the agent: the socket goes first, then the process (and with it the secret's pages).
fn shutdown(path: &Path, ident: (u64, u64)) -> ! {
    remove_if_ours(path, ident);
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_in_the_documented_forms() {
        for (s, secs) in [
            ("900", 900),
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("1h30m", 5400),
            ("24h", 86_400),
            ("1s", 1),
        ] {
            assert_eq!(parse_timeout(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "", "0", "0s", "25h", "86401", "15x", "m", "1.5h", "-5", "1h30", "9999999h",
        ] {
            assert!(parse_timeout(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn socket_names_differ_per_vault_and_hide_the_path() {
        let a = socket_name(Path::new("/home/u/vault/keys.json"));
        let b = socket_name(Path::new("/home/u/other/keys.json"));
        assert_ne!(a, b);
        assert!(!a.contains("keys"), "{a}");
        assert_eq!(a.len(), 32 + ".sock".len());
    }

    #[test]
    fn a_private_dir_must_be_ours_and_0700() {
        let d = tempfile::tempdir().unwrap();
        let uid = sys::euid();
        let p = d.path().join("s");
        assert_eq!(private_dir(p.clone(), uid, false).unwrap(), None);
        assert_eq!(private_dir(p.clone(), uid, true).unwrap(), Some(p.clone()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(p.clone(), uid, true).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private_dir(p.clone(), uid.wrapping_add(1), true).is_err());
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(
            private_dir(link, uid, true).is_err(),
            "a symlink is never trusted"
        );
    }
}
