//! `verify`, `check` and `export-verifier`: the offline checks.

use std::io::{BufRead, Read, Write};

use super::*;
use crate::vault::records::fmt_time;
use crate::vault::Status;
use crate::verify::{Code, Verdict, Verifier};

/// Longest line read from stdin by `verify` (a key is 85 characters).
const MAX_LINE: usize = 4096;
/// Most keys one `verify` reads from stdin: they are all held until the vault is open.
const MAX_KEYS: usize = 1_000_000;

fn verdict_json(v: &Verdict<'_>) -> serde_json::Value {
    let k = v.key;
    serde_json::json!({
        "valid": v.is_valid(),
        "code": v.code.as_str(),
        "id": k.map(|k| k.id.clone()),
        "name": k.and_then(|k| k.name.clone()),
        "expires_at": k.and_then(|k| k.expires_at.as_ref().map(fmt_time)),
        "permissions": k.map(|k| k.permissions.clone()),
    })
}

pub(super) fn verify(
    ctx: &mut Ctx,
    from_env: bool,
    require: &[String],
    verifier: Option<&Path>,
    json: bool,
) -> Result<()> {
    check_permissions(require)?;
    let presented: Vec<SecretString> = if from_env {
        let env = read_env(ctx)?.ok_or_else(|| {
            Error::failed(format!(
                "the env file {} does not exist; nothing to verify",
                ctx.env_path.display()
            ))
        })?;
        let key = env.get("MCP_API_KEY").ok_or_else(|| {
            Error::failed(format!(
                "{} has no MCP_API_KEY; run `mcp-key-manager use ID`",
                ctx.env_path.display()
            ))
        })?;
        vec![SecretString::new(key)]
    } else {
        read_keys_from_stdin()?
    };
    if presented.is_empty() {
        return Err(Error::usage(
            "no key to verify: pipe keys on stdin, one per line, or use --from-env",
        ));
    }
    let verifier = match verifier {
        Some(p) => Verifier::from_file(p)?,
        None => Verifier::from_vault(&open_vault(ctx)?),
    };
    let required: Vec<&str> = require.iter().map(String::as_str).collect();
    let now = ctx.now;
    let verdicts: Vec<Verdict<'_>> = presented
        .iter()
        .map(|k| verifier.verify_at(k.expose(), &required, now))
        .collect();
    let all_valid = verdicts.iter().all(Verdict::is_valid);
    // The verdict decides the exit code even if printing fails (a closed pipe).
    let shown = (|| -> Result<()> {
        if json {
            let v = if verdicts.len() == 1 {
                verdict_json(&verdicts[0])
            } else {
                serde_json::Value::Array(verdicts.iter().map(verdict_json).collect())
            };
            print_json(ctx, &v)?;
        } else {
            let mut out = std::io::BufWriter::new(&mut ctx.out);
            for (n, v) in verdicts.iter().enumerate() {
                let id = v.key.map_or("-", |k| k.id.as_str());
                let exp = match v.key.map(|k| k.expires_at) {
                    Some(Some(t)) => format!("expires {}", fmt_time(&t)),
                    Some(None) => "never expires".into(),
                    None => String::new(),
                };
                writeln!(out, "{}\t{}\t{}\t{}", n + 1, v.code.as_str(), id, exp)?;
            }
            out.flush()?;
        }
        Ok(())
    })();
    if !all_valid {
        return Err(Error::Silent);
    }
    shown
}

/// Reads keys from stdin, one per line; blank lines are skipped, surrounding whitespace
/// trimmed. Each line is held in a zeroizing buffer.
fn read_keys_from_stdin() -> Result<Vec<SecretString>> {
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut keys = Vec::new();
    loop {
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(128));
        let n = (&mut lock)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io("read keys from", Path::new("stdin"), e))?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            return Err(Error::usage(format!(
                "a line on stdin is longer than {MAX_LINE} bytes; give one key per line"
            )));
        }
        // Invalid UTF-8 becomes U+FFFD, which no key contains: it is reported MALFORMED.
        let text = String::from_utf8_lossy(&buf);
        let t = text.trim();
        if !t.is_empty() {
            if keys.len() == MAX_KEYS {
                return Err(Error::usage(format!(
                    "more than {MAX_KEYS} keys on stdin; split the input"
                )));
            }
            keys.push(SecretString::new(t.to_string()));
        }
        if let std::borrow::Cow::Owned(s) = text {
            drop(SecretString::new(s));
        }
    }
    Ok(keys)
}

/// One finding of `check`.
struct Finding {
    severity: &'static str,
    code: &'static str,
    message: String,
    key_id: Option<String>,
}

pub(super) fn check(ctx: &mut Ctx, warn_days: u32, strict: bool, json: bool) -> Result<()> {
    let now = ctx.now;
    let mut f: Vec<Finding> = Vec::new();
    let mut add = |severity, code, message: String, key_id: Option<String>| {
        f.push(Finding {
            severity,
            code,
            message,
            key_id,
        })
    };
    let vault = open_vault(ctx)?;
    let env = read_env(ctx)?;
    let env_path = ctx.env_path.display().to_string();
    let env_key = env
        .as_ref()
        .and_then(|e| e.get("MCP_API_KEY"))
        .filter(|k| !k.is_empty())
        .map(SecretString::new);
    let mut env_id = None;
    match &env_key {
        None => add(
            "error",
            "ENV_KEY_MISSING",
            format!("{env_path} has no MCP_API_KEY; run `mcp-key-manager use ID`"),
            None,
        ),
        Some(key) => {
            let verifier = Verifier::from_vault(&vault);
            let v = verifier.verify_at(key.expose(), &[], now);
            let id = v.key.map(|k| k.id.clone());
            env_id = id.clone();
            match v.code {
                Code::Malformed | Code::NotFound => add(
                    "error",
                    "ENV_KEY_UNKNOWN",
                    format!(
                        "the MCP_API_KEY in {env_path} is not a key of this vault; run \
                         `mcp-key-manager use ID` with a key from `list`"
                    ),
                    None,
                ),
                Code::Revoked => add(
                    "error",
                    "ENV_KEY_REVOKED",
                    format!(
                        "the MCP_API_KEY in {env_path} (key {}) is revoked; rotate it or `use` \
                         another key",
                        id.as_deref().unwrap_or("-")
                    ),
                    id,
                ),
                Code::Expired => add(
                    "error",
                    "ENV_KEY_EXPIRED",
                    format!(
                        "the MCP_API_KEY in {env_path} (key {}) has expired; run \
                         `mcp-key-manager rotate {} --use-in-env`",
                        id.as_deref().unwrap_or("-"),
                        id.as_deref().unwrap_or("-")
                    ),
                    id,
                ),
                Code::Valid | Code::InsufficientPermissions => {
                    let i = vault.find(id.as_deref().unwrap_or_default())?;
                    let k = &vault.keys()[i];
                    if k.expires_within(now, i64::from(warn_days)) {
                        let t = k.expires_at.unwrap_or(now);
                        add(
                            "error",
                            "ENV_KEY_EXPIRING",
                            format!(
                                "the MCP_API_KEY in {env_path} (key {}) expires {} ({}); run \
                                 `mcp-key-manager rotate {} --use-in-env`",
                                k.id,
                                human_time(&t),
                                relative(&t, now),
                                k.id
                            ),
                            Some(k.id.clone()),
                        );
                    }
                }
            }
        }
    }
    match env.as_ref().and_then(|e| e.get("API_KEY_REQUIRED")) {
        Some(v) if v.trim().eq_ignore_ascii_case("true") => {}
        other => add(
            "error",
            "REQUIREMENT_DISABLED",
            format!(
                "API_KEY_REQUIRED is {} in {env_path}, so the server accepts requests without a \
                 key; run `mcp-key-manager enable-requirement`",
                match other {
                    Some(v) => format!("{:?}", sanitize(&v)),
                    None => "not set".into(),
                }
            ),
            None,
        ),
    }
    for k in vault.keys() {
        if Some(&k.id) == env_id.as_ref() {
            continue;
        }
        if k.status(now) == Status::Active && k.expires_within(now, i64::from(warn_days)) {
            let t = k.expires_at.unwrap_or(now);
            add(
                "warning",
                "KEY_EXPIRING",
                format!(
                    "key {} \"{}\" expires {} ({})",
                    k.id,
                    sanitize(&k.name),
                    human_time(&t),
                    relative(&t, now)
                ),
                Some(k.id.clone()),
            );
        }
    }
    if fsio::readable_by_others(&ctx.vault_path) {
        add(
            "warning",
            "VAULT_PERMISSIONS",
            format!(
                "the vault {} is readable by group or others; run `chmod 600 {}`",
                ctx.vault_path.display(),
                ctx.vault_path.display()
            ),
            None,
        );
    }
    if env.is_some() {
        let target = fsio::resolve_symlinks(&ctx.env_path, false)?;
        if fsio::readable_by_others(&target) {
            add(
                "warning",
                "ENV_PERMISSIONS",
                format!(
                    "the env file {} is readable by group or others; run `chmod 600 {}`",
                    target.display(),
                    target.display()
                ),
                None,
            );
        }
    }
    let errors = f.iter().filter(|x| x.severity == "error").count();
    let warnings = f.len() - errors;
    let ok = errors == 0 && (!strict || warnings == 0);
    let shown = (|| -> Result<()> {
        if json {
            let arr: Vec<serde_json::Value> = f
                .iter()
                .map(|x| {
                    serde_json::json!({"severity": x.severity, "code": x.code,
                                       "message": x.message, "key_id": x.key_id})
                })
                .collect();
            print_json(ctx, &serde_json::json!({"ok": ok, "findings": arr}))?;
        } else if f.is_empty() {
            writeln!(
                ctx.out,
                "ok: the key in {env_path} is active, API_KEY_REQUIRED=true, nothing expires within \
                 {warn_days} days"
            )?;
        } else {
            for x in &f {
                writeln!(ctx.out, "{:<7} {:<20} {}", x.severity, x.code, x.message)?;
            }
            writeln!(
                ctx.out,
                "{errors} error{}, {warnings} warning{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    })();
    if !ok {
        return Err(Error::Silent);
    }
    shown
}

pub(super) fn export(ctx: &mut Ctx, out: &Path, json: bool) -> Result<()> {
    let vault = open_vault(ctx)?;
    let verifier = Verifier::from_vault(&vault);
    let bytes = verifier.to_json(ctx.now);
    fsio::ensure_parent(out)?;
    let target = fsio::resolve_symlinks(out, false)?;
    refuse_vault(ctx, &target, "verifier file")?;
    {
        let _lock = lock(&target)?;
        fsio::atomic_write(&target, &bytes)?;
    }
    if json {
        return print_json(
            ctx,
            &serde_json::json!({"path": out.display().to_string(), "keys": verifier.len()}),
        );
    }
    writeln!(
        ctx.out,
        "Wrote a verifier for {} key{} to {} (keyed hashes only; no key can be recovered from \
         it).\nCheck a key with it: mcp-key-manager verify --verifier {} < key.txt",
        verifier.len(),
        if verifier.len() == 1 { "" } else { "s" },
        out.display(),
        out.display()
    )?;
    Ok(())
}
