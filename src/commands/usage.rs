//! Which key was used when: the usage files that `serve` writes, merged for `list`, `view`
//! and `check`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::UsageArgs;
use crate::serve::usage::{files_beside, load, KeyUsage};
use crate::vault::Vault;

/// Usage by key id, merged over every usage file beside a published verifier and those
/// given with `--usage` (latest time, summed counts); `None` when there is no usage file
/// at all (then nobody can tell a key is unused). Unreadable files are warned about and
/// skipped: usage is advice, never a reason to fail.
pub(super) fn merged(vault: &Vault, extra: &UsageArgs) -> Option<BTreeMap<String, KeyUsage>> {
    let mut files: Vec<PathBuf> = vault
        .published()
        .iter()
        .flat_map(|p| files_beside(&p.path))
        .collect();
    for f in &extra.files {
        // A file named on the command line that is not there is a typo worth a word;
        // the ones beside a verifier are absent until `serve` first writes them.
        if !f.exists() {
            super::warn(&format!(
                "the usage file {} does not exist",
                crate::display::path(f)
            ));
        }
    }
    files.extend(extra.files.iter().cloned());
    files.dedup();
    let mut all: Option<BTreeMap<String, KeyUsage>> = None;
    for f in files {
        match load(&f) {
            Ok(Some(m)) => {
                let all = all.get_or_insert_with(BTreeMap::new);
                for (id, u) in m {
                    all.entry(id).or_default().merge(&u);
                }
            }
            Ok(None) => {}
            Err(e) => super::warn(&format!("ignoring the usage file: {e}")),
        }
    }
    all
}
