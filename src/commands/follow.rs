//! `follow`: a sidecar that keeps a local verifier file current from a Redis store, so
//! that servers reading files (the Python, TypeScript and Rust packages) join a fleet with
//! no code change. Each value the store announces is checked against the trust pin, then
//! written atomically, never over a newer file or a file from another save of the same
//! revision.

use std::path::Path;

use super::context::*;
use crate::cli::FollowArgs;
use crate::fleet::follower::{Event, Follower, POLL};
use crate::fleet::store::Store;
use mcp_key_vault::fsio;

pub(super) fn follow(_ctx: &mut Ctx, a: FollowArgs) -> Result<()> {
    let store = Store::parse(&a.url)?;
    fsio::ensure_parent(&a.out)?;
    let out = a.out.clone();
    let follower = Follower::start(store, &a.trust, POLL, false, move |event| {
        log(&event.to_string());
        if let Event::Loaded {
            bytes, revision, ..
        } = &event
        {
            match write_if_newer(&out, bytes, *revision) {
                Ok(true) => log(&format!("wrote {} (revision {revision})", out.display())),
                Ok(false) => {}
                Err(e) => log(&format!("not written: {e}")),
            }
        }
    })?;
    log(&format!(
        "following {} into {} (trusting {})",
        follower.url(),
        a.out.display(),
        follower.trust()
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            context: "start the signal handler".into(),
            source: e,
        })?;
    let signal =
        runtime.block_on(async { Ok::<_, Error>(crate::serve::shutdown_signal()?.await) })?;
    log(&format!("{signal}: stopping"));
    drop(follower);
    Ok(())
}

/// One line on stderr: time, `follow:`, the event. Never a key.
fn log(msg: &str) {
    eprintln!(
        "{} follow: {msg}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

/// Writes `bytes` (verified, of `revision`) to `out` under its lock unless the file holds
/// a newer revision or another save of the same one; `true` when written.
fn write_if_newer(out: &Path, bytes: &[u8], revision: u64) -> Result<bool> {
    let _lock = fsio::Lock::acquire(out, fsio::lock_timeout(), || {})?;
    // Equal: this very state (written before), or another save of that revision (a
    // conflict the publisher must resolve); older never replaces newer.
    if crate::publish::existing(out)?.is_some_and(|theirs| theirs.revision >= revision) {
        return Ok(false);
    }
    fsio::atomic_write_keeping_mode(out, bytes)?;
    Ok(true)
}
