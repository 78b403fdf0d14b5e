//! Argon2id key derivation as the vault derives its key (`vault::crypto::derive_key`:
//! 16-byte salt, 32-byte output) at the default settings (64 MiB, 3 passes, 1 lane), set
//! against the `argon2` crate called directly with a reused block buffer
//! (`hash_password_into_with_memory`): the difference is what allocation and first-touch
//! page faults cost.
//!
//! ```text
//! cargo bench --bench kdf
//! cargo bench --bench kdf -- --cold   # one derivation in a fresh process, for benches/compare.sh
//! ```
//!
//! `--cold` is not a divan run: it times one derivation, as the CLI (and the reference C
//! CLI) pays it, and prints `median_ms` (wall) and `median_cpu_ms` (CPU of the thread) for
//! `benches/compare.sh`, which interleaves such processes with the C implementation's.

mod common;

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use divan::{black_box, Bencher};
use mcp_key_vault::crypto::derive_key;
use mcp_key_vault::{KdfParams, SecretString};

fn main() {
    if std::env::args().any(|a| a == "--cold") {
        cold();
    } else {
        divan::main();
    }
}

const PASS: &str = "benchmark passphrase, not a secret";

/// The vault's own code path: a fresh block buffer per derivation.
#[divan::bench(sample_count = 7, sample_size = 1)]
fn derive_key_default(bencher: Bencher) {
    let pass = SecretString::new(PASS.into());
    let salt = mcp_key_vault::rng::bytes(mcp_key_vault::SALT_LEN);
    bencher.bench_local(|| derive_key(&pass, &salt, &KdfParams::DEFAULT).expect("derives"));
}

/// The `argon2` crate with a block buffer reused across derivations.
#[divan::bench(sample_count = 7, sample_size = 1)]
fn argon2_reused_buffer(bencher: Bencher) {
    let kdf = KdfParams::DEFAULT;
    let salt = mcp_key_vault::rng::bytes(mcp_key_vault::SALT_LEN);
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .expect("valid Argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut blocks = vec![Block::default(); params.block_count()];
    let mut out = [0u8; 32];
    bencher.bench_local(|| {
        argon
            .hash_password_into_with_memory(PASS.as_bytes(), &salt, &mut out, &mut blocks[..])
            .expect("derivation succeeds");
        black_box(out)
    });
}

/// CPU time consumed by the calling thread so far: unlike wall time, it does not grow while
/// other processes hold the CPU.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives on our stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One derivation in this fresh process, with `--memory-kib`, `--iterations` and
/// `--parallelism` (default: the vault's defaults).
fn cold() {
    let kdf = KdfParams {
        memory_kib: common::arg("--memory-kib", KdfParams::DEFAULT.memory_kib),
        iterations: common::arg("--iterations", KdfParams::DEFAULT.iterations),
        parallelism: common::arg("--parallelism", KdfParams::DEFAULT.parallelism),
    };
    kdf.check_bounds()
        .expect("KDF parameters within the vault's bounds");
    let pass = SecretString::new(PASS.into());
    let salt = mcp_key_vault::rng::bytes(mcp_key_vault::SALT_LEN);
    let (c, t) = (thread_cpu(), Instant::now());
    black_box(derive_key(&pass, &salt, &kdf).expect("derivation succeeds"));
    let (wall, cpu) = (t.elapsed(), thread_cpu() - c);
    println!("median_ms {:.2}", wall.as_secs_f64() * 1e3);
    println!("median_cpu_ms {:.2}", cpu.as_secs_f64() * 1e3);
}
