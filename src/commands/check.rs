//! `check`: the health check for CI. Each kind of finding has its own function; `check`
//! collects them and decides.

use std::io;

use serde::Serialize;

use super::context::*;
use super::output::{human_time, relative, s, Human, Report};
use crate::cli::CheckArgs;
use crate::envfile::Analysis as EnvFile;
use mcp_key_vault::display::sanitize;
use mcp_key_vault::legacy::LegacyRecord;
use mcp_key_vault::verify::Code;
use mcp_key_vault::{KeyId, Status, Vault};

/// How much a finding matters: an error fails `check`, a warning only with `--strict`.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the check.
    Error,
    /// Fails the check only with `--strict`.
    Warning,
}

/// One finding of `check`.
#[derive(Serialize, Debug)]
pub struct Finding {
    severity: Severity,
    code: &'static str,
    message: String,
    key_id: Option<KeyId>,
}

impl Finding {
    fn new(severity: Severity, code: &'static str, message: String) -> Self {
        Finding {
            severity,
            code,
            message,
            key_id: None,
        }
    }

    fn key(mut self, id: &KeyId) -> Self {
        self.key_id = Some(id.clone());
        self
    }
}

#[derive(Serialize)]
struct Checked {
    ok: bool,
    findings: Vec<Finding>,
    /// The vault's fingerprint (`mkv1:…`), what identity opens and servers pin.
    vault_fingerprint: Option<String>,
    #[serde(skip)]
    env_file: String,
    #[serde(skip)]
    warn_days: u32,
    #[serde(skip)]
    verifiers_only: bool,
}

impl Report for Checked {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if self.findings.is_empty() && self.verifiers_only {
            return writeln!(
                h.out,
                "ok: every verifier is current, nothing expires within {} days",
                self.warn_days
            );
        }
        if self.findings.is_empty() {
            return writeln!(
                h.out,
                "ok: the key in {} is active, API_KEY_REQUIRED=true, nothing expires within {} \
                 days",
                self.env_file, self.warn_days
            );
        }
        for x in &self.findings {
            let sev = match x.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(h.out, "{sev:<7} {:<20} {}", x.code, x.message)?;
        }
        let errors = self
            .findings
            .iter()
            .filter(|x| x.severity == Severity::Error)
            .count();
        let warnings = self.findings.len() - errors;
        writeln!(
            h.out,
            "{errors} error{}, {warnings} warning{}",
            s(errors),
            s(warnings)
        )
    }

    fn ok(&self) -> bool {
        self.ok
    }
}

pub(super) fn check(ctx: &mut Ctx, a: CheckArgs) -> Result<()> {
    let vault = ctx.store().open()?;
    let env = ctx.env.read()?;
    let mut f = Vec::new();
    // A setup that serves keys through verifier files and has no env file is not missing
    // one: the env-file findings apply only where there is an env file or no verifier.
    let verifiers_only = env.is_none() && !(vault.published().is_empty() && a.verifiers.is_empty());
    let served = if verifiers_only {
        None
    } else {
        ambiguity_findings(ctx, env.as_ref(), &mut f);
        let served = env_key_findings(ctx, &vault, env.as_ref(), a.warn_days, &mut f);
        requirement_finding(ctx, env.as_ref(), &mut f);
        served
    };
    expiring_findings(ctx, &vault, served.as_ref(), a.warn_days, &mut f);
    weak_key_findings(ctx, &vault, &mut f);
    permission_findings(ctx, env.is_some(), &mut f)?;
    verifier_findings(&vault, &a.verifiers, &mut f)?;
    unused_findings(ctx, &vault, &a, &mut f);
    let errors = f.iter().filter(|x| x.severity == Severity::Error).count();
    let ok = errors == 0 && (!a.strict || f.is_empty());
    let r = Checked {
        ok,
        findings: f,
        vault_fingerprint: vault.fingerprint(),
        env_file: ctx.env_shown(),
        warn_days: a.warn_days,
        verifiers_only,
    };
    ctx.emit(a.out.output(), &r)
}

/// Lines of the env file that the loaders servers use could read differently.
fn ambiguity_findings(ctx: &Ctx, env: Option<&EnvFile>, f: &mut Vec<Finding>) {
    let Some(env) = env else { return };
    for a in env.findings_for(&crate::envstore::VARS) {
        let m = format!(
            "{} {a}: the loaders servers use (python-dotenv, Node, docker compose) could read \
             it differently; fix it by hand (see docs/envfile.md)",
            ctx.env_shown()
        );
        f.push(Finding::new(Severity::Error, "ENV_AMBIGUOUS", m));
    }
    if let Some(line) = env.invalid_utf8_line() {
        let m = format!(
            "{} is not UTF-8 at line {line}: python-dotenv refuses the whole file, so a Python \
             server will not start",
            ctx.env_shown()
        );
        f.push(Finding::new(Severity::Warning, "ENV_NOT_UTF8", m));
    }
}

/// Every published file and every `--verifier`: present, a verifier, current, and not
/// writable by others. A target that is not usable as given (a malformed store URL, TLS
/// settings beside `redis://`) is a usage error, not a finding.
fn verifier_findings(
    vault: &Vault,
    extra: &[std::path::PathBuf],
    f: &mut Vec<Finding>,
) -> Result<()> {
    let paths = vault
        .published()
        .iter()
        .map(|p| p.path.clone())
        .chain(extra.iter().cloned());
    for path in paths {
        let shown = mcp_key_vault::display::path(&path);
        match crate::publish::existing(&path)
            .map(|e| e.map(|e| (e.conflicts_with(vault), e.revision)))
        {
            Ok(None) => {
                let m = format!(
                    "the verifier {shown} is missing; run `mcp-key-manager publish {shown}`"
                );
                f.push(Finding::new(Severity::Error, "VERIFIER_MISSING", m));
            }
            Err(e @ Error::Usage(_)) => return Err(e),
            Err(e) => {
                let m = format!("the verifier {shown} cannot be used: {e}");
                f.push(Finding::new(Severity::Error, "VERIFIER_MISSING", m));
            }
            Ok(Some((true, r))) => {
                let m = format!(
                    "the verifier {shown} (revision {r}) comes from a save this vault does not \
                     come from: the vault was rolled back (restored from a backup) and changed \
                     again, or another vault writes the file; a rollback can bring back revoked \
                     keys. Find out which state is right, then run `mcp-key-manager publish \
                     --force {shown}`"
                );
                f.push(Finding::new(Severity::Error, "VERIFIER_CONFLICT", m));
            }
            Ok(Some((_, r))) if r < vault.revision() => {
                let m = format!(
                    "the verifier {shown} is at revision {r}, behind the vault's {}: servers \
                     reading it miss the latest changes; run `mcp-key-manager publish {shown}`",
                    vault.revision()
                );
                f.push(Finding::new(Severity::Error, "VERIFIER_STALE", m));
            }
            Ok(Some((_, r))) if r > vault.revision() => {
                let m = format!(
                    "the verifier {shown} is at revision {r}, ahead of this vault's {}: it was \
                     written by another vault, or this vault was restored from an older backup \
                     (a rolled-back vault may re-enable revoked keys); find out which before \
                     deleting the file to let this vault write it",
                    vault.revision()
                );
                f.push(Finding::new(Severity::Error, "VERIFIER_AHEAD", m));
            }
            Ok(Some(_)) => {}
        }
        if mcp_key_vault::fsio::writable_by_others(&path) {
            let m = format!(
                "the verifier {shown} is writable by group or others, who can make servers \
                 accept any key; run `chmod 640 {shown}`"
            );
            f.push(Finding::new(Severity::Error, "VERIFIER_PERMISSIONS", m));
        }
    }
    Ok(())
}

/// Active keys no server has seen for `--unused-days`, when usage data exists.
fn unused_findings(ctx: &Ctx, vault: &Vault, a: &CheckArgs, f: &mut Vec<Finding>) {
    let Some(usage) = super::usage::merged(vault, &a.usage, ctx.now) else {
        return;
    };
    let horizon = ctx.now - chrono::Duration::days(i64::from(a.unused_days));
    for k in vault.keys() {
        if k.status(ctx.now) != Status::Active || k.created_at > horizon {
            continue;
        }
        let last = usage.get(k.id.as_str()).and_then(|u| u.last_used_at);
        if last.is_none_or(|t| t < horizon) {
            let when = last.map_or("never".into(), |t| relative(&t, ctx.now));
            let m = format!(
                "key {} \"{}\" is active but unused for over {} days (last use: {when}); \
                 revoke it if nothing needs it: `mcp-key-manager revoke {}`",
                k.id,
                sanitize(&k.name),
                a.unused_days,
                k.id
            );
            f.push(Finding::new(Severity::Warning, "KEY_UNUSED", m).key(&k.id));
        }
    }
}

/// The env file's `MCP_API_KEY`: known, active, not about to expire. Returns the id of
/// the key it serves.
fn env_key_findings(
    ctx: &Ctx,
    vault: &Vault,
    env: Option<&EnvFile>,
    warn_days: u32,
    f: &mut Vec<Finding>,
) -> Option<KeyId> {
    let path = ctx.env_shown();
    let Some(key) = env
        .and_then(|e| e.value("MCP_API_KEY").map(String::from))
        .filter(|k| !k.is_empty())
    else {
        let m = format!("{path} has no MCP_API_KEY; run `mcp-key-manager use ID`");
        f.push(Finding::new(Severity::Error, "ENV_KEY_MISSING", m));
        return None;
    };
    let key = SecretString::new(key);
    let verifier = mcp_key_vault::verify::from_vault(vault);
    let v = verifier.verify_at(key.expose(), &[], ctx.now);
    let Some(info) = v.key else {
        let m = format!(
            "the MCP_API_KEY in {path} is not a key of this vault; run `mcp-key-manager use ID` \
             with a key from `list`"
        );
        f.push(Finding::new(Severity::Error, "ENV_KEY_UNKNOWN", m));
        return None;
    };
    let id = KeyId::from(info.id.as_str());
    let (code, m) = match v.code {
        Code::Revoked => (
            "ENV_KEY_REVOKED",
            format!(
                "the MCP_API_KEY in {path} (key {id}) is revoked; rotate it or `use` another key"
            ),
        ),
        Code::Expired => (
            "ENV_KEY_EXPIRED",
            format!(
                "the MCP_API_KEY in {path} (key {id}) has expired; run `mcp-key-manager rotate \
                 {id} --use-in-env`"
            ),
        ),
        _ => {
            let k = vault.keys().iter().find(|k| k.id == id)?;
            if !k.expires_within(ctx.now, i64::from(warn_days)) {
                return Some(id);
            }
            let t = k.expires_at.unwrap_or(ctx.now);
            let m = format!(
                "the MCP_API_KEY in {path} (key {id}) expires {} ({}); run `mcp-key-manager \
                 rotate {id} --use-in-env`",
                human_time(&t),
                relative(&t, ctx.now)
            );
            ("ENV_KEY_EXPIRING", m)
        }
    };
    f.push(Finding::new(Severity::Error, code, m).key(&id));
    Some(id)
}

fn requirement_finding(ctx: &Ctx, env: Option<&EnvFile>, f: &mut Vec<Finding>) {
    let value = env
        .and_then(|e| e.value("API_KEY_REQUIRED"))
        .map(String::from);
    // Exactly `true` as the loaders hand it to the server (case aside): `" true "` in
    // quotes reaches the server with its blanks, and `== "true"` there is false.
    if value
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return;
    }
    let shown = match value {
        Some(v) => format!("{:?}", sanitize(&v)),
        None => "not set".into(),
    };
    let m = format!(
        "API_KEY_REQUIRED is {shown} in {}, so the server accepts requests without a key; run \
         `mcp-key-manager enable-requirement`",
        ctx.env_shown()
    );
    f.push(Finding::new(Severity::Error, "REQUIREMENT_DISABLED", m));
}

fn expiring_findings(
    ctx: &Ctx,
    vault: &Vault,
    served: Option<&KeyId>,
    warn_days: u32,
    f: &mut Vec<Finding>,
) {
    for k in vault.keys() {
        // A key kept alive by `rotate --grace-days` is meant to expire.
        let graced = k.rotated_to.is_some();
        if Some(&k.id) == served || graced || k.status(ctx.now) != Status::Active {
            continue;
        }
        if k.expires_within(ctx.now, i64::from(warn_days)) {
            let t = k.expires_at.unwrap_or(ctx.now);
            let m = format!(
                "key {} \"{}\" expires {} ({})",
                k.id,
                sanitize(&k.name),
                human_time(&t),
                relative(&t, ctx.now)
            );
            f.push(Finding::new(Severity::Warning, "KEY_EXPIRING", m).key(&k.id));
        }
    }
}

/// Estimated strength in bits of a key's secret part, when it is below 128: keys of this
/// tool and the Python tool's 64-hex keys are random and never reported.
pub(super) fn weak_bits(key: &str) -> Option<f64> {
    let bits = mcp_key_vault::keyfmt::strength_bits(key);
    (bits < 128.0).then_some(bits)
}

/// The imported records whose keys are guessable, with their estimated strength.
pub(super) fn weak_legacy_keys(records: &[LegacyRecord]) -> Vec<(String, f64)> {
    records
        .iter()
        .filter_map(|r| weak_bits(r.key.expose()).map(|b| (sanitize(&r.id), b)))
        .collect()
}

fn weak_key_findings(ctx: &Ctx, vault: &Vault, f: &mut Vec<Finding>) {
    for k in vault.keys() {
        if k.status(ctx.now) != Status::Active {
            continue;
        }
        if let Some(bits) = weak_bits(k.secret.expose()) {
            let m = format!(
                "key {} \"{}\" is guessable (about {bits:.0} bits, under 128): anyone holding a \
                 verifier file can recover it by trying likely keys; replace it with \
                 `mcp-key-manager rotate {}`",
                k.id,
                sanitize(&k.name),
                k.id
            );
            f.push(Finding::new(Severity::Warning, "WEAK_KEY", m).key(&k.id));
        }
    }
}

/// Files that decide which key a server accepts: writable by others is an error (they
/// choose the key), readable by others a warning.
fn permission_findings(ctx: &Ctx, env_exists: bool, f: &mut Vec<Finding>) -> Result<()> {
    let mut files = vec![("vault", ctx.vault_path.clone(), "VAULT_PERMISSIONS")];
    if env_exists {
        files.push(("env file", ctx.env.target()?, "ENV_PERMISSIONS"));
    }
    for (what, path, code) in files {
        let shown = mcp_key_vault::display::path(&path);
        if mcp_key_vault::fsio::writable_by_others(&path) {
            let m = format!(
                "the {what} {shown} is writable by group or others, so they can choose the \
                 server's key; run `chmod 600 {shown}`"
            );
            f.push(Finding::new(Severity::Error, code, m));
        } else if mcp_key_vault::fsio::readable_by_others(&path) {
            let m = format!(
                "the {what} {shown} is readable by group or others; run `chmod 600 {shown}`"
            );
            f.push(Finding::new(Severity::Warning, code, m));
        }
    }
    let dir = mcp_key_vault::fsio::parent_dir(&ctx.vault_path);
    if mcp_key_vault::fsio::writable_by_others(&dir) {
        let shown = mcp_key_vault::display::path(&dir);
        let m = format!(
            "the vault's directory {shown} is writable by others, who can replace the vault; \
             run `chmod 700 {shown}`"
        );
        f.push(Finding::new(Severity::Error, "VAULT_PERMISSIONS", m));
    }
    Ok(())
}
