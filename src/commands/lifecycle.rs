//! Key lifecycle: `rotate`, `grant`/`deny`, `rekey`, `history` and `import-legacy`.

use std::io::Write;

use chrono::Duration;

use super::keys::validate_name_description;
use super::*;
use crate::legacy;
use crate::passphrase::Source;
use crate::vault::format::Detected;
use crate::vault::records::fmt_time;
use crate::vault::{NewKey, Payload, Status};

pub(super) fn rotate(
    ctx: &mut Ctx,
    id: &str,
    grace_days: Option<u32>,
    use_in_env: bool,
    quiet: bool,
    json: bool,
) -> Result<()> {
    let now = ctx.now;
    // The env file is locked inside the vault's lock (the order `use` takes them in too)
    // and read under it, so whether it holds the old key, and moving it to the successor,
    // happen in one locked operation that no concurrent `use` can slip into.
    let env_target = fsio::resolve_symlinks(&ctx.env_path, false)?;
    refuse_vault(ctx, &env_target, "env file")?;
    let mut env_lock = None;
    let outcome = update(ctx, |v| {
        let i = v.find(id)?;
        env_lock = Some(lock(&env_target)?);
        let env_key = served_key(read_env_at(&env_target));
        let old_status = v.keys()[i].status(now);
        let in_env = env_key.as_ref().and_then(|k| env_key_index(v, k.expose())) == Some(i);
        let old = &v.keys()[i];
        if let Some(next) = &old.rotated_to {
            if v.keys().iter().any(|k| &k.id == next) {
                return Err(Error::failed(format!(
                    "key {} was already rotated to {next}; rotate {next} instead",
                    old.id
                )));
            }
        }
        let validity = old.expires_at.map(|e| e - old.created_at);
        let spec = NewKey {
            name: old.name.clone(),
            description: old.description.clone(),
            expires_at: validity.map(|d| now + d.max(Duration::days(1))),
            permissions: old.permissions.clone(),
        };
        let old_id = old.id.clone();
        let (j, key) = v.add_key(spec, now);
        let new_id = v.keys()[j].id.clone();
        v.payload.keys[j].rotated_from = Some(old_id.clone());
        let o = &mut v.payload.keys[i];
        o.rotated_to = Some(new_id.clone());
        let old_end = match grace_days {
            Some(d) => {
                let until = now + Duration::days(i64::from(d));
                if o.revoked_at.is_none() {
                    o.expires_at = Some(o.expires_at.map_or(until, |e| e.min(until)));
                }
                o.expires_at
            }
            None => {
                if o.revoked_at.is_none() {
                    o.revoked_at = Some(now);
                }
                None
            }
        };
        v.record(now, "rotate", Some(i), Some(format!("successor {new_id}")));
        let follow = use_in_env || in_env;
        if follow {
            v.record(now, "use", Some(j), Some("env file".into()));
        }
        Ok((old_id, new_id, key, old_status, old_end, follow, in_env))
    })?;
    let (old_id, new_id, key, old_status, old_end, follow, was_in_env) = outcome;
    if follow {
        write_env_locked(
            &env_target,
            &[("MCP_API_KEY", key.expose()), ("API_KEY_REQUIRED", "true")],
        )?;
    }
    drop(env_lock);
    if json {
        #[derive(serde::Serialize)]
        struct Rotated<'a> {
            old_id: &'a str,
            id: &'a str,
            key: &'a SecretString,
            old_status: &'a str,
            old_valid_until: Option<String>,
            env_file_updated: bool,
        }
        let r = Rotated {
            old_id: &old_id,
            id: &new_id,
            key: &key,
            old_status: if grace_days.is_some() && old_status == Status::Active {
                "active"
            } else if old_status == Status::Expired {
                "expired"
            } else {
                "revoked"
            },
            old_valid_until: old_end.as_ref().map(fmt_time),
            env_file_updated: follow,
        };
        serde_json::to_writer_pretty(&mut ctx.out, &r).map_err(std::io::Error::from)?;
        writeln!(ctx.out)?;
        return Ok(());
    }
    if quiet {
        writeln!(ctx.out, "{}", key.expose())?;
        return Ok(());
    }
    if old_status != Status::Active {
        writeln!(
            ctx.out,
            "Note: key {old_id} was already {}; rotating it makes a live replacement.",
            old_status.as_str()
        )?;
    }
    writeln!(
        ctx.out,
        "Rotated key {old_id} -> {new_id}.\n\n    {}\n\nStore this key now: `list` and `view` never show it.",
        key.expose()
    )?;
    match old_end {
        Some(t) if old_status == Status::Active => writeln!(
            ctx.out,
            "The old key {old_id} stays valid until {} ({}).",
            human_time(&t),
            relative(&t, ctx.now)
        )?,
        _ => writeln!(ctx.out, "The old key {old_id} is revoked.")?,
    }
    if follow {
        writeln!(
            ctx.out,
            "{} now holds the new key{}. Restart the server to pick it up.",
            ctx.env_path.display(),
            if was_in_env {
                " (it held the old one)"
            } else {
                ""
            }
        )?;
    } else {
        writeln!(ctx.out, "Next: mcp-key-manager use {new_id}")?;
    }
    Ok(())
}

pub(super) fn change_permissions(
    ctx: &mut Ctx,
    id: &str,
    perms: &[String],
    grant: bool,
    json: bool,
) -> Result<()> {
    check_permissions(perms)?;
    let now = ctx.now;
    let rec = update(ctx, |v| {
        let i = v.find(id)?;
        let k = &mut v.payload.keys[i];
        let mut changed = Vec::new();
        for p in perms {
            let has = k.permissions.contains(p);
            if grant && !has {
                k.permissions.push(p.clone());
                changed.push(p.clone());
            } else if !grant && has {
                k.permissions.retain(|x| x != p);
                changed.push(p.clone());
            }
        }
        if !changed.is_empty() {
            v.record(
                now,
                if grant { "grant" } else { "deny" },
                Some(i),
                Some(changed.join(",")),
            );
        }
        Ok(key_json(&v.keys()[i], now))
    })?;
    if json {
        return print_json(ctx, &rec);
    }
    let shown: Vec<&str> = rec["permissions"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    writeln!(
        ctx.out,
        "Key {} now has permissions: {}",
        rec["id"].as_str().unwrap_or_default(),
        if shown.is_empty() {
            "(none)".to_string()
        } else {
            shown.join(", ")
        }
    )?;
    Ok(())
}

pub(super) fn rekey(
    ctx: &mut Ctx,
    kdf: &KdfArgs,
    new_file: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let new_source = Source::new_for_rekey(new_file).allow_weak(ctx.source.allow_weak);
    let now = ctx.now;
    // Ask for the new passphrase before the lock, after the old one is known to work.
    let current = read_envelope(&ctx.vault_path)?.ok_or_else(|| no_vault(&ctx.vault_path))?;
    // Keep the vault's settings unless told otherwise, but never carry weak ones forward.
    let base = if current.kdf.below_policy() {
        KdfParams::DEFAULT
    } else {
        current.kdf
    };
    let params = kdf_from_args(kdf, base)?;
    let mut cache = session::key_cache(ctx, &current, "Current vault passphrase: ")?;
    let new_pass = new_source.get_new("the vault")?;
    let _lock = lock(&ctx.vault_path)?;
    let env = read_envelope(&ctx.vault_path)?.ok_or_else(|| no_vault(&ctx.vault_path))?;
    let mut vault = cache.unlock(&env)?;
    vault.rekey(&new_pass, params)?;
    vault.record(now, "rekey", None, None);
    fsio::atomic_write(&ctx.vault_path, &vault.to_bytes())?;
    session::end_after_rekey(ctx);
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"rekeyed": true, "kdf": {"memory_kib": params.memory_kib,
                "iterations": params.iterations, "parallelism": params.parallelism}}),
        );
    }
    writeln!(
        ctx.out,
        "Changed the vault passphrase (Argon2id, {} KiB, {} passes, {} lane(s)); the old \
         passphrase no longer opens it. Update any CI secret that held it.",
        params.memory_kib, params.iterations, params.parallelism
    )?;
    Ok(())
}

pub(super) fn history(ctx: &mut Ctx, id: Option<&str>, json: bool) -> Result<()> {
    let vault = open_vault(ctx)?;
    let events = &vault.payload.events;
    let wanted: Option<String> = match id {
        None => None,
        Some(prefix) => {
            let mut ids: Vec<&str> = events
                .iter()
                .filter_map(|e| e.key_id.as_deref())
                .chain(vault.keys().iter().map(|k| k.id.as_str()))
                .filter(|i| i.starts_with(prefix))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.contains(&prefix) {
                Some(prefix.to_string())
            } else {
                match ids.as_slice() {
                    [one] => Some(one.to_string()),
                    [] => {
                        return Err(Error::failed(format!(
                            "no key with id {} in the vault or its history",
                            sanitize(prefix)
                        )))
                    }
                    many => {
                        return Err(Error::failed(format!(
                            "the id prefix {} is ambiguous: it matches {}; give more characters",
                            sanitize(prefix),
                            many.join(", ")
                        )))
                    }
                }
            }
        }
    };
    let selected: Vec<&crate::vault::Event> = events
        .iter()
        .filter(|e| wanted.is_none() || e.key_id == wanted)
        .collect();
    if json {
        let arr: Vec<serde_json::Value> = selected
            .iter()
            .map(|e| {
                serde_json::json!({"at": fmt_time(&e.at), "action": e.action,
                    "key_id": e.key_id, "name": e.name, "detail": e.detail})
            })
            .collect();
        return print_json(ctx, &serde_json::Value::Array(arr));
    }
    if selected.is_empty() {
        writeln!(ctx.out, "No events.")?;
        return Ok(());
    }
    for e in selected {
        let line = format!(
            "{}  {:<8} {:<16} {}{}",
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            e.action,
            e.key_id.as_deref().unwrap_or("-"),
            e.name.as_deref().map(sanitize).unwrap_or_default(),
            e.detail
                .as_deref()
                .map(|d| format!(" ({})", sanitize(d)))
                .unwrap_or_default()
        );
        writeln!(ctx.out, "{}", line.trim_end())?;
    }
    Ok(())
}

pub(super) fn import_legacy(
    ctx: &mut Ctx,
    path: Option<PathBuf>,
    keep_plaintext: Option<PathBuf>,
    kdf: &KdfArgs,
    json: bool,
) -> Result<()> {
    let params = kdf_from_args(kdf, KdfParams::DEFAULT)?;
    let source = path.unwrap_or_else(|| ctx.vault_path.clone());
    let in_place = source == ctx.vault_path;
    let bytes = fsio::read_bounded(&source, MAX_FILE_BYTES, "key store")?.ok_or_else(|| {
        Error::failed(format!(
            "no key store at {}; give the path of the Python tool's keys.json",
            source.display()
        ))
    })?;
    let bytes = zeroize::Zeroizing::new(bytes);
    match Envelope::detect(&bytes) {
        Ok(Detected::Legacy) => {}
        Ok(Detected::Vault(_)) => {
            return Err(Error::failed(format!(
                "{} is already an encrypted vault; nothing to import",
                source.display()
            )))
        }
        Err(e) => return Err(e),
    }
    let records = legacy::parse_store(&bytes).map_err(|problems| {
        Error::corrupt(format!(
            "{} has {} malformed record{}; nothing was written:\n  {}",
            source.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        ))
    })?;
    for r in &records {
        validate_name_description(&r.name, &r.description).map_err(|e| {
            Error::corrupt(format!(
                "record {}: {e}; nothing was written",
                sanitize(&r.id)
            ))
        })?;
    }
    if !in_place && ctx.vault_path.exists() {
        return Err(Error::failed(format!(
            "a vault already exists at {}; import into a new path with --vault",
            ctx.vault_path.display()
        )));
    }
    if let Some(k) = &keep_plaintext {
        if k.exists() {
            return Err(Error::failed(format!(
                "{} already exists; --keep-plaintext never overwrites a file",
                k.display()
            )));
        }
    }
    let pass = ctx.source.get_new("the new vault")?;
    let mut vault = Vault::create(&pass, params)?;
    let now = ctx.now;
    let count = records.len();
    let mut inactive = 0;
    let payload: &mut Payload = &mut vault.payload;
    for r in records {
        let hash = payload.keyed_hash(r.key.expose());
        if !r.active {
            inactive += 1;
        }
        payload.keys.push(KeyRecord {
            id: r.id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: (!r.active).then_some(now),
            permissions: r.permissions,
            metadata: r.metadata,
            secret: r.key,
            hash,
            rotated_from: None,
            rotated_to: None,
        });
    }
    for i in 0..vault.keys().len() {
        vault.record(now, "import", Some(i), Some(source.display().to_string()));
    }
    fsio::ensure_parent(&ctx.vault_path)?;
    let _lock = lock(&ctx.vault_path)?;
    if !in_place && ctx.vault_path.exists() {
        return Err(Error::failed(format!(
            "a vault was created at {} meanwhile; nothing was written",
            ctx.vault_path.display()
        )));
    }
    // Re-check under the lock: the store must still be the bytes we read.
    if in_place {
        let again =
            fsio::read_bounded(&source, MAX_FILE_BYTES, "key store")?.map(zeroize::Zeroizing::new);
        if again.as_deref().map(Vec::as_slice) != Some(&bytes[..]) {
            return Err(Error::failed(
                "the key store changed while importing; nothing was written, run the import again",
            ));
        }
    }
    if let Some(k) = &keep_plaintext {
        // A hard link keeps the plaintext under the new name before the vault replaces it.
        fsio::ensure_parent(k)?;
        // Where a link is impossible (another file system), the bytes already read are
        // written to a new file: never through a link planted at `k`, never with loose modes.
        std::fs::hard_link(&source, k)
            .or_else(|_| -> std::io::Result<()> {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(k)?;
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .map_err(|e| Error::io("keep the plaintext store at", k, e))?;
        // The Python tool left its store world-readable; the copy we keep is private.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(k, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("restrict the permissions of", k, e))?;
    }
    fsio::atomic_write(&ctx.vault_path, &vault.to_bytes())?;
    if !in_place && keep_plaintext.is_some() {
        let _ = std::fs::remove_file(&source);
    }
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"imported": count, "revoked": inactive,
                "vault": ctx.vault_path.display().to_string(),
                "plaintext_kept_at": keep_plaintext.map(|k| k.display().to_string())}),
        );
    }
    writeln!(
        ctx.out,
        "Imported {count} key{} ({inactive} inactive, now revoked) into the encrypted vault {}.",
        if count == 1 { "" } else { "s" },
        ctx.vault_path.display()
    )?;
    match &keep_plaintext {
        Some(k) => writeln!(
            ctx.out,
            "The plaintext store was moved to {}; it still holds every key in clear: delete it \
             (shred) once you have checked the import.",
            k.display()
        )?,
        None if in_place => writeln!(ctx.out, "The plaintext store was replaced.")?,
        None => writeln!(
            ctx.out,
            "The plaintext store {} was left in place; delete it once you have checked the \
             import.",
            source.display()
        )?,
    }
    Ok(())
}
