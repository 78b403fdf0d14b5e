//! `Verifier::verify` throughput against verifier sets of 10, 10,000 and 100,000 keys, set
//! against the cost of one HMAC-SHA256 of an 85-byte key measured alone (the reference:
//! read the ratio `verify / hmac_prekeyed` from one run).
//!
//! ```text
//! cargo bench --bench verify
//! cargo bench --bench verify -- --sample-count 20 --min-time 0.5   # shorter
//! ```
//!
//! Single-threaded, so the rates are per core. The presented keys are drawn at random from
//! the whole set (up to 10,000 distinct keys, cycled), so a large set is not flattered by
//! a cache that only ever sees a few of its entries. Target: at least 1,000,000
//! verifications per second and no growth with set size.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use divan::{black_box, Bencher};
use hmac::{Hmac, Mac};
use mcp_key_vault::verify::{from_vault, Code, Verifier};
use mcp_key_vault::SecretString;
use rand::seq::SliceRandom;
use sha2::Sha256;

fn main() {
    divan::main();
}

/// Key counts of the verifier sets.
const SIZES: &[usize] = &[10, 10_000, 100_000];

/// The permission every presented key is asked for.
const REQUIRED: &[&str] = &["generate"];

/// A verifier of `n` keys and the keys presented to it.
struct Fixture {
    verifier: Verifier,
    /// Valid keys, shuffled, copied into fresh compact strings: a server verifies the key it
    /// has just read from a request, which is in cache; the vault's own copies are scattered
    /// over the heap and would charge a cache miss to reading the input, not to the lookup.
    valid: Vec<String>,
    /// The same ids with a wrong secret: the lookup succeeds, the hash comparison fails.
    wrong: Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
}

thread_local! {
    static CACHE: RefCell<HashMap<usize, &'static Fixture>> = RefCell::default();
}

/// The fixture for `n` keys, built once per process (100,000 keys take a while).
fn fixture(n: usize) -> &'static Fixture {
    CACHE.with(|c| {
        *c.borrow_mut().entry(n).or_insert_with(|| {
            let now = chrono::Utc::now();
            let pass = SecretString::new("benchmark passphrase, not a secret".into());
            let (vault, keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
            let verifier = from_vault(&vault);
            let mut picks: Vec<&SecretString> = keys.iter().collect();
            picks.shuffle(&mut rand::rngs::OsRng);
            picks.truncate(10_000);
            let valid: Vec<String> = picks.iter().map(|k| k.expose().to_string()).collect();
            let wrong: Vec<String> = valid
                .iter()
                .map(|k| format!("{}{}", &k[..21], "0".repeat(64)))
                .collect();
            assert_eq!(verifier.verify(&valid[0], REQUIRED).code, Code::Valid);
            assert_eq!(verifier.verify(&wrong[0], REQUIRED).code, Code::NotFound);
            Box::leak(Box::new(Fixture {
                verifier,
                valid,
                wrong,
                now,
            }))
        })
    })
}

/// Cycles through `keys`, one per call.
fn cycle<'a>(keys: &'a [String]) -> impl FnMut() -> &'a String {
    let mut i = 0;
    move || {
        i = if i + 1 == keys.len() { 0 } else { i + 1 };
        &keys[i]
    }
}

const KEY_85: [u8; 85] = [b'a'; 85];
const HASH_KEY: [u8; 32] = [7; 32];

/// One HMAC-SHA256 over an 85-byte key (the length of `mcp_<16>_<64>`), key schedule each call.
#[divan::bench(sample_size = 1000)]
fn hmac_keyed_each_call() -> impl Sized {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&HASH_KEY)).expect("any key");
    mac.update(black_box(&KEY_85));
    mac.finalize().into_bytes()
}

/// The reference: one HMAC-SHA256 over 85 bytes from a pre-keyed state, cloned (what the
/// verifier does per call).
#[divan::bench(sample_size = 1000)]
fn hmac_prekeyed(bencher: Bencher) {
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&HASH_KEY).expect("any key");
    bencher.bench_local(|| {
        let mut mac = keyed.clone();
        mac.update(black_box(&KEY_85));
        mac.finalize().into_bytes()
    });
}

/// `Verifier::verify` (reads the clock) of a valid key.
#[divan::bench(args = SIZES, sample_size = 1000)]
fn verify_valid(bencher: Bencher, n: usize) {
    let f = fixture(n);
    let mut next = cycle(&f.valid);
    bencher.bench_local(|| f.verifier.verify(black_box(next()), REQUIRED).code);
}

/// `Verifier::verify_at` (no clock read) of a valid key.
#[divan::bench(args = SIZES, sample_size = 1000)]
fn verify_at_valid(bencher: Bencher, n: usize) {
    let f = fixture(n);
    let mut next = cycle(&f.valid);
    bencher.bench_local(|| {
        f.verifier
            .verify_at(black_box(next()), REQUIRED, f.now)
            .code
    });
}

/// `Verifier::verify` of a known id with a wrong secret.
#[divan::bench(args = SIZES, sample_size = 1000)]
fn verify_known_id_wrong_secret(bencher: Bencher, n: usize) {
    let f = fixture(n);
    let mut next = cycle(&f.wrong);
    bencher.bench_local(|| f.verifier.verify(black_box(next()), REQUIRED).code);
}
