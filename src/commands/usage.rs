//! Which key was used when: the usage files that `serve` writes, merged for `list`, `view`
//! and `check`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::UsageArgs;
use crate::serve::usage::{files_beside, load_and_merge, KeyUsage};
use crate::vault::Vault;

/// Usage by key id, merged over every usage file beside a published verifier and those
/// given with `--usage` (latest time, summed counts). Unreadable files are warned about
/// and skipped: usage is advice, never a reason to fail.
pub(super) fn merged(vault: &Vault, extra: &UsageArgs) -> BTreeMap<String, KeyUsage> {
    let mut files: Vec<PathBuf> = vault
        .published()
        .iter()
        .flat_map(|p| files_beside(&p.path))
        .collect();
    files.extend(extra.files.iter().cloned());
    files.dedup();
    let mut all = BTreeMap::new();
    for f in files {
        match load_and_merge(std::slice::from_ref(&f)) {
            Ok(m) => {
                for (id, u) in m {
                    all.entry(id).or_insert_with(KeyUsage::default).merge(&u);
                }
            }
            Err(e) => super::warn(&format!("ignoring the usage file: {e}")),
        }
    }
    all
}
