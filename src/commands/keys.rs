//! The commands of the Python tool (`create`, `view`, `revoke`, `delete`, `use`,
//! `enable-requirement`; `list` has its own file) and `init`.

use std::io::{self, IsTerminal, Write};

use chrono::Duration;
use serde::Serialize;

use super::context::*;
use super::output::{human_time, relative, s, whole_days, Human, KeyView, Many, Report};
use crate::cli::{CreateArgs, DeleteArgs, InitArgs, JsonFlag, RevokeArgs, UseArgs, ViewArgs};
use mcp_key_vault::display::sanitize;
use mcp_key_vault::Expect;
use mcp_key_vault::{EventAction, KeyId, KeyRecord, NewKey, Permission, Status, Vault};

/// Argon2id settings as `init` and `rekey` report them.
#[derive(Serialize)]
pub(super) struct KdfView {
    algorithm: &'static str,
    pub(super) memory_kib: u32,
    pub(super) iterations: u32,
    pub(super) parallelism: u32,
}

impl From<KdfParams> for KdfView {
    fn from(k: KdfParams) -> Self {
        KdfView {
            algorithm: "argon2id",
            memory_kib: k.memory_kib,
            iterations: k.iterations,
            parallelism: k.parallelism,
        }
    }
}

#[derive(Serialize)]
struct Initialized {
    vault: String,
    kdf: KdfView,
    /// The vault's fingerprint (`mkv1:…`): what an identity open is pinned to.
    fingerprint: Option<String>,
    /// The organisation prefix its keys carry, if one was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_prefix: Option<String>,
}

impl Report for Initialized {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let k = &self.kdf;
        writeln!(
            h.out,
            "Created an empty vault at {} (Argon2id, {} KiB, {} passes, {} lane{}).\n\
             Next: mcp-key-manager create \"My key\"",
            self.vault,
            k.memory_kib,
            k.iterations,
            k.parallelism,
            s(k.parallelism as usize)
        )?;
        if let Some(fp) = &self.fingerprint {
            writeln!(
                h.out,
                "Fingerprint: {fp} (where the vault is opened with an age identity, pin it: \
                 MCP_KEY_VAULT_FINGERPRINT or --expect-vault)"
            )?;
        }
        Ok(())
    }
}

pub(super) fn init(ctx: &mut Ctx, a: InitArgs) -> Result<()> {
    let params = kdf_from_args(&a.kdf, KdfParams::DEFAULT)?;
    let mut store = ctx.store();
    if store.exists() {
        return Err(Error::failed(format!(
            "{} already exists; init never overwrites a vault (use `rekey` to change its \
             passphrase or settings)",
            mcp_key_vault::display::path(store.path())
        )));
    }
    let prefix = match a.key_prefix.as_deref() {
        Some(p) => Some(mcp_key_vault::keyfmt::OrgPrefix::new(p).ok_or_else(|| {
            Error::usage(
                "--key-prefix is 1-16 characters: a lowercase letter, then lowercase letters \
                 and digits, and not mcp",
            )
        })?),
        None => None,
    };
    let pass = ctx.term.new_passphrase("the new vault")?;
    let mut vault = Vault::create(&pass, params)?;
    if let Some(p) = &prefix {
        vault.set_key_prefix(p)?;
    }
    vault.record(ctx.now, EventAction::Init, None, None);
    let fingerprint = vault.fingerprint();
    store.create::<Error>(vault, Expect::Absent, || Ok(()))?;
    let r = Initialized {
        vault: mcp_key_vault::display::path(store.path()),
        kdf: params.into(),
        fingerprint,
        key_prefix: prefix.map(|p| p.as_str().to_owned()),
    };
    ctx.emit(a.out.output(), &r)
}

#[derive(Serialize)]
struct Created {
    id: KeyId,
    key: SecretString,
    name: String,
    description: String,
    expires_at: Option<String>,
    permissions: Vec<Permission>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<String>,
    env_file_updated: bool,
    /// The published verifier files rewritten with the key (servers accept it once they reload).
    verifiers_updated: Vec<String>,
    #[serde(skip)]
    env_file: String,
}

impl Report for Created {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let exp = match self
            .expires_at
            .as_deref()
            .and_then(mcp_key_verifier::time::parse)
        {
            Some(t) => format!("expires {}, {}", human_time(&t), relative(&t, h.now)),
            None => "never expires".into(),
        };
        let exp = match &self.rate_limit {
            Some(l) => format!("{exp}; limited to {l}"),
            None => exp,
        };
        writeln!(
            h.out,
            "Created key {} \"{}\" ({exp}).\n\n    {}\n\n\
             Store this key now: `list` and `view` never show it (only `use` writes it out \
             again). Clients send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.",
            self.id,
            sanitize(&self.name),
            self.key.expose()
        )?;
        if self.env_file_updated {
            writeln!(
                h.out,
                "Wrote MCP_API_KEY and API_KEY_REQUIRED=true to {}.",
                self.env_file
            )
        } else if !self.verifiers_updated.is_empty() {
            // Never suggest `use` here: with published verifiers the server checks keys
            // itself, and `use` would replace its own key with a client's.
            writeln!(
                h.out,
                "Rewrote {} with the key: servers reading it accept it once they reload \
                 (`serve` and the Rust crate look every 200 ms, the Python and TypeScript \
                 packages every 250 ms). Then hand it to the client that will use it.",
                self.verifiers_updated.join(", ")
            )
        } else {
            writeln!(
                h.out,
                "Next: hand the key to the client that will use it, and keep servers current \
                 with `mcp-key-manager publish PATH`. (Only for the key a server itself \
                 expects in {}: mcp-key-manager use {}.)",
                self.env_file, self.id
            )
        }
    }

    fn quiet(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(h.out, "{}", self.key.expose())
    }
}

/// A failure to print a key that is already stored: reported, never success, and with
/// the way to get the key out again.
pub(super) fn key_not_shown(e: Error, id: &KeyId) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            context: format!(
                "print the new key {id} (it is stored in the vault: `mcp-key-manager use {id} \
                 --print` prints it)"
            ),
            source,
        },
        other => other,
    }
}

fn permissions_or_default(given: Vec<Permission>) -> Vec<Permission> {
    if given.is_empty() {
        return Permission::defaults();
    }
    let mut p: Vec<Permission> = Vec::with_capacity(given.len());
    for x in given {
        if !p.contains(&x) {
            p.push(x);
        }
    }
    p
}

pub(super) fn create(ctx: &mut Ctx, a: CreateArgs) -> Result<()> {
    validate_name_description(&a.name, &a.description)?;
    let permissions = permissions_or_default(a.permissions);
    if a.use_in_env {
        // Checked before the key exists, so a refusal leaves nothing half done.
        ctx.env.check_writable(&ctx.vault_path)?;
    }
    let mut store = ctx.store();
    let mut tx = store.begin_or_create::<Error>(KdfParams::DEFAULT)?;
    // The key is made now, after the passphrase and the lock: its time (and its expiry)
    // follow every event saved before it, the vault's `init` included.
    let now = now();
    let spec = NewKey {
        name: a.name,
        description: a.description,
        expires_at: (a.expires_in_days > 0).then(|| now + Duration::days(a.expires_in_days)),
        permissions,
    };
    let (i, key) = tx.vault().create_key(spec, now);
    if a.rate_limit.is_some() {
        // Refused (format 1) before anything is saved: the transaction is not committed.
        tx.vault().set_rate_limit(i, a.rate_limit, now)?;
    }
    // The key is saved before it is written anywhere, and the `use` recorded only once
    // the env file holds it (both under the vault's lock): a crash or a failure between
    // the steps leaves a stored key and an env file without it, never an unknown key.
    tx.commit()?;
    let k = &tx.vault().keys()[i];
    let r = Created {
        id: k.id.clone(),
        key,
        name: k.name.clone(),
        description: k.description.clone(),
        expires_at: k.expires_at.as_ref().map(mcp_key_verifier::time::format),
        permissions: k.permissions.clone(),
        rate_limit: a.rate_limit.map(|l| l.to_string()),
        env_file_updated: a.use_in_env,
        verifiers_updated: ctx.republished(),
        env_file: ctx.env_shown(),
    };
    if a.use_in_env {
        ctx.set_env(&[
            ("MCP_API_KEY", r.key.expose()),
            ("API_KEY_REQUIRED", "true"),
        ])
        .map_err(|e| key_not_in_env(e, &r.id))?;
        tx.vault().record_use(i, now, "env file");
        tx.commit()?;
    }
    drop(tx); // republishes, once
    let r = Created {
        verifiers_updated: ctx.republished(),
        ..r
    };
    ctx.emit(a.out.output(), &r)
        .and_then(|()| ctx.flush())
        .map_err(|e| key_not_shown(e, &r.id))?;
    ctx.finish()
}

/// A failure to write a key that is already stored into the env file.
fn key_not_in_env(e: Error, id: &KeyId) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: format!(
                "{context} (the key {id} was created and saved in the vault; run \
                 `mcp-key-manager use {id}` once the env file is writable)"
            ),
            source,
        },
        other => other,
    }
}

#[derive(Serialize)]
struct Viewed {
    #[serde(flatten)]
    key: KeyView,
    metadata: serde_json::Map<String, serde_json::Value>,
    /// The rate limit (`100/min`), if the key has one.
    rate_limit: Option<String>,
    in_env_file: bool,
    days_left: Option<i64>,
    /// The last use `serve` saw, when usage data exists.
    last_used_at: Option<String>,
    /// With `--usage redis://…`: the last 30 UTC days with use, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    daily: Option<Vec<crate::fleet::usage::DayUsage>>,
    #[serde(skip)]
    expires: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip)]
    revoked: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip)]
    created: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    status: Status,
}

impl Viewed {
    fn status_line(&self, h: &Human<'_>) -> String {
        let s = h.status_colored(self.status, self.key.status);
        match (&self.key.rotated_to, &self.expires, self.status) {
            (Some(next), Some(t), Status::Active) => {
                format!("{s} (grace until {}, replaced by {next})", human_time(t))
            }
            _ => s,
        }
    }

    fn expires_line(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        match &self.expires {
            None => "never".into(),
            Some(t) if self.status == Status::Expired => {
                format!("{} (expired {})", human_time(t), relative(t, now))
            }
            Some(t) if *t - now >= Duration::hours(36) => {
                format!("{} ({} days left)", human_time(t), whole_days(*t - now))
            }
            Some(t) => format!(
                "{} ({}, under 2 days left)",
                human_time(t),
                relative(t, now)
            ),
        }
    }
}

impl Report for Viewed {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let k = &self.key;
        let mut lines = vec![
            ("ID", k.id.to_string()),
            ("Name", sanitize(&k.name)),
            ("Description", sanitize(&k.description)),
            ("Status", self.status_line(h)),
            ("Created", human_time(&self.created)),
            ("Expires", self.expires_line(h.now)),
            (
                "Revoked",
                self.revoked.as_ref().map_or("-".into(), human_time),
            ),
            ("Permissions", join(&k.permissions, ", ")),
            (
                "Rate limit",
                self.rate_limit.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "In env file",
                if self.in_env_file { "yes" } else { "no" }.into(),
            ),
            (
                "Last used",
                self.last_used_at
                    .as_deref()
                    .and_then(mcp_key_verifier::time::parse)
                    .map_or("-".into(), |t| {
                        format!("{} ({})", human_time(&t), relative(&t, h.now))
                    }),
            ),
        ];
        if let Some(p) = &k.rotated_from {
            lines.push(("Rotated from", p.to_string()));
        }
        if let Some(s) = &k.rotated_to {
            lines.push(("Rotated to", s.to_string()));
        }
        for (label, value) in &self.metadata {
            let v = format!("{}: {}", sanitize(label), sanitize(&value.to_string()));
            lines.push(("Metadata", v));
        }
        for (label, value) in lines {
            writeln!(h.out, "{:<13} {}", format!("{label}:"), value)?;
        }
        for d in self.daily.iter().flatten().take(7) {
            let counts: Vec<String> = d
                .counts
                .iter()
                .map(|(c, n)| format!("{} {n}", sanitize(c)))
                .collect();
            let tools: Vec<String> = d
                .tools
                .iter()
                .map(|(t, n)| format!("{} {n}", sanitize(t)))
                .collect();
            let tools = if tools.is_empty() {
                String::new()
            } else {
                format!("; tools: {}", tools.join(", "))
            };
            writeln!(
                h.out,
                "{:<13} {}: {}{tools}",
                "Usage:",
                d.day,
                counts.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Permissions as text, escaped.
pub(super) fn join(perms: &[Permission], sep: &str) -> String {
    let v: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
    v.join(sep)
}

/// The index of the key that the env file serves, if it is one of this vault's.
fn served_index(ctx: &Ctx, vault: &Vault) -> Option<usize> {
    let env = ctx.env.read().ok().flatten()?;
    let key = SecretString::new(env.value("MCP_API_KEY")?.to_string());
    vault.find_by_key(key.expose())
}

pub(super) fn view(ctx: &mut Ctx, a: ViewArgs) -> Result<()> {
    let vault = ctx.store().open()?;
    let now = ctx.now;
    let i = select(&vault, a.key.selector())?;
    let k = &vault.keys()[i];
    let usage = super::usage::merged(&vault, &a.usage, ctx.now).unwrap_or_default();
    let daily = match a.usage.files.iter().find_map(|f| {
        f.to_str()
            .filter(|u| crate::fleet::store::is_store(u))
            .map(str::to_owned)
    }) {
        Some(url) => Some(crate::fleet::usage::read_days(
            &url,
            k.id.as_str(),
            now,
            30,
        )?),
        None => None,
    };
    let r = Viewed {
        daily,
        last_used_at: usage
            .get(k.id.as_str())
            .and_then(|u| u.last_used_at.as_ref())
            .map(mcp_key_verifier::time::format),
        key: KeyView::of(k, now),
        metadata: k.metadata.clone(),
        rate_limit: vault.rate_limit(i).map(|l| l.to_string()),
        in_env_file: served_index(ctx, &vault) == Some(i),
        days_left: k.expires_at.map(|e| whole_days(e - now)),
        expires: k.expires_at,
        revoked: k.revoked_at,
        created: k.created_at,
        status: k.status(now),
    };
    ctx.emit(a.out.output(), &r)
}

#[derive(Serialize)]
struct Revoked {
    #[serde(flatten)]
    key: KeyView,
    already_revoked: bool,
    in_env_file: bool,
    /// The published verifier files that now refuse the key.
    verifiers_updated: Vec<String>,
    #[serde(skip)]
    env_file: String,
    /// Whether this entry says which verifiers were rewritten: one change, one line, however
    /// many keys it revoked (the last entry says it).
    #[serde(skip)]
    announce: bool,
    /// How many keys the change revoked (for the wording of that line).
    #[serde(skip)]
    key_count: usize,
}

impl Report for Revoked {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        let id = &self.key.id;
        if self.already_revoked {
            writeln!(h.out, "Key {id} was already revoked; nothing changed.")?;
        } else {
            writeln!(h.out, "Revoked key {id}.")?;
        }
        if self.announce && !self.verifiers_updated.is_empty() {
            writeln!(
                h.out,
                "Updated {}: servers reading it refuse the revoked key{} at their next reload \
                 (within a second), with nothing restarted.",
                self.verifiers_updated.join(", "),
                if self.key_count > 1 { "s" } else { "" }
            )?;
        }
        if self.in_env_file {
            writeln!(
                h.out,
                "Note: {} still holds this key, and a running server keeps accepting it until \
                 it is given another: run `mcp-key-manager rotate {id} --use-in-env` or \
                 `create`/`use` a new key, then restart the server.",
                self.env_file
            )?;
        }
        Ok(())
    }
}

pub(super) fn revoke(ctx: &mut Ctx, a: RevokeArgs) -> Result<()> {
    let mut store = ctx.store();
    let r = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let chosen = select_all(v, &a.keys.selectors())?;
        // Read under the vault lock, which every writer of MCP_API_KEY holds too: a
        // concurrent `use` either ran before (and this sees its key) or runs after (and
        // refuses the revoked key).
        let served = served_index(ctx, v);
        let mut out = Vec::with_capacity(chosen.len());
        for i in chosen {
            let changed = v.revoke(i, now);
            out.push(Revoked {
                key: KeyView::of(&v.keys()[i], now),
                already_revoked: !changed,
                in_env_file: served == Some(i),
                verifiers_updated: Vec::new(),
                env_file: ctx.env_shown(),
                announce: false,
                key_count: 0,
            });
        }
        Ok(out)
    })?;
    let updated = ctx.republished();
    let n = r.len();
    let r = r.into_iter().enumerate().map(|(i, x)| Revoked {
        verifiers_updated: updated.clone(),
        announce: i + 1 == n,
        key_count: n,
        ..x
    });
    ctx.emit(a.out.output(), &Many(r.collect()))?;
    ctx.finish()
}

fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("read the answer from", Path::new("stdin"), e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[derive(Serialize)]
struct Deleted {
    id: KeyId,
    name: String,
    deleted: bool,
}

impl Report for Deleted {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Deleted key {} \"{}\".",
            self.id,
            sanitize(&self.name)
        )
    }
}

pub(super) fn delete(ctx: &mut Ctx, a: DeleteArgs) -> Result<()> {
    // The Python tool never asked; scripts without a terminal keep that behaviour.
    let ask = !a.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut store = ctx.store();
    if ask {
        let vault = store.open()?;
        let named: Vec<String> = select_all(&vault, &a.keys.selectors())?
            .into_iter()
            .map(|i| {
                format!(
                    "{} \"{}\"",
                    vault.keys()[i].id,
                    sanitize(&vault.keys()[i].name)
                )
            })
            .collect();
        let q = format!(
            "Delete {}? The record{} removed for good (revoke keeps it).",
            named.join(", "),
            if named.len() == 1 { " is" } else { "s are" }
        );
        if !confirm(&q)? {
            writeln!(ctx.out, "Nothing deleted.").map_err(output::stdout_error)?;
            return Err(Error::Silent);
        }
    }
    let r = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let mut chosen = select_all(v, &a.keys.selectors())?;
        // Highest index first, so each removal leaves the others' indices valid.
        let mut out = Vec::with_capacity(chosen.len());
        let order = chosen.clone();
        chosen.sort_unstable_by(|x, y| y.cmp(x));
        for i in chosen {
            let k = v.delete(i, now);
            out.push((
                i,
                Deleted {
                    id: k.id.clone(),
                    name: k.name.clone(),
                    deleted: true,
                },
            ));
        }
        out.sort_by_key(|(i, _)| order.iter().position(|j| j == i));
        Ok(out.into_iter().map(|(_, d)| d).collect())
    })?;
    ctx.emit(a.out.output(), &Many(r))?;
    ctx.finish()
}

#[derive(Serialize)]
struct Used {
    id: KeyId,
    env_file: String,
}

impl Report for Used {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Wrote key {} to {} as MCP_API_KEY, with API_KEY_REQUIRED=true. Restart the server \
             to pick it up.",
            self.id, self.env_file
        )
    }
}

/// Refuses to hand out a key that no server accepts (`use`, `headers`).
pub(super) fn refuse_unusable(k: &KeyRecord, now: DateTime<Utc>) -> Result<()> {
    if let s @ (Status::Revoked | Status::Expired) = k.status(now) {
        return Err(Error::failed(format!(
            "key {} is {}; it cannot be used. Create a new key, or `rotate {}`",
            k.id,
            s.as_str(),
            k.id
        )));
    }
    Ok(())
}

pub(super) fn use_key(ctx: &mut Ctx, a: UseArgs) -> Result<()> {
    let mut store = ctx.store();
    let (id, key) = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase and any wait for another writer's lock.
        let now = now();
        let i = select(v, a.key.selector())?;
        let k = &v.keys()[i];
        refuse_unusable(k, now)?;
        let (id, key) = (k.id.clone(), k.secret.duplicate());
        // The env file is written inside the vault's lock, before the use is recorded: a
        // `use` that cannot write it leaves the vault and its history alone.
        if !a.print {
            ctx.set_env(&[("MCP_API_KEY", key.expose()), ("API_KEY_REQUIRED", "true")])?;
        }
        v.record_use(i, now, if a.print { "printed" } else { "env file" });
        Ok((id, key))
    })?;
    if a.print {
        writeln!(ctx.out, "{}", key.expose()).map_err(output::stdout_error)?;
        return ctx.finish();
    }
    let r = Used {
        id,
        env_file: ctx.env_shown(),
    };
    let output = if a.json { Output::Json } else { Output::Human };
    ctx.emit(output, &r)?;
    ctx.finish()
}

#[derive(Serialize)]
struct RequirementSet {
    env_file: String,
    api_key_required: bool,
}

impl Report for RequirementSet {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(h.out, "Set API_KEY_REQUIRED=true in {}.", self.env_file)
    }
}

pub(super) fn enable_requirement(ctx: &mut Ctx, a: JsonFlag) -> Result<()> {
    ctx.set_env(&[("API_KEY_REQUIRED", "true")])?;
    let r = RequirementSet {
        env_file: ctx.env_shown(),
        api_key_required: true,
    };
    ctx.emit(a.output(), &r)
}
