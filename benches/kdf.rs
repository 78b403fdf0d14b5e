//! Argon2id key derivation as the vault derives its key (`vault::crypto::derive_key`:
//! 16-byte salt, 32-byte output), timed in process so that it can be set against the
//! reference C implementation's own timing of `argon2_hash`.
//!
//! ```text
//! cargo bench --bench kdf -- [--memory-kib 65536] [--iterations 3] [--parallelism 1] [--runs 7]
//! cargo bench --bench kdf -- --cold     # one derivation in a fresh process
//! ```
//!
//! Also times the `argon2` crate called directly with a reused block buffer
//! (`hash_password_into_with_memory`), which shows what allocation and first-touch page
//! faults cost. Wall and CPU time are both reported: the reference CLI reports CPU time
//! (`clock()`), and CPU time is what stays comparable when the machine is busy. The last two
//! lines, `median_ms` and `median_cpu_ms`, are for `benches/compare.sh`.

mod common;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use mcp_key_vault::crypto::derive_key;
use mcp_key_vault::{KdfParams, SecretString};

fn main() {
    let kdf = KdfParams {
        memory_kib: common::arg("--memory-kib", KdfParams::DEFAULT.memory_kib),
        iterations: common::arg("--iterations", KdfParams::DEFAULT.iterations),
        parallelism: common::arg("--parallelism", KdfParams::DEFAULT.parallelism),
    };
    let runs: usize = common::arg("--runs", 7);
    kdf.check_bounds()
        .expect("KDF parameters within the vault's bounds");
    let pass = SecretString::new("benchmark passphrase, not a secret".into());
    let salt = mcp_key_vault::rng::bytes(mcp_key_vault::SALT_LEN);

    if common::flag("--cold") {
        // One derivation in a fresh process, as the CLI (and the reference C CLI) pays it:
        // `benches/compare.sh` interleaves such runs with the C implementation's.
        let s = common::sample(1, || {
            std::hint::black_box(derive_key(&pass, &salt, &kdf).expect("derivation succeeds"));
        });
        println!("median_ms {:.2}", common::median_ms(&s.wall));
        println!("median_cpu_ms {:.2}", common::median_ms(&s.cpu));
        return;
    }
    // One untimed run warms the allocator and the CPU frequency.
    derive_key(&pass, &salt, &kdf).expect("derivation succeeds");
    let ours = common::sample(runs, || {
        std::hint::black_box(derive_key(&pass, &salt, &kdf).expect("derivation succeeds"));
    });

    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .expect("valid Argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut blocks = vec![Block::default(); params.block_count()];
    let mut out = [0u8; 32];
    let reused = common::sample(runs, || {
        argon
            .hash_password_into_with_memory(
                pass.expose().as_bytes(),
                &salt,
                &mut out,
                &mut blocks[..],
            )
            .expect("derivation succeeds");
        std::hint::black_box(&out);
    });

    println!(
        "Argon2id m={} KiB t={} p={}, 16-byte salt, 32-byte output, {runs} runs (ms)",
        kdf.memory_kib, kdf.iterations, kdf.parallelism
    );
    for (what, s) in [
        ("derive_key (the vault's code path)", &ours),
        ("argon2 crate, reused block buffer", &reused),
    ] {
        println!(
            "  {what:<36} wall median {:7.1} (min {:6.1})   CPU median {:7.1} (min {:6.1})",
            common::median_ms(&s.wall),
            s.wall[0].as_secs_f64() * 1e3,
            common::median_ms(&s.cpu),
            s.cpu[0].as_secs_f64() * 1e3,
        );
    }
    println!("median_ms {:.2}", common::median_ms(&ours.wall));
    println!("median_cpu_ms {:.2}", common::median_ms(&ours.cpu));
}
