//! `unlock` and `lock`: starting and ending an unlock session (what the session holds is
//! `session_key.rs`'s).

use std::io;

use serde::Serialize;

use super::context::*;
use super::output::{human_time, relative, Human, Report};
use super::session_key::{canonical, encode};
use crate::agent;
use crate::cli::UnlockArgs;
use mcp_key_verifier::time::format as fmt_time;

#[derive(Serialize)]
struct Session {
    vault: String,
    /// Set by `unlock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlocked: Option<bool>,
    /// Set by `unlock --status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<bool>,
    expires_at: Option<String>,
    pid: Option<u32>,
    memory_locked: Option<bool>,
    #[serde(skip)]
    expires: Option<chrono::DateTime<Utc>>,
    #[serde(skip)]
    started: bool,
}

impl Report for Session {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        match (&self.expires, self.started) {
            (Some(t), true) => writeln!(
                h.out,
                "Unlocked {} until {} ({}): commands need no passphrase until then.\n\
                 End it sooner with `mcp-key-manager lock`.",
                self.vault,
                human_time(t),
                relative(t, Utc::now()),
            ),
            (Some(t), false) => writeln!(
                h.out,
                "A session for {} is live until {} ({}); agent pid {}.",
                self.vault,
                human_time(t),
                relative(t, Utc::now()),
                self.pid.unwrap_or_default()
            ),
            (None, _) => writeln!(
                h.out,
                "No session is live for {}; start one with `mcp-key-manager unlock`.",
                self.vault
            ),
        }
    }

    fn ok(&self) -> bool {
        self.unlocked.or(self.live).unwrap_or(false)
    }
}

/// `unlock`: start a session (or replace the live one), or report on it.
pub(super) fn unlock_cmd(ctx: &mut Ctx, a: UnlockArgs) -> Result<()> {
    if a.status {
        return status(ctx, a.out.output());
    }
    let canon = canonical(&ctx.vault_path)?;
    // Never from a live session: starting or extending one takes the passphrase. The
    // store proves it by decrypting; the key it derived is what the session holds.
    let mut store = ctx.store().without_session();
    drop(store.open()?);
    // A format-2 vault opened through an age identity has no passphrase key to hold.
    let (kdf, salt, key) = store.derived_key().ok_or_else(|| {
        Error::usage(
            "an unlock session holds a passphrase's key; this vault was opened with an age \
             identity, which needs no session (unset MCP_KEY_VAULT_IDENTITY to unlock with \
             the passphrase)",
        )
    })?;
    drop(store);
    let info = agent::start(&canon, encode(&kdf, &salt, &key), a.timeout)?;
    drop(key);
    if !info.memory_locked {
        warn(
            "the system refused to lock the session's memory (mlock; see `ulimit -l`), so \
             the key may reach swap",
        );
    }
    let r = Session {
        vault: mcp_key_vault::display::path(&canon),
        unlocked: Some(true),
        live: None,
        expires_at: Some(fmt_time(&info.expires_at)),
        pid: Some(info.pid),
        memory_locked: Some(info.memory_locked),
        expires: Some(info.expires_at),
        started: true,
    };
    ctx.emit(a.out.output(), &r)
}

/// `unlock --status`: exit 0 and the expiry when a session is live, exit 1 when none.
fn status(ctx: &mut Ctx, output: Output) -> Result<()> {
    // A vault that cannot be resolved (deleted, moved) is shown by the path given.
    let (shown, info) = match canonical(&ctx.vault_path) {
        Ok(c) => {
            let info = agent::status(&c).unwrap_or_else(|e| {
                warn(&format!("cannot ask the session agent: {e}"));
                None
            });
            (c, info)
        }
        Err(_) => (ctx.vault_path.clone(), None),
    };
    let r = Session {
        vault: mcp_key_vault::display::path(&shown),
        unlocked: None,
        live: Some(info.is_some()),
        expires_at: info.as_ref().map(|i| fmt_time(&i.expires_at)),
        pid: info.as_ref().map(|i| i.pid),
        memory_locked: info.as_ref().map(|i| i.memory_locked),
        expires: info.as_ref().map(|i| i.expires_at),
        started: false,
    };
    ctx.emit(output, &r)
}

#[derive(Serialize)]
struct Locked {
    vault: String,
    ended: bool,
}

impl Report for Locked {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if self.ended {
            writeln!(h.out, "Locked {}: the session ended.", self.vault)
        } else {
            writeln!(h.out, "No session was live for {}.", self.vault)
        }
    }
}

/// `lock`: end the session; succeeds whether or not one was live.
pub(super) fn lock_cmd(ctx: &mut Ctx, a: crate::cli::JsonFlag) -> Result<()> {
    let (shown, ended) = match canonical(&ctx.vault_path) {
        Ok(c) => (c.clone(), agent::stop(&c)?),
        Err(_) => (ctx.vault_path.clone(), false),
    };
    let r = Locked {
        vault: mcp_key_vault::display::path(&shown),
        ended,
    };
    ctx.emit(a.output(), &r)
}
