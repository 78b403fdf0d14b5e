//! `headers`: a key as the HTTP header an MCP client sends, printed for a client that runs a
//! command for its headers (Claude Code's `headersHelper`) or reads them from a pipe
//! (`curl -K -`), so the key lives in the vault rather than in a plaintext client config.
//!
//! Invariant: like `use`, this hands a key out of the vault, so every run is recorded as a
//! `use` event before anything is printed, and the key goes to stdout only, written piece
//! by piece (never into a message or an intermediate string).

use std::io;

use serde::Serialize;

use super::context::*;
use super::keys::refuse_unusable;
use crate::cli::{HeaderFormat, HeadersArgs};

/// What `--format json` says besides the header: which key it is (both public).
#[derive(Serialize)]
struct Meta<'a> {
    id: &'a str,
    name: &'a str,
}

pub(super) fn headers(ctx: &mut Ctx, a: HeadersArgs) -> Result<()> {
    let detail = format!("headers ({})", a.format.name());
    let mut store = ctx.store();
    let (id, name, key) = store.update::<_, Error>(|v| {
        // The change's time: after the passphrase (or the session) and the lock.
        let now = now();
        let i = select(v, a.key.selector())?;
        let k = &v.keys()[i];
        refuse_unusable(k, now)?;
        let handed = (k.id.to_string(), k.name.clone(), k.secret.duplicate());
        v.record_use(i, now, &detail);
        Ok(handed)
    })?;
    let key = key.expose();
    // Every stored key is of a key shape (checked when it was made or imported), none of
    // which needs quoting in a header, a JSON string or a curl config string; a vault
    // edited by other means is refused rather than quoted wrongly.
    if !key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(Error::failed(format!(
            "key {id} holds characters that cannot stand in an HTTP header; rotate it"
        )));
    }
    let (header, scheme) = if a.bearer {
        ("Authorization", "Bearer ")
    } else {
        ("X-API-Key", "")
    };
    write(&mut ctx.out, a.format, header, scheme, key, &id, &name).map_err(stdout_error)?;
    ctx.finish()
}

fn write(
    out: &mut dyn io::Write,
    format: HeaderFormat,
    header: &str,
    scheme: &str,
    key: &str,
    id: &str,
    name: &str,
) -> io::Result<()> {
    match format {
        HeaderFormat::Header => writeln!(out, "{header}: {scheme}{key}"),
        HeaderFormat::ClaudeCode => writeln!(out, "{{\"{header}\":\"{scheme}{key}\"}}"),
        HeaderFormat::Json => {
            let meta = serde_json::to_string(&Meta { id, name }).map_err(io::Error::other)?;
            // `{"id":…,"name":…` then the headers object and the closing brace.
            let open = meta.strip_suffix('}').unwrap_or(&meta);
            writeln!(
                out,
                "{open},\"headers\":{{\"{header}\":\"{scheme}{key}\"}}}}"
            )
        }
        HeaderFormat::Curl => writeln!(out, "header = \"{header}: {scheme}{key}\""),
    }
}
