//! Format 1 against format 2, through the library, for 10 to 100,000 keys (one history
//! event per key, as `create` leaves them; the 100,000-key vault's history is padded to
//! 100,000 events): the non-KDF work of a read (header parse, unwrap of the data key,
//! decrypt, decode) and of a write (encode, encrypt, header) in `scale`; format 2 phase by
//! phase at 100,000 keys in `phases`; and the unlock of a 10-key format-2 vault through an
//! age X25519 slot against a passphrase slot at the default KDF in `unlock`.
//!
//! ```text
//! cargo bench --bench format2
//! cargo bench --bench format2 -- scale     # one group
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use divan::{black_box, Bencher};
use mcp_key_vault::crypto::{self, derive_key};
use mcp_key_vault::v2::{self, codec, Events, Header, Identities, Unlock};
use mcp_key_vault::{Envelope, Event, EventAction, Payload};
use mcp_key_vault::{KdfParams, SecretKey, SecretString, Vault};

fn main() {
    divan::main();
}

/// Key counts of the vaults.
const SIZES: &[usize] = &[10, 10_000, 100_000];

/// The largest vault's history is padded to this many events.
const EVENTS: usize = 100_000;

const PASS: &str = "benchmark passphrase, not a secret";

/// A deep copy of a payload (it is deliberately not `Clone`: it holds secrets).
fn copy(p: &Payload) -> Payload {
    codec::decode(&codec::encode(p), Events::All).expect("a payload we encoded decodes")
}

/// The same payload as a format-1 and as a format-2 vault.
struct Fixture {
    /// Format 1: the file, its key, the vault unlocked.
    b1: Vec<u8>,
    k1: SecretKey,
    vault1: Vault,
    /// Format 2 with one age X25519 slot: the file, the identity, the vault, its data key.
    b2: Vec<u8>,
    ids: Identities,
    vault2: Vault,
    key2: SecretKey,
}

thread_local! {
    static CACHE: RefCell<HashMap<usize, &'static Fixture>> = RefCell::default();
}

/// The fixture for `n` keys, built once per process.
fn fixture(n: usize) -> &'static Fixture {
    CACHE.with(|c| {
        *c.borrow_mut()
            .entry(n)
            .or_insert_with(|| Box::leak(Box::new(build(n))))
    })
}

fn build(n: usize) -> Fixture {
    let pass = SecretString::new(PASS.into());
    // Whole seconds, as every time the CLI writes (records::now).
    let now = mcp_key_vault::records::now();
    let (built, _) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
    let mut payload = copy(built.payload());
    if n == *SIZES.last().expect("sizes") {
        // Pad the history on top of one `create` per key.
        let e = payload.events.all()[0].clone();
        for i in 0..EVENTS.saturating_sub(payload.events.len()) {
            payload.events.push(Event {
                action: if i % 2 == 0 {
                    EventAction::Use
                } else {
                    EventAction::Grant
                },
                detail: (i % 2 == 1).then(|| "info".to_string()),
                ..e.clone()
            });
        }
    }
    let mut v1 = Vault::create_format1(&pass, common::CHEAP_KDF).expect("in bounds");
    *v1.payload_mut_unchecked() = copy(&payload);
    let b1 = v1.to_bytes();
    let env = Envelope::parse(&b1).expect("parses");
    let k1 = derive_key(&pass, &env.salt, &env.kdf).expect("derives");
    let vault1 = Vault::unlock(&env, k1.duplicate()).expect("unlocks");
    let id = age::x25519::Identity::generate();
    let mut vault2 =
        Vault::create_with_recipient(&id.to_public().to_string(), "").expect("a valid recipient");
    *vault2.payload_mut_unchecked() = payload;
    let b2 = vault2.to_bytes();
    let key2 = vault2.data_key_for_tests().expect("format 2");
    let ids = Identities::new(vec![v2::AgeIdentity::X25519(id)]);
    Fixture {
        b1,
        k1,
        vault1,
        b2,
        ids,
        vault2,
        key2,
    }
}

/// Read and write at each size, format 1 against format 2; no KDF anywhere (the format-2
/// read includes one X25519 unwrap).
mod scale {
    use super::*;

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v1_read(bencher: Bencher, n: usize) {
        let f = fixture(n);
        bencher.bench_local(|| {
            let e = Envelope::parse(black_box(&f.b1)).expect("parses");
            Vault::unlock(&e, f.k1.duplicate()).expect("unlocks")
        });
    }

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v2_read(bencher: Bencher, n: usize) {
        let f = fixture(n);
        let unlock = Unlock {
            identities: Some(&f.ids),
            ..Unlock::default()
        };
        bencher.bench_local(|| Vault::open_with(black_box(&f.b2), &unlock).expect("opens"));
    }

    /// Format 2 read with the history decoded too (commands keep it encoded).
    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v2_read_history_decoded(bencher: Bencher, n: usize) {
        let f = fixture(n);
        bencher.bench_local(|| {
            let h = Header::parse(black_box(&f.b2)).expect("parses");
            let plain = crypto::open(&f.key2, &h.nonce, &h.ad(), &h.ciphertext).expect("opens");
            codec::decode(&plain, Events::All).expect("decodes")
        });
    }

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v1_write(bencher: Bencher, n: usize) {
        let f = fixture(n);
        bencher.bench_local(|| f.vault1.to_bytes());
    }

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v2_write(bencher: Bencher, n: usize) {
        let f = fixture(n);
        bencher.bench_local(|| f.vault2.to_bytes());
    }

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v1_read_write(bencher: Bencher, n: usize) {
        let f = fixture(n);
        bencher.bench_local(|| {
            let e = Envelope::parse(black_box(&f.b1)).expect("parses");
            Vault::unlock(&e, f.k1.duplicate())
                .expect("unlocks")
                .to_bytes()
        });
    }

    #[divan::bench(args = SIZES, sample_count = 10)]
    fn v2_read_write(bencher: Bencher, n: usize) {
        let f = fixture(n);
        let unlock = Unlock {
            identities: Some(&f.ids),
            ..Unlock::default()
        };
        bencher.bench_local(|| {
            Vault::open_with(black_box(&f.b2), &unlock)
                .expect("opens")
                .to_bytes()
        });
    }
}

/// Format 2 phase by phase at 100,000 keys and 100,000 events.
mod phases {
    use super::*;

    const N: usize = 100_000;

    /// Header parse (JSON + base64 of the ciphertext).
    #[divan::bench(sample_count = 10)]
    fn header_parse(bencher: Bencher) {
        let f = fixture(N);
        bencher.bench_local(|| Header::parse(black_box(&f.b2)).expect("parses"));
    }

    #[divan::bench(sample_count = 10)]
    fn decrypt(bencher: Bencher) {
        let f = fixture(N);
        let h = Header::parse(&f.b2).expect("parses");
        let ad = h.ad();
        bencher.bench_local(|| crypto::open(&f.key2, &h.nonce, &ad, &h.ciphertext).expect("opens"));
    }

    /// Decode the payload, history decoded too.
    #[divan::bench(sample_count = 10)]
    fn decode_all(bencher: Bencher) {
        let plain = plain();
        bencher.bench_local(|| codec::decode(black_box(&plain), Events::All).expect("decodes"));
    }

    /// Decode the payload, history checked and kept encoded (what commands do).
    #[divan::bench(sample_count = 10)]
    fn decode_lazy(bencher: Bencher) {
        let plain = plain();
        bencher.bench_local(|| codec::decode(black_box(&plain), Events::Lazy).expect("decodes"));
    }

    /// Decode + drop (zeroize) the payload, as commands do.
    #[divan::bench(sample_count = 10)]
    fn decode_lazy_and_drop(bencher: Bencher) {
        let plain = plain();
        bencher.bench_local(|| {
            let p = codec::decode(black_box(&plain), Events::Lazy).expect("decodes");
            drop(black_box(p));
        });
    }

    /// Encode the payload, every record from memory.
    #[divan::bench(sample_count = 10)]
    fn encode(bencher: Bencher) {
        let f = fixture(N);
        bencher.bench_local(|| codec::encode(f.vault2.payload()));
    }

    /// Encode the payload as read, one record changed (as `revoke` does).
    #[divan::bench(sample_count = 10)]
    fn encode_as_read(bencher: Bencher) {
        let plain = plain();
        let mut as_read = codec::decode(&plain, Events::Lazy).expect("decodes");
        as_read.keys[N / 2].revoked_at = Some(mcp_key_vault::records::now());
        bencher.bench_local(|| codec::encode(black_box(&as_read)));
    }

    #[divan::bench(sample_count = 10)]
    fn encrypt(bencher: Bencher) {
        let f = fixture(N);
        let plain = plain();
        let ad = Header::parse(&f.b2).expect("parses").ad();
        bencher.bench_local(|| crypto::seal(&f.key2, &[1; 24], &ad, black_box(&plain)));
    }

    /// Header serialize (JSON + base64).
    #[divan::bench(sample_count = 10)]
    fn header_serialize(bencher: Bencher) {
        let f = fixture(N);
        let h = Header::parse(&f.b2).expect("parses");
        bencher.bench_local(|| h.to_bytes());
    }

    /// The decrypted payload of the 100,000-key vault.
    fn plain() -> Vec<u8> {
        let f = fixture(N);
        let h = Header::parse(&f.b2).expect("parses");
        crypto::open(&f.key2, &h.nonce, &h.ad(), &h.ciphertext)
            .expect("opens")
            .to_vec()
    }
}

/// Unlocking a 10-key format-2 vault with a passphrase slot at the default KDF and an age
/// X25519 slot (the header parse and the payload decrypt are in both).
mod unlock {
    use super::*;

    /// The vault file and the identity of its age slot.
    fn two_slot_vault() -> (Vec<u8>, Identities) {
        let pass = SecretString::new(PASS.into());
        let now = mcp_key_vault::records::now();
        let (v, _) = common::build_vault(10, &pass, common::CHEAP_KDF, now);
        let id = age::x25519::Identity::generate();
        let mut vv = Vault::create(&pass, KdfParams::DEFAULT).expect("in bounds");
        *vv.payload_mut_unchecked() = copy(v.payload());
        vv.add_age_slot(&id.to_public().to_string(), "ci", now)
            .expect("a valid recipient");
        (
            vv.to_bytes(),
            Identities::new(vec![v2::AgeIdentity::X25519(id)]),
        )
    }

    #[divan::bench(sample_count = 50)]
    fn age_x25519_identity(bencher: Bencher) {
        let (b, ids) = two_slot_vault();
        let by_id = Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        };
        bencher.bench_local(|| Vault::open_with(&b, &by_id).expect("opens"));
    }

    #[divan::bench(sample_count = 7, sample_size = 1)]
    fn passphrase_slot_default_kdf(bencher: Bencher) {
        let (b, _) = two_slot_vault();
        let pass = SecretString::new(PASS.into());
        let by_pass = Unlock {
            passphrase: Some(&pass),
            ..Unlock::default()
        };
        bencher.bench_local(|| Vault::open_with(&b, &by_pass).expect("opens"));
    }
}
