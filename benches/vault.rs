//! The vault's non-KDF work, through the library, for 10 to 100,000 keys: reading a file
//! (envelope parse + base64, decrypt, payload parse) and writing one (payload serialize,
//! encrypt, envelope encode), in total and phase by phase, per key.
//!
//! ```text
//! cargo bench --bench vault -- [--sizes 10,1000,10000,100000]
//! ```
//!
//! The key is derived once up front: the KDF is the subject of `benches/kdf.rs`, and here it
//! would only hide the cost of scale.

mod common;

use std::hint::black_box;

use mcp_key_vault::crypto::{self, derive_key};
use mcp_key_vault::{Envelope, Payload};
use mcp_key_vault::{SecretKey, SecretString, Vault};

fn main() {
    let pass = SecretString::new("benchmark passphrase, not a secret".into());
    // Whole seconds, as every time the CLI writes (records::now).
    let now = mcp_key_vault::records::now();
    println!(
        "| keys | file MB | runs | parse env | decrypt | parse payload | serialize | encrypt | encode env | total wall | total CPU | µs/key |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in common::sizes(&[10, 1000, 10_000, 100_000]) {
        let runs = (200_000 / n).clamp(5, 101);
        let (vault, _keys) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
        let bytes = vault.to_bytes();
        let env = Envelope::parse(&bytes).expect("a vault we just wrote parses");
        let key = derive_key(&pass, &env.salt, &env.kdf).expect("derivation succeeds");

        // The whole round trip as a command does it (minus the KDF and the disk).
        let total = common::sample(runs, || {
            let env = Envelope::parse(black_box(&bytes)).expect("parses");
            let v = Vault::unlock(&env, key.duplicate()).expect("unlocks");
            black_box(v.to_bytes());
        });

        // Phase by phase.
        let t_env = common::sample(runs, || {
            black_box(Envelope::parse(black_box(&bytes)).expect("parses"));
        });
        let ad = env.ad();
        let t_open = common::sample(runs, || {
            black_box(crypto::open(&key, &env.nonce, &ad, &env.ciphertext).expect("opens"));
        });
        let plain = crypto::open(&key, &env.nonce, &ad, &env.ciphertext).expect("opens");
        let t_parse = common::sample(runs, || {
            black_box(Payload::from_json(black_box(&plain)).expect("parses"));
        });
        let t_ser = common::sample(runs, || {
            black_box(vault.payload().to_json());
        });
        let seal_key = SecretKey::new([9; 32]);
        let t_seal = common::sample(runs, || {
            black_box(crypto::seal(&seal_key, &[1; 24], &ad, black_box(&plain)));
        });
        let sealed = Envelope {
            kdf: env.kdf,
            salt: env.salt.clone(),
            nonce: env.nonce,
            ciphertext: env.ciphertext.clone(),
        };
        let t_enc = common::sample(runs, || {
            black_box(sealed.to_bytes());
        });

        let cpu = |x: &common::Samples| common::median_ms(&x.cpu);
        let total_cpu = cpu(&total);
        println!(
            "| {n:>7} | {:>7.2} | {runs:>4} | {:>10.2} | {:>7.2} | {:>13.2} | {:>9.2} | {:>7.2} | {:>10.2} | {:>9.2} | {:>9.2} | {:>6.2} |",
            bytes.len() as f64 / 1e6,
            cpu(&t_env),
            cpu(&t_open),
            cpu(&t_parse),
            cpu(&t_ser),
            cpu(&t_seal),
            cpu(&t_enc),
            common::median_ms(&total.wall),
            total_cpu,
            total_cpu * 1000.0 / n as f64,
        );
    }
    println!();
    println!(
        "Medians in ms. Phases are CPU time of the benchmark thread (robust on a busy machine); \
         the total is given as wall and CPU time; µs/key is the CPU total divided by the keys."
    );
}
