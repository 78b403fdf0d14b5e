//! Issue 11, item 13: does an unknown id answer faster than a known id with a wrong
//! secret? Both must do the same work, so that response time tells an attacker nothing
//! about which ids exist.
//!
//! ```text
//! cargo bench --bench timing -- [--sizes 1,100000] [--samples 4000]
//! ```
//!
//! Many small batches (32 calls each) of the two kinds are timed alternately, in a random
//! order per pair, so drift and noise hit both alike; the table gives the per-call
//! nanoseconds at the 10th, 50th and 90th percentile of the batches, and the p50 ratio.

mod common;

use std::hint::black_box;
use std::time::Instant;

use mcp_key_vault::verify::{from_vault, Code};
use mcp_key_vault::SecretString;
use rand::Rng;

const BATCH: usize = 32;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let samples: usize = common::arg("--samples", 4000);
    let now = chrono::Utc::now();
    let pass = SecretString::new("benchmark passphrase, not a secret".into());
    println!("| keys | presented | p10 ns | p50 ns | p90 ns |");
    println!("|---:|---|---:|---:|---:|");
    for n in common::sizes(&[1, 100_000]) {
        let (vault, keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
        let verifier = from_vault(&vault);
        let mut rng = rand::rngs::OsRng;
        // Up to 10,000 distinct keys of each kind, spread over the whole set and cycled a
        // batch at a time, so a large set pays its cache misses on both paths alike.
        let distinct = n.clamp(BATCH, 10_000);
        let known_wrong: Vec<String> = (0..distinct)
            .map(|i| format!("{}{}", &keys[(i * 7919) % n].expose()[..21], "0".repeat(64)))
            .collect();
        let unknown: Vec<String> = (0..distinct)
            .map(|_| format!("mcp_{:016x}_{}", rng.gen::<u64>(), "0".repeat(64)))
            .collect();
        for k in known_wrong.iter().chain(&unknown) {
            assert_eq!(verifier.verify_at(k, &[], now).code, Code::NotFound);
        }
        let mut batch = 0usize;
        let mut time = |set: &[String]| {
            let start = (batch * BATCH) % (set.len() - BATCH + 1);
            batch += 1;
            let t = Instant::now();
            for k in &set[start..start + BATCH] {
                black_box(verifier.verify_at(black_box(k), &[], now).code);
            }
            t.elapsed().as_nanos() as f64 / BATCH as f64
        };
        let (mut a, mut b) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
        for _ in 0..200 {
            time(&unknown);
            time(&known_wrong);
        }
        for _ in 0..samples {
            if rand::Rng::gen::<bool>(&mut rng) {
                a.push(time(&unknown));
                b.push(time(&known_wrong));
            } else {
                b.push(time(&known_wrong));
                a.push(time(&unknown));
            }
        }
        let (a50, b50) = (percentile(&mut a, 0.5), percentile(&mut b, 0.5));
        for (what, v) in [("unknown id", &mut a), ("known id, wrong secret", &mut b)] {
            println!(
                "| {n} | {what} | {:.0} | {:.0} | {:.0} |",
                percentile(v, 0.1),
                percentile(v, 0.5),
                percentile(v, 0.9)
            );
        }
        println!("| {n} | p50 ratio unknown / known | | {:.3} | |", a50 / b50);
    }
}
