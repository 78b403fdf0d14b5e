//! The vault's non-KDF work in format 1, through the library, for 10 to 100,000 keys:
//! reading a file (envelope parse + base64, decrypt, payload parse) and writing one (payload
//! serialize, encrypt, envelope encode), in total (`round_trip`) and phase by phase. divan's item
//! counter gives the throughput in keys per second (its inverse is the cost per key).
//!
//! ```text
//! cargo bench --bench vault
//! cargo bench --bench vault -- --sample-count 5   # shorter
//! ```
//!
//! The key is derived once up front: the KDF is the subject of `benches/kdf.rs`, and here it
//! would only hide the cost of scale.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use mcp_key_vault::crypto::{self, derive_key};
use mcp_key_vault::{Envelope, Payload};
use mcp_key_vault::{SecretKey, SecretString, Vault};

fn main() {
    divan::main();
}

/// Key counts of the vaults.
const SIZES: &[usize] = &[10, 1000, 10_000, 100_000];

/// A vault of `n` keys, its file, and what each phase starts from.
struct Fixture {
    vault: Vault,
    bytes: Vec<u8>,
    env: Envelope,
    key: SecretKey,
    plain: Vec<u8>,
}

thread_local! {
    static CACHE: RefCell<HashMap<usize, &'static Fixture>> = RefCell::default();
}

/// The fixture for `n` keys, built once per process.
fn fixture(n: usize) -> &'static Fixture {
    CACHE.with(|c| {
        *c.borrow_mut().entry(n).or_insert_with(|| {
            let pass = SecretString::new("benchmark passphrase, not a secret".into());
            // Whole seconds, as every time the CLI writes (records::now).
            let now = mcp_key_vault::records::now();
            let (mut built, _keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
            // This bench times the format-1 envelope's phases (`benches/format2` compares
            // the two formats): the same records, in a format-1 vault.
            let mut vault = Vault::create_format1(&pass, common::CHEAP_KDF).expect("in bounds");
            *vault.payload_mut_unchecked() = std::mem::take(built.payload_mut_unchecked());
            let bytes = vault.to_bytes();
            let env = Envelope::parse(&bytes).expect("a vault we just wrote parses");
            let key = derive_key(&pass, &env.salt, &env.kdf).expect("derivation succeeds");
            let plain = crypto::open(&key, &env.nonce, &env.ad(), &env.ciphertext)
                .expect("opens")
                .to_vec();
            Box::leak(Box::new(Fixture {
                vault,
                bytes,
                env,
                key,
                plain,
            }))
        })
    })
}

/// The fixture for `n` keys, with divan counting `n` items per call.
fn setup<'a, 'b>(bencher: Bencher<'a, 'b>, n: usize) -> (Bencher<'a, 'b>, &'static Fixture) {
    let f = fixture(n);
    (bencher.counter(ItemsCount::new(n)), f)
}

/// The whole round trip as a command does it, minus the KDF and the disk.
#[divan::bench(args = SIZES, sample_count = 20)]
fn round_trip(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    b.bench_local(|| {
        let env = Envelope::parse(black_box(&f.bytes)).expect("parses");
        let v = Vault::unlock(&env, f.key.duplicate()).expect("unlocks");
        v.to_bytes()
    });
}

/// Read, phase 1: envelope parse (JSON + base64 of the ciphertext).
#[divan::bench(args = SIZES, sample_count = 20)]
fn read_parse_envelope(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    b.bench_local(|| Envelope::parse(black_box(&f.bytes)).expect("parses"));
}

/// Read, phase 2: decrypt.
#[divan::bench(args = SIZES, sample_count = 20)]
fn read_decrypt(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    let ad = f.env.ad();
    b.bench_local(|| crypto::open(&f.key, &f.env.nonce, &ad, &f.env.ciphertext).expect("opens"));
}

/// Read, phase 3: payload parse.
#[divan::bench(args = SIZES, sample_count = 20)]
fn read_parse_payload(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    b.bench_local(|| Payload::from_json(black_box(&f.plain)).expect("parses"));
}

/// Write, phase 1: payload serialize.
#[divan::bench(args = SIZES, sample_count = 20)]
fn write_serialize_payload(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    b.bench_local(|| f.vault.payload().to_json());
}

/// Write, phase 2: encrypt.
#[divan::bench(args = SIZES, sample_count = 20)]
fn write_encrypt(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    let ad = f.env.ad();
    let seal_key = SecretKey::new([9; 32]);
    b.bench_local(|| crypto::seal(&seal_key, &[1; 24], &ad, black_box(&f.plain)));
}

/// Write, phase 3: envelope encode.
#[divan::bench(args = SIZES, sample_count = 20)]
fn write_encode_envelope(bencher: Bencher, n: usize) {
    let (b, f) = setup(bencher, n);
    let sealed = Envelope {
        kdf: f.env.kdf,
        salt: f.env.salt.clone(),
        nonce: f.env.nonce,
        ciphertext: f.env.ciphertext.clone(),
    };
    b.bench_local(|| sealed.to_bytes());
}
