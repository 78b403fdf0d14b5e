//! `import-legacy`: encrypt the Python tool's plaintext `keys.json` into a vault.

use std::io::{self, Write};

use serde::Serialize;
use zeroize::Zeroizing;

use super::context::*;
use super::output::{s, Human, Report};
use crate::cli::ImportArgs;
use mcp_key_vault::display::{path as shown, sanitize};
use mcp_key_vault::legacy::{self, LegacyRecord};
use mcp_key_vault::Expect;
use mcp_key_vault::Vault;

#[derive(Serialize)]
struct Imported {
    imported: usize,
    revoked: usize,
    vault: String,
    plaintext_kept_at: Option<String>,
    #[serde(skip)]
    in_place: bool,
    #[serde(skip)]
    source: String,
}

impl Report for Imported {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        writeln!(
            h.out,
            "Imported {} key{} ({} inactive, now revoked) into the encrypted vault {}.",
            self.imported,
            s(self.imported),
            self.revoked,
            self.vault
        )?;
        match &self.plaintext_kept_at {
            Some(k) => writeln!(
                h.out,
                "The plaintext store was moved to {k}; it still holds every key in clear: \
                 delete it (shred) once you have checked the import."
            ),
            None if self.in_place => writeln!(h.out, "The plaintext store was replaced."),
            None => writeln!(
                h.out,
                "The plaintext store {} was left in place; delete it once you have checked \
                 the import.",
                self.source
            ),
        }
    }
}

/// Reads and validates the plaintext store: every record, or an error naming each bad one.
fn read_store(source: &Path) -> Result<(Zeroizing<Vec<u8>>, Vec<LegacyRecord>)> {
    let bytes = legacy::read_file(source)?.ok_or_else(|| {
        Error::failed(format!(
            "no key store at {}; give the path of the Python tool's keys.json",
            shown(source)
        ))
    })?;
    let bytes = Zeroizing::new(bytes);
    if legacy::is_encrypted_vault(&bytes)? {
        return Err(Error::failed(format!(
            "{} is already an encrypted vault; nothing to import",
            shown(source)
        )));
    }
    let records = legacy::parse_store(&bytes).map_err(|problems| {
        Error::corrupt(format!(
            "{} has {} malformed record{}; nothing was written:\n  {}",
            shown(source),
            problems.len(),
            s(problems.len()),
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
    Ok((bytes, records))
}

/// Keeps the plaintext store at `k` before the vault replaces it: a hard link where
/// possible, otherwise a new private file with the bytes already read (never through a
/// link planted at `k`).
fn keep_plaintext(source: &Path, k: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    mcp_key_vault::fsio::ensure_parent(k)?;
    std::fs::hard_link(source, k)
        .or_else(|_| -> io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(k)?;
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| Error::io("keep the plaintext store at", k, e))?;
    // The Python tool left its store world-readable; the copy we keep is private.
    std::fs::set_permissions(k, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("restrict the permissions of", k, e))
}

pub(super) fn import_legacy(ctx: &mut Ctx, a: ImportArgs) -> Result<()> {
    let params = kdf_from_args(&a.kdf, KdfParams::DEFAULT)?;
    let mut store = ctx.store();
    let source = a.path.unwrap_or_else(|| store.path().to_path_buf());
    let in_place = source == store.path();
    let (bytes, records) = read_store(&source)?;
    if !in_place && store.exists() {
        return Err(Error::failed(format!(
            "a vault already exists at {}; import into a new path with --vault",
            shown(store.path())
        )));
    }
    if let Some(k) = a.keep_plaintext.as_deref().filter(|k| k.exists()) {
        return Err(Error::failed(format!(
            "{} already exists; --keep-plaintext never overwrites a file",
            shown(k)
        )));
    }
    let weak = super::check::weak_legacy_keys(&records);
    let pass = ctx.term.new_passphrase("the new vault")?;
    let mut vault = Vault::create(&pass, params)?;
    let (count, inactive) = (records.len(), records.iter().filter(|r| !r.active).count());
    for r in records {
        vault.import_record(r, ctx.now, &source.display().to_string())?;
    }
    let expect = if in_place {
        Expect::Bytes(&bytes)
    } else {
        Expect::Absent
    };
    store.create::<Error>(vault, expect, || match &a.keep_plaintext {
        Some(k) => keep_plaintext(&source, k, &bytes),
        None => Ok(()),
    })?;
    if !in_place && a.keep_plaintext.is_some() {
        let _ = std::fs::remove_file(&source);
    }
    for (id, bits) in weak {
        warn(&format!(
            "the imported key {id} is guessable (about {bits:.0} bits of strength, under 128): \
             anyone with a verifier file can find it by trying likely keys; replace it with \
             `mcp-key-manager rotate {id}`"
        ));
    }
    let r = Imported {
        imported: count,
        revoked: inactive,
        vault: shown(store.path()),
        plaintext_kept_at: a.keep_plaintext.as_deref().map(shown),
        in_place,
        source: shown(&source),
    };
    ctx.emit(a.out.output(), &r)?;
    ctx.finish()
}
