//! Shared by the bench binaries: building large vaults quickly through the library (the
//! fixtures); the timing itself is divan's.
//!
//! Not a bench target itself (cargo only discovers `benches/*.rs` and `benches/*/main.rs`).

#![allow(dead_code)] // each bench binary uses a different subset.

use chrono::{DateTime, Utc};
use mcp_key_vault::{KdfParams, SecretString, Vault};
use mcp_key_vault::{NewKey, DEFAULT_PERMISSIONS};

/// The cheapest KDF the library accepts: for vaults whose unlock cost is not the subject.
pub const CHEAP_KDF: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// Keys are added in chunks of this many: `Vault::add_key` checks a new id against every
/// existing one (a linear scan, fine for one `create`, quadratic for building 100,000).
const CHUNK: usize = 1000;

/// A vault of `n` keys made with `Vault::add_key`, exactly as `create` makes them (default
/// permissions, 90-day expiry, one `create` event each), plus every full key, in order.
///
/// # Panics
/// If the library refuses `kdf` (a bench with bad parameters should stop at once).
pub fn build_vault(
    n: usize,
    pass: &SecretString,
    kdf: KdfParams,
    now: DateTime<Utc>,
) -> (Vault, Vec<SecretString>) {
    let mut vault = Vault::create(pass, kdf).expect("benchmark KDF parameters are in bounds");
    let mut keys = Vec::with_capacity(n);
    let mut done = 0;
    while done < n {
        let take = CHUNK.min(n - done);
        // A chunk shares the big vault's hash_key, so its keyed hashes stay valid when its
        // records move over.
        let mut chunk = Vault::create(pass, CHEAP_KDF).expect("cheap KDF parameters are in bounds");
        chunk.payload_mut_unchecked().hash_key = vault.payload().hash_key.duplicate();
        for i in done..done + take {
            let (_, key) = chunk.create_key(new_key(i, now), now);
            keys.push(key);
        }
        vault
            .payload_mut_unchecked()
            .keys
            .append(&mut chunk.payload_mut_unchecked().keys);
        let events = std::mem::take(chunk.payload_mut_unchecked().events.all_mut());
        vault
            .payload_mut_unchecked()
            .events
            .all_mut()
            .extend(events);
        done += take;
    }
    (vault, keys)
}

/// What `create "bench key N"` with default options would ask for.
pub fn new_key(i: usize, now: DateTime<Utc>) -> NewKey {
    NewKey {
        name: format!("bench key {i}"),
        description: format!("benchmark key number {i}"),
        expires_at: Some(now + chrono::Duration::days(90)),
        permissions: DEFAULT_PERMISSIONS
            .iter()
            .map(|s| s.parse().expect("valid"))
            .collect(),
    }
}

/// The value after `--flag` on the command line, parsed, or `default` (for `genvault`, which
/// generates files and times nothing). Arguments cargo adds (`--bench`) are ignored.
pub fn arg<T: std::str::FromStr>(flag: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == flag) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a valid value")),
        None => default,
    }
}

/// A comma-separated list of sizes after `--sizes`, or `default`.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    let s: String = arg("--sizes", String::new());
    if s.is_empty() {
        return default.to_vec();
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .expect("--sizes takes numbers separated by commas")
        })
        .collect()
}
