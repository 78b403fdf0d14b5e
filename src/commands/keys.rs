//! The commands of the Python tool (`create`, `list`, `view`, `revoke`, `delete`, `use`,
//! `enable-requirement`) and `init`.

use std::io::{IsTerminal, Write};

use chrono::Duration;

use super::*;
use crate::keyfmt;
use crate::vault::{NewKey, Status, DEFAULT_PERMISSIONS};

pub(super) fn init(ctx: &mut Ctx, kdf: &KdfArgs, json: bool) -> Result<()> {
    let params = kdf_from_args(kdf, KdfParams::DEFAULT)?;
    if ctx.vault_path.exists() || ctx.vault_path.is_symlink() {
        return Err(Error::failed(format!(
            "{} already exists; init never overwrites a vault (use `rekey` to change its \
             passphrase or settings)",
            ctx.vault_path.display()
        )));
    }
    let pass = ctx.source.get_new("the new vault")?;
    let mut vault = Vault::create(&pass, params)?;
    vault.record(ctx.now, "init", None, None);
    fsio::ensure_parent(&ctx.vault_path)?;
    let _lock = lock(&ctx.vault_path)?;
    if ctx.vault_path.exists() {
        return Err(Error::failed(format!(
            "{} was created by another process meanwhile; init never overwrites a vault",
            ctx.vault_path.display()
        )));
    }
    fsio::atomic_write(&ctx.vault_path, &vault.to_bytes())?;
    if json {
        return print_json(
            ctx,
            &serde_json::json!({
                "vault": ctx.vault_path.display().to_string(),
                "kdf": {"algorithm": "argon2id", "memory_kib": params.memory_kib,
                        "iterations": params.iterations, "parallelism": params.parallelism},
            }),
        );
    }
    writeln!(
        ctx.out,
        "Created an empty vault at {} (Argon2id, {} KiB, {} passes, {} lane{}).\n\
         Next: mcp-key-manager create \"My key\" --use-in-env",
        ctx.vault_path.display(),
        params.memory_kib,
        params.iterations,
        params.parallelism,
        if params.parallelism == 1 { "" } else { "s" }
    )?;
    Ok(())
}

pub(super) struct CreateArgs {
    pub name: String,
    pub description: String,
    pub expires_in_days: i64,
    pub use_in_env: bool,
    pub permissions: Vec<String>,
    pub quiet: bool,
    pub json: bool,
}

pub(super) fn validate_name_description(name: &str, description: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::usage("the key name must not be empty"));
    }
    check_text("name", name, 256)?;
    check_text("description", description, 4096)
}

pub(super) fn create(ctx: &mut Ctx, a: CreateArgs) -> Result<()> {
    validate_name_description(&a.name, &a.description)?;
    if a.use_in_env {
        // Checked before the key exists, so a refusal leaves nothing half done.
        let t = fsio::resolve_symlinks(&ctx.env_path, false)?;
        refuse_vault(ctx, &t, "env file")?;
    }
    if a.expires_in_days < 0 {
        return Err(Error::usage(
            "--expires-in-days must be 0 (never) or a positive number",
        ));
    }
    let permissions = if a.permissions.is_empty() {
        DEFAULT_PERMISSIONS.iter().map(|s| s.to_string()).collect()
    } else {
        let mut p: Vec<String> = Vec::with_capacity(a.permissions.len());
        for x in &a.permissions {
            if !p.contains(x) {
                p.push(x.clone());
            }
        }
        p
    };
    check_permissions(&permissions)?;
    let now = ctx.now;
    let expires_at = (a.expires_in_days > 0).then(|| now + Duration::days(a.expires_in_days));
    let permissions_shown = permissions.clone();
    let spec = NewKey {
        name: a.name.clone(),
        description: a.description.clone(),
        expires_at,
        permissions,
    };
    let (id, key) = update_or_create(ctx, KdfParams::DEFAULT, |v| {
        let (i, key) = v.add_key(spec, now);
        if a.use_in_env {
            v.record(now, "use", Some(i), None);
        }
        Ok((v.keys()[i].id.clone(), key))
    })?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Created<'a> {
            id: &'a str,
            key: &'a SecretString,
            name: &'a str,
            description: &'a str,
            expires_at: Option<String>,
            permissions: &'a [String],
            env_file_updated: bool,
        }
        let out = Created {
            id: &id,
            key: &key,
            name: &a.name,
            description: &a.description,
            expires_at: expires_at.as_ref().map(crate::vault::records::fmt_time),
            permissions: &permissions_shown,
            env_file_updated: a.use_in_env,
        };
        serde_json::to_writer_pretty(&mut ctx.out, &out).map_err(std::io::Error::from)?;
        writeln!(ctx.out)?;
    } else if a.quiet {
        writeln!(ctx.out, "{}", key.expose())?;
    } else {
        let exp = match &expires_at {
            Some(t) => format!("expires {}, {}", human_time(t), relative(t, now)),
            None => "never expires".into(),
        };
        writeln!(
            ctx.out,
            "Created key {id} \"{}\" ({exp}).\n\n    {}\n\n\
             Store this key now: `list` and `view` never show it (only `use` writes it out \
             again). Clients send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.",
            sanitize(&a.name),
            key.expose()
        )?;
        if !a.use_in_env {
            writeln!(
                ctx.out,
                "Next: mcp-key-manager use {id}   # writes it to {} as MCP_API_KEY",
                ctx.env_path.display()
            )?;
        }
    }
    ctx.out.flush()?;
    if a.use_in_env {
        write_env(
            ctx,
            &[("MCP_API_KEY", key.expose()), ("API_KEY_REQUIRED", "true")],
        )
        .map_err(|e| match e {
            Error::Io { context, source } => Error::Io {
                context: format!(
                    "{context} (the key {id} was created and saved in the vault; run \
                         `mcp-key-manager use {id}` once the env file is writable)"
                ),
                source,
            },
            other => other,
        })?;
        if !a.quiet && !a.json {
            writeln!(
                ctx.out,
                "Wrote MCP_API_KEY and API_KEY_REQUIRED=true to {}.",
                ctx.env_path.display()
            )?;
        }
    }
    Ok(())
}

fn colored(ctx: &Ctx, status: Status, text: &str) -> String {
    if !ctx.color {
        return text.to_string();
    }
    let code = match status {
        Status::Active => "32",
        Status::Revoked => "31",
        Status::Expired => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn expiry_cell(k: &KeyRecord, now: DateTime<Utc>) -> String {
    match (&k.expires_at, k.status(now)) {
        (None, _) => "never".into(),
        (Some(t), Status::Expired) => format!("expired {}", relative(t, now)),
        (Some(t), _) => {
            let soon = if k.expires_within(now, 14) && k.revoked_at.is_none() {
                " (soon!)"
            } else {
                ""
            };
            format!("{}{soon}", relative(t, now))
        }
    }
}

pub(super) fn list(
    ctx: &mut Ctx,
    active_only: bool,
    show_keys: bool,
    expiring: Option<u32>,
    json: bool,
) -> Result<()> {
    let vault = open_vault(ctx)?;
    let now = ctx.now;
    let keys: Vec<&KeyRecord> = vault
        .keys()
        .iter()
        .filter(|k| !active_only || k.status(now) == Status::Active)
        .filter(|k| match expiring {
            Some(d) => k.status(now) == Status::Active && k.expires_within(now, i64::from(d)),
            None => true,
        })
        .collect();
    if json {
        let arr: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                let mut v = key_json(k, now);
                if show_keys {
                    v["key_hint"] = hint(k).into();
                }
                v
            })
            .collect();
        return print_json(ctx, &serde_json::Value::Array(arr));
    }
    if keys.is_empty() {
        writeln!(
            ctx.out,
            "No keys{}. Create one with: mcp-key-manager create \"My key\"",
            if active_only || expiring.is_some() {
                " match"
            } else {
                ""
            }
        )?;
        return Ok(());
    }
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(keys.len() + 1);
    rows.push([
        "ID".into(),
        "NAME".into(),
        "STATUS".into(),
        "EXPIRES (UTC)".into(),
        "PERMISSIONS".into(),
        if show_keys {
            "KEY HINT".into()
        } else {
            String::new()
        },
    ]);
    for k in &keys {
        rows.push([
            k.id.clone(),
            sanitize(&k.name),
            k.status(now).as_str().into(),
            expiry_cell(k, now),
            k.permissions.join(","),
            if show_keys { hint(k) } else { String::new() },
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Fit the terminal: narrow the name column first, then the permissions, never below a
    // readable minimum (a terminal narrower than that wraps, as `ls -l` does).
    if let Some(total) = ctx.width {
        let columns = if show_keys { 6 } else { 5 };
        let used = |w: &[usize; 6]| w[..columns].iter().sum::<usize>() + 2 * (columns - 1);
        for (col, min) in [(1, 8), (4, 10)] {
            let over = used(&widths).saturating_sub(total);
            widths[col] = widths[col].saturating_sub(over).max(min.min(widths[col]));
        }
    }
    for (n, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 5 && !show_keys {
                break;
            }
            let text = crate::display::truncate(cell, widths[c]);
            let pad = widths[c].saturating_sub(text.chars().count());
            let shown = if c == 2 && n > 0 {
                colored(ctx, keys[n - 1].status(now), &text)
            } else {
                text
            };
            line.push_str(&shown);
            let last = c == 5 || (c == 4 && !show_keys);
            if !last {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(ctx.out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn hint(k: &KeyRecord) -> String {
    if k.secret.expose().starts_with("mcp_") {
        keyfmt::hint(&k.id)
    } else {
        "(imported key)".into()
    }
}

pub(super) fn view(ctx: &mut Ctx, id: &str, json: bool) -> Result<()> {
    let vault = open_vault(ctx)?;
    let now = ctx.now;
    let k = &vault.keys()[vault.find(id)?];
    let in_env = served_key(read_env(ctx))
        .and_then(|key| env_key_index(&vault, key.expose()))
        .is_some_and(|i| vault.keys()[i].id == k.id);
    if json {
        let mut v = key_json(k, now);
        v["metadata"] = serde_json::Value::Object(k.metadata.clone());
        v["in_env_file"] = in_env.into();
        v["days_left"] = k.expires_at.map(|e| whole_days(e - now)).into();
        return print_json(ctx, &v);
    }
    let status = k.status(now);
    let expires = match &k.expires_at {
        None => "never".into(),
        Some(t) if status == Status::Expired => {
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
    };
    let mut lines = vec![
        ("ID", k.id.clone()),
        ("Name", sanitize(&k.name)),
        ("Description", sanitize(&k.description)),
        ("Status", colored(ctx, status, status.as_str())),
        ("Created", human_time(&k.created_at)),
        ("Expires", expires),
        (
            "Revoked",
            k.revoked_at
                .as_ref()
                .map(human_time)
                .unwrap_or_else(|| "-".into()),
        ),
        ("Permissions", k.permissions.join(", ")),
        ("In env file", if in_env { "yes" } else { "no" }.to_string()),
    ];
    if let Some(p) = &k.rotated_from {
        lines.push(("Rotated from", p.clone()));
    }
    if let Some(s) = &k.rotated_to {
        lines.push(("Rotated to", s.clone()));
    }
    for (label, value) in &k.metadata {
        lines.push((
            "Metadata",
            format!("{}: {}", sanitize(label), sanitize(&value.to_string())),
        ));
    }
    for (label, value) in lines {
        writeln!(ctx.out, "{:<13} {}", format!("{label}:"), value)?;
    }
    Ok(())
}

pub(super) fn revoke(ctx: &mut Ctx, id: &str, json: bool) -> Result<()> {
    let now = ctx.now;
    let (rec, was, in_env) = {
        let env_key = served_key(read_env(ctx));
        update(ctx, |v| {
            let i = v.find(id)?;
            let was = v.keys()[i].revoked_at.is_some();
            if !was {
                v.payload.keys[i].revoked_at = Some(now);
                v.record(now, "revoke", Some(i), None);
            }
            let in_env = env_key.as_ref().and_then(|k| env_key_index(v, k.expose())) == Some(i);
            Ok((key_json(&v.keys()[i], now), was, in_env))
        })?
    };
    if json {
        let mut rec = rec;
        rec["already_revoked"] = was.into();
        rec["in_env_file"] = in_env.into();
        return print_json(ctx, &rec);
    }
    let id = rec["id"].as_str().unwrap_or_default().to_string();
    if was {
        writeln!(ctx.out, "Key {id} was already revoked; nothing changed.")?;
    } else {
        writeln!(ctx.out, "Revoked key {id}.")?;
    }
    if in_env {
        writeln!(
            ctx.out,
            "Note: {} still holds this key, and a running server keeps accepting it until it \
             is given another: run `mcp-key-manager rotate {id} --use-in-env` or `create`/`use` \
             a new key, then restart the server.",
            ctx.env_path.display()
        )?;
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("read the answer from", std::path::Path::new("stdin"), e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub(super) fn delete(ctx: &mut Ctx, id: &str, yes: bool, json: bool) -> Result<()> {
    // The Python tool never asked; scripts without a terminal keep that behaviour.
    let ask = !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if ask {
        let vault = open_vault(ctx)?;
        let k = &vault.keys()[vault.find(id)?];
        if !confirm(&format!(
            "Delete key {} \"{}\"? Its record is removed for good (revoke keeps it).",
            k.id,
            sanitize(&k.name)
        ))? {
            writeln!(ctx.out, "Nothing deleted.")?;
            return Err(Error::Silent);
        }
    }
    let now = ctx.now;
    let (deleted_id, name) = update(ctx, |v| {
        let i = v.find(id)?;
        v.record(now, "delete", Some(i), None);
        let k = v.payload.keys.remove(i);
        Ok((k.id.clone(), k.name.clone()))
    })?;
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"id": deleted_id, "name": name, "deleted": true}),
        );
    }
    writeln!(ctx.out, "Deleted key {deleted_id} \"{}\".", sanitize(&name))?;
    Ok(())
}

pub(super) fn use_key(ctx: &mut Ctx, id: &str, print: bool, json: bool) -> Result<()> {
    let now = ctx.now;
    // As in `rotate`: the env file's lock is taken inside the vault's (one order, so no
    // deadlock), and the env file must be readable before the use is recorded, so a `use`
    // that cannot write the env file leaves the history alone.
    let env_target = if print {
        None
    } else {
        let t = fsio::resolve_symlinks(&ctx.env_path, false)?;
        refuse_vault(ctx, &t, "env file")?;
        Some(t)
    };
    let mut env_lock = None;
    let (kid, key) = update(ctx, |v| {
        let i = v.find(id)?;
        let k = &v.keys()[i];
        match k.status(now) {
            Status::Active => {}
            s => {
                return Err(Error::failed(format!(
                    "key {} is {}; it cannot be used. Create a new key, or `rotate {}`",
                    k.id,
                    s.as_str(),
                    k.id
                )))
            }
        }
        if let Some(t) = &env_target {
            env_lock = Some(lock(t)?);
            read_env_at(t)?;
        }
        let key = k.secret.duplicate();
        let kid = k.id.clone();
        v.record(
            now,
            "use",
            Some(i),
            Some(if print { "printed" } else { "env file" }.into()),
        );
        Ok((kid, key))
    })?;
    if print {
        writeln!(ctx.out, "{}", key.expose())?;
        return Ok(());
    }
    if let Some(t) = &env_target {
        write_env_locked(
            t,
            &[("MCP_API_KEY", key.expose()), ("API_KEY_REQUIRED", "true")],
        )?;
    }
    drop(env_lock);
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"id": kid, "env_file": ctx.env_path.display().to_string()}),
        );
    }
    writeln!(
        ctx.out,
        "Wrote key {kid} to {} as MCP_API_KEY, with API_KEY_REQUIRED=true. Restart the server \
         to pick it up.",
        ctx.env_path.display()
    )?;
    Ok(())
}

pub(super) fn enable_requirement(ctx: &mut Ctx, json: bool) -> Result<()> {
    write_env(ctx, &[("API_KEY_REQUIRED", "true")])?;
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"env_file": ctx.env_path.display().to_string(),
                                "api_key_required": true}),
        );
    }
    writeln!(
        ctx.out,
        "Set API_KEY_REQUIRED=true in {}.",
        ctx.env_path.display()
    )?;
    Ok(())
}
