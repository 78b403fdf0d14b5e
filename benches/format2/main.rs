//! Format 1 against format 2, through the library, for 10 to 100,000 keys (one history
//! event per key, as `create` leaves them; the largest vault's history is padded to
//! `--events N`): the non-KDF work of a read (header parse, unwrap of the data key,
//! decrypt, decode) and of a write (encode, encrypt, header), and the unlock of a format-2
//! vault through an age X25519 slot against a passphrase slot at the default KDF.
//!
//! ```text
//! cargo bench --bench format2 -- [--sizes 10,10000,100000] [--events 100000]
//! ```

#[path = "../common/mod.rs"]
mod common;

use std::hint::black_box;

use chrono::Utc;
use mcp_key_vault::crypto::{self, derive_key};
use mcp_key_vault::v2::{self, codec, Events, Header, Identities, Unlock};
use mcp_key_vault::{Envelope, Event, EventAction, Payload};
use mcp_key_vault::{KdfParams, SecretString, Vault};

/// A deep copy of a payload (it is deliberately not `Clone`: it holds secrets).
fn copy(p: &Payload) -> Payload {
    codec::decode(&codec::encode(p), Events::All).expect("a payload we encoded decodes")
}

/// Format 2 phase by phase, at one size.
fn phases(pass: &SecretString, now: chrono::DateTime<Utc>, n: usize) {
    let (built, _) = common::build_vault(n, pass, common::CHEAP_KDF, now);
    let id = age::x25519::Identity::generate();
    let mut vv = Vault::create_with_recipient(&id.to_public().to_string(), "").unwrap();
    *vv.payload_mut_unchecked() = copy(built.payload());
    let bytes = vv.to_bytes();
    let key = vv.data_key_for_tests().unwrap();
    let runs = 7;
    let cpu = |s: &common::Samples| common::median_ms(&s.cpu);
    let h = Header::parse(&bytes).unwrap();
    let t_parse = common::sample(runs, || {
        black_box(Header::parse(black_box(&bytes)).unwrap());
    });
    let ad = h.ad();
    let t_open = common::sample(runs, || {
        black_box(crypto::open(&key, &h.nonce, &ad, &h.ciphertext).unwrap());
    });
    let plain = crypto::open(&key, &h.nonce, &ad, &h.ciphertext).unwrap();
    let t_decode_all = common::sample(runs, || {
        black_box(codec::decode(black_box(&plain), Events::All).unwrap());
    });
    let t_decode = common::sample(runs, || {
        black_box(codec::decode(black_box(&plain), Events::Lazy).unwrap());
    });
    let t_drop = common::sample(runs, || {
        let p = codec::decode(black_box(&plain), Events::Lazy).unwrap();
        drop(black_box(p));
    });
    let t_encode = common::sample(runs, || {
        black_box(codec::encode(vv.payload()));
    });
    // What a command saves: the payload as read, one record changed (as `revoke` does).
    let mut as_read = codec::decode(&plain, Events::Lazy).unwrap();
    as_read.keys[n / 2].revoked_at = Some(now);
    let t_encode_as_read = common::sample(runs, || {
        black_box(codec::encode(black_box(&as_read)));
    });
    let t_seal = common::sample(runs, || {
        black_box(crypto::seal(&key, &[1; 24], &ad, black_box(&plain)));
    });
    let t_header = common::sample(runs, || {
        black_box(h.to_bytes());
    });
    println!("| format 2, {n} keys: phase | CPU ms |");
    println!("|---|---:|");
    for (what, s) in [
        ("header parse (JSON + base64 of the ciphertext)", &t_parse),
        ("decrypt", &t_open),
        ("decode the payload, history decoded too", &t_decode_all),
        (
            "decode the payload, history checked and kept encoded (what commands do)",
            &t_decode,
        ),
        (
            "decode + drop (zeroize) the payload, as commands do",
            &t_drop,
        ),
        ("encode the payload, every record from memory", &t_encode),
        (
            "encode the payload as read, one record changed (what commands do)",
            &t_encode_as_read,
        ),
        ("encrypt", &t_seal),
        ("header serialize (JSON + base64)", &t_header),
    ] {
        println!("| {what} | {:.2} |", cpu(s));
    }
}

fn main() {
    let pass = SecretString::new("benchmark passphrase, not a secret".into());
    // Whole seconds, as every time the CLI writes (records::now).
    let now = mcp_key_vault::records::now();
    let extra_events: usize = common::arg("--events", 100_000);
    let sizes = common::sizes(&[10, 10_000, 100_000]);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    println!("| keys | events | v1 MB | v2 MB | v1 read | v2 read | v2 read, history decoded too | v1 write | v2 write | v1 read+write | v2 read+write |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let runs = (200_000 / n).clamp(5, 51);
        let (built, _) = common::build_vault(n, &pass, common::CHEAP_KDF, now);
        let mut payload = copy(built.payload());
        if n == largest {
            // Pad the history on top of one `create` per key.
            let e = payload.events.all()[0].clone();
            for i in 0..extra_events.saturating_sub(payload.events.len()) {
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
        let nevents = payload.events.len();
        let mut v1 = Vault::create_format1(&pass, common::CHEAP_KDF).unwrap();
        *v1.payload_mut_unchecked() = copy(&payload);
        let b1 = v1.to_bytes();
        let env = Envelope::parse(&b1).unwrap();
        let k1 = derive_key(&pass, &env.salt, &env.kdf).unwrap();
        let id = age::x25519::Identity::generate();
        let ids = Identities::new(vec![v2::AgeIdentity::X25519(id.clone())]);
        let mut vv = Vault::create_with_recipient(&id.to_public().to_string(), "").unwrap();
        *vv.payload_mut_unchecked() = payload;
        let b2 = vv.to_bytes();
        let unlock = Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        };
        let cpu = |s: &common::Samples| common::median_ms(&s.cpu);
        let v1_read = common::sample(runs, || {
            let e = Envelope::parse(black_box(&b1)).unwrap();
            black_box(Vault::unlock(&e, k1.duplicate()).unwrap());
        });
        let v2_read = common::sample(runs, || {
            black_box(Vault::open_with(black_box(&b2), &unlock).unwrap());
        });
        let key2 = vv.data_key_for_tests().unwrap();
        let v2_skip = common::sample(runs, || {
            let h = Header::parse(black_box(&b2)).unwrap();
            let plain = crypto::open(&key2, &h.nonce, &h.ad(), &h.ciphertext).unwrap();
            black_box(codec::decode(&plain, Events::All).unwrap());
        });
        let e1 = Envelope::parse(&b1).unwrap();
        let vault1 = Vault::unlock(&e1, k1.duplicate()).unwrap();
        let v1_write = common::sample(runs, || {
            black_box(vault1.to_bytes());
        });
        let v2_write = common::sample(runs, || {
            black_box(vv.to_bytes());
        });
        let v1_rw = common::sample(runs, || {
            let e = Envelope::parse(black_box(&b1)).unwrap();
            black_box(Vault::unlock(&e, k1.duplicate()).unwrap().to_bytes());
        });
        let v2_rw = common::sample(runs, || {
            black_box(
                Vault::open_with(black_box(&b2), &unlock)
                    .unwrap()
                    .to_bytes(),
            );
        });
        println!(
            "| {n} | {nevents} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            b1.len() as f64 / 1e6,
            b2.len() as f64 / 1e6,
            cpu(&v1_read),
            cpu(&v2_read),
            cpu(&v2_skip),
            cpu(&v1_write),
            cpu(&v2_write),
            cpu(&v1_rw),
            cpu(&v2_rw),
        );
    }
    println!();
    println!("Medians of CPU ms of the benchmark thread; no KDF in any column (the format-2 read includes one X25519 unwrap).");
    println!();
    phases(&pass, now, largest);
    println!();

    // Unlocking a 10-key vault: passphrase slot at the default KDF against an age X25519
    // identity (the header parse and the payload decrypt are in both).
    let (v, _) = common::build_vault(10, &pass, common::CHEAP_KDF, now);
    let id = age::x25519::Identity::generate();
    let ids = Identities::new(vec![v2::AgeIdentity::X25519(id.clone())]);
    let mut vv = Vault::create(&pass, KdfParams::DEFAULT).unwrap();
    *vv.payload_mut_unchecked() = copy(v.payload());
    vv.add_age_slot(&id.to_public().to_string(), "ci", now)
        .unwrap();
    let b = vv.to_bytes();
    let by_id = Unlock {
        identities: Some(&ids),
        ..Unlock::default()
    };
    let by_pass = Unlock {
        passphrase: Some(&pass),
        ..Unlock::default()
    };
    let t_id = common::sample(51, || {
        black_box(Vault::open_with(&b, &by_id).unwrap());
    });
    let t_pass = common::sample(7, || {
        black_box(Vault::open_with(&b, &by_pass).unwrap());
    });
    println!("| unlock of a 10-key format-2 vault | median wall ms | median CPU ms |");
    println!("|---|---:|---:|");
    println!(
        "| age X25519 identity | {:.3} | {:.3} |",
        common::median_ms(&t_id.wall),
        common::median_ms(&t_id.cpu)
    );
    println!(
        "| passphrase slot, default KDF (65536 KiB, 3 passes) | {:.1} | {:.1} |",
        common::median_ms(&t_pass.wall),
        common::median_ms(&t_pass.cpu)
    );
}
