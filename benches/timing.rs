//! Does an unknown id answer faster than a known id with a wrong secret? Both must do the
//! same work, so that response time tells an attacker nothing about which ids exist. The
//! two sides are separate benches of one run, at 1 and 100,000 keys: read the ratio
//! `unknown_id / known_id_wrong_secret` per size.
//!
//! ```text
//! cargo bench --bench timing
//! cargo bench --bench timing -- --sample-count 200 --min-time 1   # shorter
//! ```
//!
//! Up to 10,000 distinct keys of each kind, spread over the whole set and cycled, so a large
//! set pays its cache misses on both paths alike. divan runs one side after the other (the
//! hand-rolled predecessor interleaved them); on a shared machine, compare the medians of a
//! single run and repeat it if they disagree with the previous run.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use divan::{black_box, Bencher};
use mcp_key_vault::verify::{from_vault, Code, Verifier};
use mcp_key_vault::SecretString;
use rand::Rng;

fn main() {
    divan::main();
}

/// Key counts of the verifier sets.
const SIZES: &[usize] = &[1, 100_000];

/// A verifier of `n` keys and the two kinds of keys presented to it.
struct Fixture {
    verifier: Verifier,
    /// Known ids, each with a wrong secret.
    known_wrong: Vec<String>,
    /// Ids no key has.
    unknown: Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
}

thread_local! {
    static CACHE: RefCell<HashMap<usize, &'static Fixture>> = RefCell::default();
}

/// The fixture for `n` keys, built once per process.
fn fixture(n: usize) -> &'static Fixture {
    CACHE.with(|c| {
        *c.borrow_mut().entry(n).or_insert_with(|| {
            let now = chrono::Utc::now();
            let pass = SecretString::new("benchmark passphrase, not a secret".into());
            let (vault, keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
            let verifier = from_vault(&vault);
            let mut rng = rand::rngs::OsRng;
            let distinct = n.clamp(32, 10_000);
            let known_wrong: Vec<String> = (0..distinct)
                .map(|i| format!("{}{}", &keys[(i * 7919) % n].expose()[..21], "0".repeat(64)))
                .collect();
            let unknown: Vec<String> = (0..distinct)
                .map(|_| format!("mcp_{:016x}_{}", rng.gen::<u64>(), "0".repeat(64)))
                .collect();
            for k in known_wrong.iter().chain(&unknown) {
                assert_eq!(verifier.verify_at(k, &[], now).code, Code::NotFound);
            }
            Box::leak(Box::new(Fixture {
                verifier,
                known_wrong,
                unknown,
                now,
            }))
        })
    })
}

/// Times `verify_at` over `keys`, one per call, cycled.
fn bench_keys(bencher: Bencher, f: &Fixture, keys: &[String]) {
    let mut i = 0;
    bencher.bench_local(|| {
        i = if i + 1 == keys.len() { 0 } else { i + 1 };
        f.verifier.verify_at(black_box(&keys[i]), &[], f.now).code
    });
}

/// An id no key has.
#[divan::bench(args = SIZES, sample_size = 1000)]
fn unknown_id(bencher: Bencher, n: usize) {
    let f = fixture(n);
    bench_keys(bencher, f, &f.unknown);
}

/// A known id with a wrong secret.
#[divan::bench(args = SIZES, sample_size = 1000)]
fn known_id_wrong_secret(bencher: Bencher, n: usize) {
    let f = fixture(n);
    bench_keys(bencher, f, &f.known_wrong);
}
