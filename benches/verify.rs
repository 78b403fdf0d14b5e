//! `Verifier::verify` throughput against verifier sets of 10, 10,000 and 100,000 keys, set
//! against the cost of one HMAC-SHA256 of an 85-byte key measured alone.
//!
//! ```text
//! cargo bench --bench verify -- [--sizes 10,10000,100000] [--runs 11]
//! ```
//!
//! Single-threaded, so the rates are per core. The presented keys are drawn at random from
//! the whole set (up to 10,000 distinct keys, cycled), so a large set is not flattered by
//! a cache that only ever sees a few of its entries. Target (issue 6): at least 1,000,000
//! verifications per second and no growth with set size.

mod common;

use std::hint::black_box;

use hmac::{Hmac, Mac};
use mcp_key_vault::verify::{from_vault, Code};
use mcp_key_vault::SecretString;
use rand::seq::SliceRandom;
use sha2::Sha256;

/// Calls per timed run.
const CALLS: usize = 200_000;

/// Median nanoseconds per call of `f` over `runs` runs of `CALLS` calls each: (wall, CPU).
fn ns_per_call(runs: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..CALLS / 10 {
        f(i); // warm-up
    }
    let s = common::sample(runs, || {
        for i in 0..CALLS {
            f(i);
        }
    });
    let per_call = |d: &[std::time::Duration]| common::median_ms(d) * 1e6 / CALLS as f64;
    (per_call(&s.wall), per_call(&s.cpu))
}

/// One table row; the rate is per CPU-second, i.e. per core.
fn row(what: &str, (wall, cpu): (f64, f64)) {
    println!(
        "| {what:<58} | {wall:>8.1} | {cpu:>8.1} | {:>12.0} |",
        1e9 / cpu
    );
}

fn main() {
    let runs: usize = common::arg("--runs", 11);
    let now = chrono::Utc::now();
    let pass = SecretString::new("benchmark passphrase, not a secret".into());

    println!(
        "| operation (single thread)                                  | wall ns  | CPU ns   | calls/s/core |"
    );
    println!(
        "|------------------------------------------------------------|---------:|---------:|-------------:|"
    );

    // Reference: one HMAC-SHA256 over an 85-byte key (the length of `mcp_<16>_<64>`).
    let hash_key = [7u8; 32];
    let key85 = [b'a'; 85];
    let ns = ns_per_call(runs, |_| {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&hash_key)).expect("any key");
        mac.update(black_box(&key85));
        black_box(mac.finalize().into_bytes());
    });
    row("HMAC-SHA256, 85 bytes, key schedule each call", ns);
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&hash_key).expect("any key");
    let hmac_ns = ns_per_call(runs, |_| {
        let mut mac = keyed.clone();
        mac.update(black_box(&key85));
        black_box(mac.finalize().into_bytes());
    });
    row(
        "HMAC-SHA256, 85 bytes, pre-keyed state cloned (reference)",
        hmac_ns,
    );

    let mut worst_ratio: f64 = 0.0;
    for n in common::sizes(&[10, 10_000, 100_000]) {
        let (vault, keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
        let verifier = from_vault(&vault);
        let mut picks: Vec<&SecretString> = keys.iter().collect();
        picks.shuffle(&mut rand::rngs::OsRng);
        picks.truncate(10_000);
        // Copied into fresh, compact strings: a server verifies the key it has just read
        // from a request, which is in cache; the vault's own copies are scattered over the
        // heap and would charge a cache miss to reading the input rather than to the lookup.
        let presented: Vec<String> = picks.iter().map(|k| k.expose().to_string()).collect();
        // A known id with a wrong secret: the lookup succeeds, the hash comparison fails.
        let wrong: Vec<String> = presented
            .iter()
            .map(|k| format!("{}{}", &k[..21], "0".repeat(64)))
            .collect();
        let required = ["generate"];
        assert_eq!(verifier.verify(&presented[0], &required).code, Code::Valid);
        assert_eq!(verifier.verify(&wrong[0], &required).code, Code::NotFound);

        let m = presented.len();
        let ns = ns_per_call(runs, |i| {
            black_box(
                verifier
                    .verify(black_box(&presented[i % m]), &required)
                    .code,
            );
        });
        worst_ratio = worst_ratio.max(ns.1 / hmac_ns.1);
        row(&format!("Verifier::verify, valid key, {n} keys"), ns);
        let ns = ns_per_call(runs, |i| {
            black_box(
                verifier
                    .verify_at(black_box(&presented[i % m]), &required, now)
                    .code,
            );
        });
        row(
            &format!("Verifier::verify_at (no clock read), valid, {n} keys"),
            ns,
        );
        let ns = ns_per_call(runs, |i| {
            black_box(verifier.verify(black_box(&wrong[i % m]), &required).code);
        });
        row(
            &format!("Verifier::verify, known id + wrong secret, {n} keys"),
            ns,
        );
    }
    println!();
    println!(
        "Worst Verifier::verify / HMAC reference ratio (CPU): {worst_ratio:.2} (1.00 would be HMAC alone)"
    );
}
