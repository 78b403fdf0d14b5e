//! `publish` and `unpublish`: verifier files kept current by every change of the vault.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::context::*;
use super::output::{Human, Report};
use crate::cli::{PublishArgs, UnpublishArgs};
use crate::publish::existing_revision;
use mcp_key_vault::display::path as shown;
use mcp_key_vault::{Published, Vault};

/// `path` made absolute (its directory canonicalised), so the vault records a path that
/// means the same file whatever directory later commands run in.
fn absolute(path: &Path) -> Result<PathBuf> {
    let dir = mcp_key_vault::fsio::parent_dir(path);
    mcp_key_vault::fsio::ensure_dir(&dir)?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io("resolve", &dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} names no file", shown(path))))?;
    Ok(dir.join(name))
}

#[derive(Serialize)]
struct PublishedView {
    path: String,
    names: bool,
    then: Option<String>,
    /// The revision the file holds, or null when it is missing or unreadable.
    revision: Option<u64>,
    /// Whether the file is behind the vault (or missing).
    stale: bool,
}

impl PublishedView {
    fn of(p: &Published, vault: &Vault) -> Self {
        let revision = existing_revision(&p.path).ok().flatten();
        PublishedView {
            path: shown(&p.path),
            names: p.names,
            then: p.then.clone(),
            revision,
            stale: revision.is_none_or(|r| r < vault.revision()),
        }
    }
}

#[derive(Serialize)]
struct Publishing {
    vault_revision: u64,
    published: Vec<PublishedView>,
    #[serde(skip)]
    added: Option<String>,
}

impl Publishing {
    /// Every published file of `vault`, with the revision it holds; `added` names the file
    /// this command just published.
    fn of(vault: &Vault, added: Option<String>) -> Self {
        Publishing {
            vault_revision: vault.revision(),
            published: vault
                .published()
                .iter()
                .map(|p| PublishedView::of(p, vault))
                .collect(),
            added,
        }
    }
}

impl Report for Publishing {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if let Some(p) = &self.added {
            writeln!(
                h.out,
                "Published the verifier to {p} (revision {}); every change of the vault \
                 rewrites it before the command returns. Point servers at it: `mcp-key-manager \
                 serve --verifier {p}`, or the Python/TypeScript packages.",
                self.vault_revision
            )?;
            return Ok(());
        }
        if self.published.is_empty() {
            return writeln!(
                h.out,
                "Nothing is published. Start with: mcp-key-manager publish PATH"
            );
        }
        for p in &self.published {
            let rev = p
                .revision
                .map_or("missing".into(), |r| format!("revision {r}"));
            let state = if p.stale { " (stale)" } else { "" };
            let names = if p.names { ", with names" } else { "" };
            writeln!(h.out, "{}  {rev}{state}{names}", p.path)?;
            if let Some(cmd) = &p.then {
                // Runs as whoever makes the next change: show it, escaped.
                writeln!(h.out, "    then: {}", mcp_key_vault::display::sanitize(cmd))?;
            }
        }
        writeln!(h.out, "The vault is at revision {}.", self.vault_revision)
    }
}

pub(super) fn publish(ctx: &mut Ctx, a: PublishArgs) -> Result<()> {
    let mut store = ctx.store();
    let Some(path) = a.path else {
        let r = Publishing::of(&store.open()?, None);
        return ctx.emit(a.out.output(), &r);
    };
    let path = absolute(&path)?;
    // Refused before anything is recorded: the vault or env file itself, a file that is
    // not a verifier, one another user could have planted.
    crate::publish::refuse_link_in_foreign_dir(&path)?;
    let target = mcp_key_vault::fsio::resolve_symlinks(&path, false)?;
    crate::envstore::refuse_vault(&target, &ctx.vault_path, "verifier file")?;
    mcp_key_vault::fsio::refuse_foreign_file_in_shared_dir(&target, "verifier file")?;
    let theirs = existing_revision(&target)?;
    let entry = Published {
        path: path.clone(),
        names: a.names,
        then: a.then,
    };
    let now = ctx.now;
    if a.force {
        ctx.force_publish(path.clone());
    }
    store.update::<_, Error>(|v| {
        // The save bumps the revision by one; a file below that is replaced, one at it only
        // when it comes from this save (the republish checks the digest). `--force` moves
        // the vault past the file either way.
        if let Some(r) = theirs.filter(|r| *r > v.revision() + 1 || (a.force && *r > v.revision()))
        {
            if !a.force {
                return Err(Error::failed(format!(
                    "{} holds revision {r}, newer than this vault's {}: another vault writes \
                     it, or this vault was restored from an older backup. If restored, run \
                     `mcp-key-manager publish --force {}` to move the vault past it",
                    shown(&path),
                    v.revision(),
                    shown(&path)
                )));
            }
            v.advance_revision(r);
        }
        v.publish(entry, now);
        Ok(())
    })?;
    let r = Publishing::of(&store.open()?, Some(shown(&path)));
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}

#[derive(Serialize)]
struct Unpublished {
    path: String,
    unpublished: bool,
}

impl Report for Unpublished {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Stopped publishing to {}; the file stays as it is (delete it if no server reads it).",
            self.path
        )
    }
}

pub(super) fn unpublish(ctx: &mut Ctx, a: UnpublishArgs) -> Result<()> {
    let path = absolute(&a.path)?;
    let now = ctx.now;
    let mut store = ctx.store();
    store.update::<_, Error>(|v| {
        if v.unpublish(&path, now) {
            Ok(())
        } else {
            Err(Error::failed(format!(
                "{} is not published; see `mcp-key-manager publish --list`",
                shown(&path)
            )))
        }
    })?;
    let r = Unpublished {
        path: shown(&path),
        unpublished: true,
    };
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}
