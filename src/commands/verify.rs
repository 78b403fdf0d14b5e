//! `verify` and `export-verifier`: offline verification, and the one-off verifier file.

use std::io::{self, BufRead, Read};

use serde::Serialize;

use super::context::*;
use super::output::{s, Human, Report};
use crate::cli::{ExportArgs, VerifyArgs};
use mcp_key_vault::verify::{Verdict, Verifier};
use mcp_key_vault::KeyId;
use mcp_key_verifier::time::format as fmt_time;

/// Longest line read from stdin by `verify` (a key is 70 to 91 characters).
const MAX_LINE: usize = 4096;
/// Most keys one `verify` reads from stdin: they are all held until the vault is open.
const MAX_KEYS: usize = 1_000_000;

#[derive(Serialize)]
struct VerdictView {
    valid: bool,
    code: &'static str,
    /// `SHAPE` or `CHECKSUM` for `MALFORMED`; absent otherwise (an addition to the shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    id: Option<KeyId>,
    name: Option<String>,
    expires_at: Option<String>,
    permissions: Option<Vec<String>>,
    #[serde(skip)]
    expiry: Option<Option<String>>,
}

impl VerdictView {
    fn of(v: &Verdict<'_>) -> Self {
        let k = v.key;
        let expires_at = k.and_then(|k| k.expires_at.as_ref().map(fmt_time));
        VerdictView {
            valid: v.is_valid(),
            code: v.code.as_str(),
            reason: v.reason.map(|r| r.as_str()),
            id: k.map(|k| KeyId::from(k.id.as_str())),
            name: k.and_then(|k| k.name.clone()),
            expiry: k.map(|_| expires_at.clone()),
            expires_at,
            permissions: k.map(|k| k.permissions.clone()),
        }
    }
}

/// `verify`'s verdicts: always a JSON array, one element per presented key.
#[derive(Serialize)]
#[serde(transparent)]
struct Verdicts {
    verdicts: Vec<VerdictView>,
}

impl Report for Verdicts {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        for (n, v) in self.verdicts.iter().enumerate() {
            let id = v.id.as_ref().map_or("-".into(), |i| i.to_string());
            let exp = match (&v.expiry, v.reason) {
                (Some(Some(t)), _) => format!("expires {t}"),
                (Some(None), _) => "never expires".into(),
                (None, Some("CHECKSUM")) => "checksum does not match: mistyped or cut off".into(),
                (None, _) => String::new(),
            };
            writeln!(h.out, "{}\t{}\t{}\t{}", n + 1, v.code, id, exp)?;
        }
        Ok(())
    }

    fn ok(&self) -> bool {
        self.verdicts.iter().all(|v| v.valid)
    }
}

fn key_from_env(ctx: &Ctx) -> Result<SecretString> {
    let env = ctx.env.read()?.ok_or_else(|| {
        Error::failed(format!(
            "the env file {} does not exist; nothing to verify",
            ctx.env_shown()
        ))
    })?;
    let unclear = env.findings_for(&["MCP_API_KEY"]);
    if !unclear.is_empty() {
        let list: Vec<String> = unclear.iter().map(|f| f.to_string()).collect();
        return Err(Error::failed(format!(
            "the MCP_API_KEY of {} is ambiguous: the loaders servers use could read it \
             differently ({}); fix the file first (see docs/envfile.md)",
            ctx.env_shown(),
            list.join("; ")
        )));
    }
    let key = env.value("MCP_API_KEY").map(String::from).ok_or_else(|| {
        Error::failed(format!(
            "{} has no MCP_API_KEY; run `mcp-key-manager use ID`",
            ctx.env_shown()
        ))
    })?;
    Ok(SecretString::new(key))
}

pub(super) fn verify(ctx: &mut Ctx, a: VerifyArgs) -> Result<()> {
    let presented: Vec<SecretString> = if a.from_env {
        vec![key_from_env(ctx)?]
    } else {
        read_keys_from_stdin()?
    };
    if presented.is_empty() {
        return Err(Error::usage(
            "no key to verify: pipe keys on stdin, one per line, or use --from-env",
        ));
    }
    let verifier = match &a.verifier {
        Some(p) => Verifier::from_file(p)?,
        None => {
            let keys: Vec<&str> = presented.iter().map(|k| k.expose()).collect();
            mcp_key_vault::verify::from_vault_for(&ctx.store().open()?, &keys)
        }
    };
    let required: Vec<&str> = a.require.iter().map(|p| p.as_str()).collect();
    let verdicts = presented
        .iter()
        .map(|k| VerdictView::of(&verifier.verify_at(k.expose(), &required, ctx.now)))
        .collect();
    ctx.emit(a.out.output(), &Verdicts { verdicts })
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

#[derive(Serialize)]
struct Exported {
    path: String,
    keys: usize,
    revision: u64,
}

impl Report for Exported {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Wrote a verifier for {} key{} to {} (keyed hashes only; no key can be recovered \
             from it).\nCheck a key with it: mcp-key-manager verify --verifier {} < key.txt\n\
             To keep it current after every change, use `mcp-key-manager publish {}` instead.",
            self.keys,
            s(self.keys),
            self.path,
            self.path,
            self.path
        )
    }
}

pub(super) fn export(ctx: &mut Ctx, a: ExportArgs) -> Result<()> {
    let mut store = ctx.store();
    let (now, vault_path) = (ctx.now, ctx.vault_path.clone());
    // The snapshot is taken under the vault lock, after unlocking: an export that waited
    // at the prompt while another process revoked a key cannot write the older state.
    let (keys, revision) = store.snapshot::<_, Error>(|v| {
        let w = crate::publish::write_verifier(v, &vault_path, &a.out, false, now, false)?;
        Ok((v.keys().len(), w))
    })?;
    let r = Exported {
        path: mcp_key_vault::display::path(&a.out),
        keys,
        revision,
    };
    ctx.emit(a.output.output(), &r)
}
