//! Tamper sweep: every single-bit flip of a small vault file is rejected
//! by `Vault::open`, and none panics.
//!
//! Why no flip can be harmless: the file is pretty JSON whose only insignificant bytes are
//! spaces (0x20) and newlines (0x0a), and no single-bit flip of either is JSON whitespace
//! (0x09, 0x0a, 0x0d, 0x20 differ from them in two bits or more); flips in field names or
//! values change the header (unknown field, unknown version, out-of-bounds or different
//! KDF settings, which are bound as associated data) or a base64 field, whose decoder is
//! strict about padding bits, so the nonce, salt or ciphertext changes and authentication
//! fails. The sweep checks that reasoning rather than trusting it.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use mcp_key_vault::NewKey;
use mcp_key_vault::{KdfParams, SecretString, Vault};

/// The cheapest KDF the reader accepts; the sweep derives a key per flip.
const CHEAP: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn every_single_bit_flip_of_a_vault_is_rejected_without_panic() {
    let pass = SecretString::new(crate::common::PASS.into());
    let mut v = Vault::create(&pass, CHEAP).expect("cheap KDF accepted");
    // Fixed times, so the file (and the number of flips quoted in SECURITY.md) has the
    // same length on every run.
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    for (name, perms) in [("prod", vec!["info".to_string()]), ("ci", vec![])] {
        v.create_key(
            NewKey {
                name: name.into(),
                description: format!("{name} key"),
                expires_at: Some(now + chrono::Duration::days(30)),
                permissions: perms.iter().map(|p| p.parse().unwrap()).collect(),
            },
            now,
        );
    }
    let bytes = v.to_bytes();
    let ids = |v: &Vault| -> Vec<(String, String)> {
        v.keys()
            .iter()
            .map(|k| (k.id.to_string(), k.secret.expose().to_string()))
            .collect()
    };
    let original = ids(&Vault::open(&bytes, &pass).expect("the unmodified file opens"));
    assert_eq!(original.len(), 2);

    let start = Instant::now();
    let flips = bytes.len() * 8;
    let mut by_category: BTreeMap<String, usize> = BTreeMap::new();
    let mut panics = Vec::new();
    let mut accepted_same = Vec::new();
    let mut accepted_different = Vec::new();
    // The panic hook is left alone (it is process-wide and other tests run in parallel):
    // a panic prints its message and is counted here.
    for bit in 0..flips {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        match catch_unwind(AssertUnwindSafe(|| Vault::open(&b, &pass).map(|v| ids(&v)))) {
            Err(_) => panics.push(bit),
            Ok(Err(e)) => {
                *by_category
                    .entry(format!("{:?}", e.category()))
                    .or_default() += 1
            }
            Ok(Ok(keys)) if keys == original => accepted_same.push(bit),
            Ok(Ok(_)) => accepted_different.push(bit),
        }
    }
    let rejected: usize = by_category.values().sum();
    println!(
        "tamper: {flips} single-bit flips of a {}-byte vault in {:.1?}: {rejected} rejected \
         (by category {by_category:?}: Passphrase is exit 3, Corrupt exit 4), {} panics, {} accepted with the same keys, {} \
         accepted with different keys",
        bytes.len(),
        start.elapsed(),
        panics.len(),
        accepted_same.len(),
        accepted_different.len()
    );
    let at = |bits: &[usize]| -> Vec<String> {
        bits.iter()
            .take(5)
            .map(|b| format!("byte {} bit {} ({:?})", b / 8, b % 8, bytes[b / 8] as char))
            .collect()
    };
    assert!(panics.is_empty(), "panics at {:?}", at(&panics));
    assert!(
        accepted_different.is_empty(),
        "a different key set at {:?}",
        at(&accepted_different)
    );
    assert!(
        accepted_same.is_empty(),
        "a modified file accepted at {:?}",
        at(&accepted_same)
    );
    assert_eq!(rejected, flips);
    // Only the documented codes: 3 (authentication failed) and 4 (corrupt header).
    assert!(
        by_category
            .keys()
            .all(|c| c == "Passphrase" || c == "Corrupt"),
        "{by_category:?}"
    );
}
