//! Key lifecycle: `rotate`, `grant`/`deny`, `rekey` and `history`.

use std::io;

use serde::Serialize;

use super::context::*;
use super::keys::join;
use super::output::{human_time, relative, Human, KeyView, Many, Report};
use crate::cli::{HistoryArgs, LimitArgs, PermissionArgs, RekeyArgs, RotateArgs};
use mcp_key_vault::display::sanitize;
use mcp_key_vault::{Event, KeyId, Permission, Selector, Status};
use mcp_key_verifier::time::format as fmt_time;

#[derive(Serialize)]
struct Rotated {
    old_id: KeyId,
    id: KeyId,
    key: SecretString,
    old_status: &'static str,
    old_valid_until: Option<String>,
    env_file_updated: bool,
    /// The published verifier files rewritten with the successor.
    verifiers_updated: Vec<String>,
    #[serde(skip)]
    was_active: bool,
    #[serde(skip)]
    status_before: Status,
    #[serde(skip)]
    was_in_env: bool,
    #[serde(skip)]
    env_file: String,
}

impl Report for Rotated {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let (old, new) = (&self.old_id, &self.id);
        if self.status_before != Status::Active {
            let was = self.status_before.as_str();
            writeln!(
                h.out,
                "Note: key {old} was already {was}; rotating it makes a live replacement."
            )?;
        }
        writeln!(
            h.out,
            "Rotated key {old} -> {new}.\n\n    {}\n\nStore this key now: `list` and `view` never show it.",
            self.key.expose()
        )?;
        match self
            .old_valid_until
            .as_deref()
            .and_then(mcp_key_verifier::time::parse)
        {
            Some(t) if self.was_active => writeln!(
                h.out,
                "The old key {old} stays valid until {} ({}).",
                human_time(&t),
                relative(&t, h.now)
            )?,
            _ => writeln!(h.out, "The old key {old} is revoked.")?,
        }
        if !self.verifiers_updated.is_empty() {
            writeln!(
                h.out,
                "Updated {}: servers reading it accept the new key now.",
                self.verifiers_updated.join(", ")
            )?;
        }
        if self.env_file_updated {
            let held = if self.was_in_env {
                " (it held the old one)"
            } else {
                ""
            };
            writeln!(
                h.out,
                "{} now holds the new key{held}. Restart the server to pick it up.",
                self.env_file
            )
        } else {
            writeln!(
                h.out,
                "Next: hand the new key to the client that used {old}."
            )
        }
    }

    fn quiet(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(h.out, "{}", self.key.expose())
    }
}

pub(super) fn rotate(ctx: &mut Ctx, a: RotateArgs) -> Result<()> {
    let mut store = ctx.store();
    let mut tx = store.begin()?;
    // The change's time: after the passphrase and any wait for another writer's lock.
    let now = now();
    let v = tx.vault();
    let i = select(v, a.key.selector())?;
    // The env file is locked inside the vault's lock (the order `use` takes them in too)
    // and read under it, so whether it holds the old key, and moving it to the successor,
    // happen in one locked operation that no concurrent `use` can slip into.
    let env = ctx.lock_env()?;
    let served = env
        .read()?
        .and_then(|e| e.value("MCP_API_KEY").map(String::from))
        .map(SecretString::new);
    let in_env = served.is_some_and(|k| v.find_by_key(k.expose()) == Some(i));
    if a.use_in_env || in_env {
        // Refused before the rotation is saved: an env file that cannot take the successor.
        ctx.env.check_writable(&ctx.vault_path)?;
    }
    let rot = v.rotate(i, a.grace_days, now)?;
    // The successor is saved before the env file names it (see `create`).
    tx.commit()?;
    let follow = a.use_in_env || in_env;
    if follow {
        env.set(&[
            ("MCP_API_KEY", rot.key.expose()),
            ("API_KEY_REQUIRED", "true"),
        ])?;
        warn_if_exposed(env.target(), "env file");
        tx.vault().record_use(rot.new, now, "env file");
        tx.commit()?;
    }
    drop(env);
    let v = tx.vault();
    let graced = a.grace_days.is_some() && rot.old_status == Status::Active;
    let r = Rotated {
        old_id: v.keys()[rot.old].id.clone(),
        id: v.keys()[rot.new].id.clone(),
        key: rot.key,
        old_status: match rot.old_status {
            Status::Expired => "expired",
            _ if graced => "active",
            _ => "revoked",
        },
        old_valid_until: rot.old_valid_until.as_ref().map(fmt_time),
        env_file_updated: follow,
        was_active: rot.old_status == Status::Active,
        status_before: rot.old_status,
        was_in_env: in_env,
        verifiers_updated: ctx.republished(),
        env_file: ctx.env_shown(),
    };
    drop(tx); // republishes, once
    let r = Rotated {
        verifiers_updated: ctx.republished(),
        ..r
    };
    ctx.emit(a.out.output(), &r)
        .and_then(|()| ctx.flush())
        .map_err(|e| super::keys::key_not_shown(e, &r.id))?;
    ctx.finish()
}

#[derive(Serialize)]
#[serde(transparent)]
struct PermissionsChanged {
    key: KeyView,
}

impl Report for PermissionsChanged {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let p = &self.key.permissions;
        let shown = if p.is_empty() {
            "(none)".into()
        } else {
            join(p, ", ")
        };
        writeln!(h.out, "Key {} now has permissions: {shown}", self.key.id)
    }
}

/// The keys and permissions of `grant`/`deny`: `ID PERM…`, or with `--key`/`--name`,
/// only permissions.
fn keys_and_permissions(a: &PermissionArgs) -> Result<(Vec<Selector<'_>>, Vec<Permission>)> {
    let explicit = !a.keys.is_empty() || !a.names.is_empty();
    let (mut sels, perms) = if explicit {
        (Vec::new(), &a.args[..])
    } else {
        (vec![Selector::Id(&a.args[0])], &a.args[1..])
    };
    sels.extend(a.keys.iter().map(|k| Selector::Id(k)));
    sels.extend(a.names.iter().map(|n| Selector::Name(n)));
    if perms.is_empty() {
        return Err(Error::usage("name at least one permission after the key"));
    }
    let perms = perms
        .iter()
        .map(|p| {
            p.parse::<Permission>()
                .map_err(|e| Error::usage(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((sels, perms))
}

pub(super) fn change_permissions(ctx: &mut Ctx, a: PermissionArgs, grant: bool) -> Result<()> {
    let (sels, perms) = keys_and_permissions(&a)?;
    let mut store = ctx.store();
    let r = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let chosen = select_all(v, &sels)?;
        let mut out = Vec::with_capacity(chosen.len());
        for i in chosen {
            if grant {
                v.grant(i, &perms, now);
            } else {
                v.deny(i, &perms, now);
            }
            out.push(PermissionsChanged {
                key: KeyView::of(&v.keys()[i], now),
            });
        }
        Ok(out)
    })?;
    ctx.emit(a.out.output(), &Many(r))?;
    ctx.finish()
}

#[derive(Serialize)]
struct LimitSet {
    id: KeyId,
    /// The limit now (`100/min`), or `None`.
    rate_limit: Option<String>,
    changed: bool,
    verifiers_updated: Vec<String>,
}

impl Report for LimitSet {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let id = &self.id;
        let now = match &self.rate_limit {
            Some(l) => format!("Key {id} is limited to {l}"),
            None => format!("Key {id} has no rate limit"),
        };
        let unchanged = if self.changed { "" } else { " (unchanged)" };
        writeln!(h.out, "{now}{unchanged}.")?;
        if self.changed && !self.verifiers_updated.is_empty() {
            writeln!(
                h.out,
                "Updated {}: servers reading it enforce the change once they reload.",
                self.verifiers_updated.join(", ")
            )?;
        }
        Ok(())
    }
}

/// `limit ID LIMIT` / `limit --name NAME LIMIT`.
pub(super) fn limit(ctx: &mut Ctx, a: LimitArgs) -> Result<()> {
    let (sel, text) = match (&a.name, &a.args[..]) {
        (Some(n), [l]) => (Selector::Name(n), l),
        (None, [id, l]) => (Selector::Id(id), l),
        (Some(_), _) => return Err(Error::usage("with --name, give only the limit")),
        (None, _) => return Err(Error::usage("give the key's id, then the limit")),
    };
    let limit = match text.trim() {
        "none" => None,
        t => Some(
            t.parse::<mcp_key_verifier::RateLimit>()
                .map_err(|e| Error::usage(format!("{e}, or none")))?,
        ),
    };
    let mut store = ctx.store();
    let r = store.update::<_, Error>(|v| {
        let now = now();
        let i = select(v, sel)?;
        let changed = v.set_rate_limit(i, limit, now)?;
        Ok(LimitSet {
            id: v.keys()[i].id.clone(),
            rate_limit: limit.map(|l| l.to_string()),
            changed,
            verifiers_updated: Vec::new(),
        })
    })?;
    let r = LimitSet {
        verifiers_updated: ctx.republished(),
        ..r
    };
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}

#[derive(Serialize)]
struct Rekeyed {
    rekeyed: bool,
    kdf: super::keys::KdfView,
}

impl Report for Rekeyed {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let k = &self.kdf;
        writeln!(
            h.out,
            "Changed the vault passphrase (Argon2id, {} KiB, {} passes, {} lane(s)); the old \
             passphrase no longer opens it. Update any CI secret that held it.",
            k.memory_kib, k.iterations, k.parallelism
        )
    }
}

pub(super) fn rekey(ctx: &mut Ctx, a: RekeyArgs) -> Result<()> {
    let new_source = Source::new_for_rekey(a.new_passphrase_file).allow_weak(ctx.term.allow_weak());
    let mut store = ctx.store();
    // Keep the vault's settings unless told otherwise, but never carry weak ones forward.
    let current = store.header()?.kdf();
    let base = if current.below_policy() {
        KdfParams::DEFAULT
    } else {
        current
    };
    let params = kdf_from_args(&a.kdf, base)?;
    store.rekey::<Error>(params, || Ok(new_source.get_new("the vault")?))?;
    super::session_key::end_after_rekey(&ctx.vault_path);
    let r = Rekeyed {
        rekeyed: true,
        kdf: params.into(),
    };
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}

#[derive(Serialize)]
struct EventView<'a> {
    at: String,
    action: &'static str,
    key_id: Option<&'a KeyId>,
    name: Option<&'a str>,
    detail: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct History<'a> {
    events: Vec<EventView<'a>>,
}

impl Report for History<'_> {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if self.events.is_empty() {
            return writeln!(h.out, "No events.");
        }
        for e in &self.events {
            let at = mcp_key_verifier::time::parse(&e.at).unwrap_or(h.now);
            let line = format!(
                "{}  {:<8} {:<16} {}{}",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                e.action,
                e.key_id.map_or("-".into(), |k| k.to_string()),
                e.name.map(sanitize).unwrap_or_default(),
                e.detail
                    .map(|d| format!(" ({})", sanitize(d)))
                    .unwrap_or_default()
            );
            writeln!(h.out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// The one id among the vault's keys and its history's (deleted keys included) that
/// `prefix` names.
fn history_id(events: &[Event], keys: &mcp_key_vault::Keys, prefix: &str) -> Result<KeyId> {
    let mut ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.key_id.as_ref().map(KeyId::as_str))
        .chain(keys.ids())
        .filter(|i| i.starts_with(prefix))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if let Some(exact) = ids.iter().find(|i| **i == prefix) {
        return Ok(KeyId::from(*exact));
    }
    match ids.as_slice() {
        [one] => Ok(KeyId::from(*one)),
        [] if mcp_key_vault::looks_like_key(prefix) => Err(Error::usage(
            "that looks like a whole key, not an id: give only its id (see `list`), and never \
             put a key on the command line",
        )),
        [] => Err(Error::KeyNotFound {
            message: mcp_key_vault::not_found(prefix) + " (in the vault or its history)",
        }),
        many => {
            let list: Vec<String> = many.iter().map(|i| i.to_string()).collect();
            Err(Error::failed(format!(
                "the id prefix {} is ambiguous: it matches {}; give more characters",
                sanitize(prefix),
                list.join(", ")
            )))
        }
    }
}

pub(super) fn history(ctx: &mut Ctx, a: HistoryArgs) -> Result<()> {
    let vault = ctx.store().open()?;
    let wanted = match a.id.as_deref() {
        None => None,
        Some(prefix) => Some(history_id(vault.events(), vault.keys(), prefix)?),
    };
    let events = vault
        .events()
        .iter()
        .filter(|e| wanted.is_none() || e.key_id == wanted)
        .map(|e| EventView {
            at: fmt_time(&e.at),
            action: e.action.as_str(),
            key_id: e.key_id.as_ref(),
            name: e.name.as_deref(),
            detail: e.detail.as_deref(),
        })
        .collect();
    ctx.emit(a.out.output(), &History { events })
}
