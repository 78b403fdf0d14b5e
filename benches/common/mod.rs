//! Shared by the bench binaries: building large vaults quickly through the library, and
//! medians of repeated timings.
//!
//! Not a bench target itself (cargo only discovers `benches/*.rs` and `benches/*/main.rs`).

#![allow(dead_code)] // each bench binary uses a different subset.

use std::time::{Duration, Instant};

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

/// CPU time consumed by the calling thread so far. Unlike wall time, it does not grow
/// while other processes hold the CPU, so it stays comparable on a busy machine.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives on our stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall-clock and CPU durations of repeated runs, each list sorted.
pub struct Samples {
    /// Wall-clock time of each run.
    pub wall: Vec<Duration>,
    /// CPU time of the calling thread during each run.
    pub cpu: Vec<Duration>,
}

/// Runs `f` `runs` times and returns every duration, sorted.
pub fn sample(runs: usize, mut f: impl FnMut()) -> Samples {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let c = thread_cpu();
        let t = Instant::now();
        f();
        wall.push(t.elapsed());
        cpu.push(thread_cpu() - c);
    }
    wall.sort();
    cpu.sort();
    Samples { wall, cpu }
}

/// The median of sorted durations, in milliseconds.
pub fn median_ms(sorted: &[Duration]) -> f64 {
    let n = sorted.len();
    assert!(n > 0, "a median needs at least one sample");
    let mid = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

/// The value after `--flag` on the command line, parsed, or `default`. Arguments cargo adds
/// (`--bench`) are ignored.
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

/// Whether `--flag` was given.
pub fn flag(flag: &str) -> bool {
    std::env::args().any(|a| a == flag)
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
