//! `publish` and `unpublish`: verifier files kept current by every change of the vault.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::context::*;
use super::output::{Human, Report};
use crate::cli::{PublishArgs, UnpublishArgs};
use crate::hooks::Hooks;
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
    /// This user's `--then` command for the file (the one that runs), or null.
    then: Option<String>,
    /// Every command for the file and where it is kept: this user's hooks file, or the
    /// vault for one an older release wrote there (never run; dropped at the next change).
    hooks: Vec<HookView>,
    /// The revision the file holds, or null when it is missing or unreadable.
    revision: Option<u64>,
    /// Whether the file is behind the vault (or missing).
    stale: bool,
}

#[derive(Serialize)]
struct HookView {
    command: String,
    /// The file the command is kept in.
    source: String,
    /// Whether it runs after each write.
    runs: bool,
}

impl PublishedView {
    fn of(p: &Published, vault: &Vault, vault_path: &Path, hooks: &Hooks) -> Self {
        let revision = existing_revision(&p.path).ok().flatten();
        let then = hooks.get(&p.path).map(String::from);
        let mut views: Vec<HookView> = then
            .iter()
            .map(|cmd| HookView {
                command: cmd.clone(),
                source: shown(&crate::hooks::location()),
                runs: true,
            })
            .collect();
        views.extend(p.then.iter().map(|cmd| HookView {
            command: cmd.clone(),
            source: crate::hooks::vault_shown(vault_path),
            runs: false,
        }));
        PublishedView {
            path: shown(&p.path),
            names: p.names,
            then,
            hooks: views,
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
    /// Every published file of `vault`, with the revision it holds and its commands;
    /// `added` names the file this command just published.
    fn of(vault: &Vault, vault_path: &Path, hooks: &Hooks, added: Option<String>) -> Self {
        Publishing {
            vault_revision: vault.revision(),
            published: vault
                .published()
                .iter()
                .map(|p| PublishedView::of(p, vault, vault_path, hooks))
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
            let hook = self
                .published
                .iter()
                .find(|v| v.path == *p)
                .and_then(|v| v.hooks.iter().find(|k| k.runs));
            if let Some(k) = hook {
                writeln!(
                    h.out,
                    "After each write, your command runs (kept in {}, not in the vault: other \
                     users of the vault do not run it).",
                    k.source
                )?;
            }
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
            for k in &p.hooks {
                let cmd = mcp_key_vault::display::sanitize(&k.command);
                if k.runs {
                    writeln!(h.out, "    then: {cmd}  (yours, from {})", k.source)?;
                } else {
                    writeln!(
                        h.out,
                        "    then, not run: {cmd}  (kept in the vault {} by an older release; \
                         the next change removes it)",
                        k.source
                    )?;
                }
            }
        }
        writeln!(h.out, "The vault is at revision {}.", self.vault_revision)
    }
}

/// The target as it is recorded, and the revision it holds now. A file is made absolute and
/// refused before anything is recorded when it is the vault or env file itself, not a
/// verifier, or one another user could have planted; a Redis store's script compares
/// revisions and lineage when it is written (its revision here lets `--force` move the
/// vault past it, as for a file).
fn checked_target(ctx: &Ctx, path: &Path) -> Result<(PathBuf, Option<u64>)> {
    if crate::publish::store_of(path)?.is_some() {
        return Ok((path.to_path_buf(), existing_revision(path)?));
    }
    let path = absolute(path)?;
    crate::publish::refuse_link_in_foreign_dir(&path)?;
    let target = mcp_key_vault::fsio::resolve_symlinks(&path, false)?;
    crate::envstore::refuse_vault(&target, &ctx.vault_path, "verifier file")?;
    mcp_key_vault::fsio::refuse_foreign_file_in_shared_dir(&target, "verifier file")?;
    let theirs = existing_revision(&target)?;
    Ok((path, theirs))
}

pub(super) fn publish(ctx: &mut Ctx, a: PublishArgs) -> Result<()> {
    let mut store = ctx.store();
    let Some(path) = a.path else {
        let vault = store.open()?;
        let hooks = Hooks::read(&ctx.vault_path)?;
        let r = Publishing::of(&vault, &ctx.vault_path, &hooks, None);
        return ctx.emit(a.out.output(), &r);
    };
    if a.then.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(Error::usage(
            "--then needs a command; to stop running yours, `mcp-key-manager unpublish PATH` \
             and publish the file again",
        ));
    }
    let (path, theirs) = checked_target(ctx, &path)?;
    // The vault records where to publish; the command goes to this user's own hooks file.
    let entry = Published {
        path: path.clone(),
        names: a.names,
        then: None,
    };
    let (now, vault_path) = (ctx.now, ctx.vault_path.clone());
    if a.force {
        ctx.force_publish(path.clone());
    }
    // The command this one replaces, to put back if the change is not saved.
    let mut replaced: Option<Option<String>> = None;
    let changed = store.update::<_, Error>(|v| {
        // The save bumps the revision by one; a file below that is replaced, one at it only
        // when it comes from this save (the republish checks the digest). `--force` moves
        // the vault past the file either way.
        if let Some(r) = theirs.filter(|r| *r > v.revision() + 1 || (a.force && *r > v.revision()))
        {
            if r >= mcp_key_vault::verify::MAX_REVISION {
                return Err(Error::failed(format!(
                    "{} claims revision {r}, beyond what any vault reaches by saving: it was \
                     forged to freeze its readers; remove it and publish again",
                    shown(&path)
                )));
            }
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
        // Added under the vault's lock, before the save, so that the publish which follows
        // the save runs it.
        if let Some(cmd) = &a.then {
            replaced = Some(crate::hooks::set(&vault_path, &path, Some(cmd))?);
        }
        v.publish(entry, now);
        Ok(())
    });
    if let (Err(_), Some(before)) = (&changed, replaced) {
        let _ = crate::hooks::set(&vault_path, &path, before.as_deref());
    }
    changed?;
    let vault = store.open()?;
    let hooks = Hooks::read(&ctx.vault_path)?;
    let r = Publishing::of(&vault, &ctx.vault_path, &hooks, Some(shown(&path)));
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}

#[derive(Serialize)]
struct Unpublished {
    path: String,
    unpublished: bool,
    /// Whether this user's `--then` command for the file was removed too.
    then_removed: bool,
}

impl Report for Unpublished {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Stopped publishing to {}; the file stays as it is (delete it if no server reads it).",
            self.path
        )?;
        if self.then_removed {
            writeln!(h.out, "Your --then command for it was removed.")?;
        }
        Ok(())
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
    // After the change: the vault no longer names the file, whatever happens to the
    // command (an error here is reported once the change is).
    let removed = crate::hooks::set(&ctx.vault_path, &path, None);
    let r = Unpublished {
        path: shown(&path),
        unpublished: true,
        then_removed: matches!(removed, Ok(Some(_))),
    };
    ctx.emit(a.out.output(), &r)?;
    removed?;
    ctx.finish()
}
