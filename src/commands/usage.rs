//! Which key was used when: the usage files that `serve` writes, merged for `list`, `view`
//! and `check`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cli::UsageArgs;
use crate::key_usage::KeyUsage;
use crate::serve::usage::{files_beside, load};

use crate::redact::warn;
use mcp_key_vault::Vault;

use chrono::{DateTime, Duration, Utc};

/// How far ahead of this machine's clock a last use may be and still be believed: the
/// clocks of the machines running `serve` may run a little ahead.
pub(super) const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Usage by key id, merged over every usage file beside a published verifier and those
/// given with `--usage` (latest time, summed counts); `None` when there is no usage file
/// at all (then nobody can tell a key is unused). Unreadable files are warned about and
/// skipped: usage is advice, never a reason to fail.
///
/// A last use later than `now` (beyond [`CLOCK_SKEW`]) is not believed: it would hide a
/// key's disuse for as long as the file says (a forged file beside the verifier claimed
/// "in 355,041 days"). It is left out and the file named.
pub(super) fn merged(
    vault: &Vault,
    extra: &UsageArgs,
    now: DateTime<Utc>,
) -> Option<BTreeMap<String, KeyUsage>> {
    let mut files: Vec<PathBuf> = vault
        .published()
        .iter()
        .flat_map(|p| files_beside(&p.path))
        .collect();
    for f in &extra.files {
        // A file named on the command line that is not there is a typo worth a word;
        // the ones beside a verifier are absent until `serve` first writes them.
        let store = f.to_str().is_some_and(crate::fleet::store::is_store);
        if !store && !f.exists() {
            warn(&format!(
                "the usage file {} does not exist",
                mcp_key_vault::display::path(f)
            ));
        }
    }
    files.extend(extra.files.iter().cloned());
    files.dedup();
    let mut all: Option<BTreeMap<String, KeyUsage>> = None;
    for f in files {
        let loaded = match f.to_str() {
            // The fleet's usage, summed in a Redis store by every `serve --usage redis://…`.
            Some(url) if crate::fleet::store::is_store(url) => {
                crate::fleet::usage::read(url).map(Some)
            }
            _ => load(&f),
        };
        match loaded {
            Ok(Some(m)) => {
                let all = all.get_or_insert_with(BTreeMap::new);
                let mut future = 0;
                for (id, mut u) in m {
                    if u.last_used_at.is_some_and(|t| t > now + CLOCK_SKEW) {
                        u.last_used_at = None;
                        future += 1;
                    }
                    all.entry(id).or_default().merge(&u);
                }
                if future > 0 {
                    warn(&format!(
                        "the usage file {} records a last use in the future for {future} \
                         key{}; ignored (a clock far ahead, or a forged file)",
                        mcp_key_vault::display::path(&f),
                        if future == 1 { "" } else { "s" }
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => warn(&format!("ignoring the usage file: {e}")),
        }
    }
    all
}
