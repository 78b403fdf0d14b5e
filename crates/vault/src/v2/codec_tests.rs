//! Tests of `codec`.

use super::*;
use crate::secret::SecretString;
use crate::types::KeyHash;
use crate::vault::NewKey;

fn sample() -> Payload {
    let mut v = crate::vault::test_vault();
    let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
    for i in 0..3 {
        v.create_key(
            NewKey {
                name: format!("k{i} ✓"),
                description: "d".into(),
                expires_at: (i != 1).then(|| now + chrono::Duration::days(90)),
                permissions: vec![
                    "info".parse().unwrap(),
                    format!("p{}", i % 2).parse().unwrap(),
                ],
            },
            now,
        );
    }
    v.revoke(1, now);
    let p = v.payload_mut_unchecked();
    p.keys[1].revoked_at = Some(DateTime::from_timestamp(-5, 123).unwrap());
    p.keys[2].id = "legacy-id".into();
    p.keys[2].secret = SecretString::new("a".repeat(64));
    p.keys[2]
        .metadata
        .insert("x".into(), serde_json::json!([1.5, {"b": null}]));
    p.keys[0].rotated_to = Some("legacy-id".into());
    let id0 = p.keys[0].id.clone();
    p.keys[2].rotated_from = Some(id0);
    p.revision = 42;
    p.published.push(Published {
        path: "/tmp/v.json".into(),
        names: true,
        then: Some("true".into()),
    });
    std::mem::take(p)
}

fn json(c: &Payload) -> Vec<u8> {
    c.to_json().to_vec()
}

/// The same change made to records kept as read and to records all in memory encodes
/// to the same bytes: unchanged records are copied, and re-encoded with new indexes
/// when the dictionary's order moved.
#[test]
fn records_kept_as_read_encode_like_records_in_memory() {
    let b = encode(&sample());
    type Change = (&'static str, fn(&mut Keys));
    let changes: [Change; 6] = [
        ("nothing", |_| {}),
        ("revoke the second", |k| {
            k[1].revoked_at = Some(DateTime::from_timestamp(1_780_000_100, 0).unwrap());
        }),
        ("delete the first (the dictionary reorders)", |k| {
            k.remove(0);
        }),
        ("grant a new permission to the last", |k| {
            k[2].permissions.push("zz".parse().unwrap());
        }),
        (
            "grant a new permission to the first (the second's indexes move, the third's do not)",
            |k| {
                k[0].permissions.push("zz".parse().unwrap());
            },
        ),
        ("deny p0 to the first (the dictionary reorders)", |k| {
            k[0].permissions.retain(|p| p.as_str() != "p0");
        }),
    ];
    for (what, change) in changes {
        let mut lazy = decode(&b, Events::Lazy).unwrap();
        assert_eq!(lazy.keys.decoded_count(), 0, "decoding decodes no record");
        change(&mut lazy.keys);
        let mut in_memory = decode(&b, Events::All).unwrap();
        let mut fresh = Keys::default();
        fresh.append(&mut in_memory.keys);
        in_memory.keys = fresh;
        change(&mut in_memory.keys);
        let (x, y) = (encode(&lazy), encode(&in_memory));
        assert_eq!(&x[..], &y[..], "{what}");
        let again = decode(&x, Events::All).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(json(&again), json(&in_memory), "{what}");
    }
    // Revoking one key decodes that key only.
    let mut lazy = decode(&b, Events::Lazy).unwrap();
    lazy.keys[1].revoked_at = None;
    assert_eq!(lazy.keys.decoded_count(), 1);
    assert_eq!(lazy.keys.id(2), "legacy-id");
    assert!(lazy.keys.contains_id("legacy-id"));
    let hashes: Vec<KeyHash> = (0..3).map(|i| lazy.keys.hash(i)).collect();
    assert_eq!(
        lazy.keys.decoded_count(),
        1,
        "ids and hashes need no decoding"
    );
    let all = decode(&b, Events::All).unwrap();
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(h.0, all.keys[i].hash.0, "hash of key {i}");
    }
}

/// The range check without chrono agrees with chrono at and beyond both ends.
#[test]
fn checked_times_are_the_times_that_decode() {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    for secs in [min - 1, min, min + 1, -1, 0, 1, max - 1, max, max + 1] {
        for nanos in [0u32, 1, 999_999_999] {
            let mut b = Vec::new();
            let zz = ((secs << 1) ^ (secs >> 63)) as u64;
            let mut c = Buf(Zeroizing::new(Vec::with_capacity(32)));
            c.varint(zz << 1 | u64::from(nanos != 0));
            if nanos != 0 {
                c.varint(u64::from(nanos));
            }
            b.extend_from_slice(&c.0);
            let checked = Reader { b: &b }.check_time().is_ok();
            let decoded = Reader { b: &b }.time().is_ok();
            assert_eq!(checked, decoded, "{secs}.{nanos:09}");
        }
    }
}

#[test]
fn round_trip_is_exact_and_unique() {
    let c = sample();
    let b = encode(&c);
    let d = decode(&b, Events::All).unwrap();
    assert_eq!(json(&d), json(&c));
    assert_eq!(d.revision, 42);
    assert_eq!(d.published, c.published);
    assert_eq!(&encode(&d)[..], &b[..], "one encoding per payload");
    let lazy = decode(&b, Events::Lazy).unwrap();
    assert_eq!(lazy.keys.len(), 3);
    assert_eq!(lazy.events.len(), c.events.len());
    assert_eq!(
        &encode(&lazy)[..],
        &b[..],
        "a history kept encoded goes back as it came"
    );
    assert_eq!(
        json(&lazy),
        json(&c),
        "and decodes to the same events when asked"
    );
    assert_eq!(
        b.capacity() - b.len(),
        16,
        "room for the tag, sized exactly"
    );
}

#[test]
fn compact_per_key() {
    let c = sample();
    let b = encode(&c);
    // Three records with their events: far below format 1's ~500 bytes per key. A key of
    // format 2 (`mkm_…`) is kept as its 71 characters of text (a format-1 key as 32 raw
    // bytes), hence 250 rather than 200 a record.
    assert!(b.len() < 3 * 250, "{} bytes", b.len());
}

/// A leap second (from an imported store or a format-1 record) is saved as the last
/// nanosecond before it, so the vault still opens.
#[test]
fn a_leap_second_is_saved_as_the_nanosecond_before() {
    let mut p = sample();
    let leap = crate::records::parse_time("2016-12-31T23:59:60Z").unwrap();
    assert!(
        leap.timestamp_subsec_nanos() >= 1_000_000_000,
        "chrono's leap second"
    );
    p.keys[0].expires_at = Some(leap);
    p.keys[1].created_at = leap;
    let back = decode(&encode(&p), Events::All).unwrap();
    let before = crate::records::parse_time("2016-12-31T23:59:59.999999999Z").unwrap();
    assert_eq!(back.keys[0].expires_at, Some(before));
    assert_eq!(back.keys[1].created_at, before);
}

/// Two records with one id are refused, whichever kind of id, wherever they are.
#[test]
fn a_repeated_id_is_refused() {
    assert!(decode(&encode(&sample()), Events::Lazy).is_ok());
    for (what, at, from) in [
        ("a modern id, first and last", 2, 0),
        ("a modern id, neighbours", 1, 0),
        ("an imported id", 0, 2),
    ] {
        let mut p = sample();
        let id = p.keys.id(from).to_owned();
        p.keys[at].id = id.as_str().into();
        let e = match decode(&encode(&p), Events::Lazy) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{what}: accepted"),
        };
        assert!(e.contains(&format!("two keys with id {id}")), "{what}: {e}");
    }
}

#[test]
fn every_truncation_and_trailing_byte_is_refused() {
    let signed = sample();
    assert!(signed.signing_key.is_some());
    let b = encode(&signed);
    // The signing key's seed is the optional last part: cut off whole, what is left is the
    // payload of a vault written before signing (the encryption around a payload is what
    // stops anyone from cutting it); any other prefix is refused.
    let unsigned_len = b.len() - 33;
    for n in 0..b.len() {
        let r = decode(&b[..n], Events::All);
        if n == unsigned_len {
            assert!(r.expect("the unsigned payload").signing_key.is_none());
            continue;
        }
        assert!(matches!(r, Err(OpenError::Corrupt { .. })), "prefix of {n}");
    }
    let mut other_tag = b.to_vec();
    other_tag[unsigned_len] = 2;
    assert!(decode(&other_tag, Events::All).is_err());
    let mut longer = b.to_vec();
    longer.push(0);
    assert!(decode(&longer, Events::All).is_err());
}

#[test]
fn counts_beyond_the_input_are_refused_before_allocating() {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&[0; 40]);
    b.push(0); // no permissions
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // 4 billion keys
    let e = decode(&b, Events::All).unwrap_err().to_string();
    assert!(e.contains("count exceeds"), "{e}");
}

#[test]
fn non_minimal_varints_are_refused() {
    let mut r = Reader { b: &[0x80, 0x00] };
    assert!(r.varint().is_err());
    let mut r = Reader {
        b: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    };
    assert_eq!(r.varint().unwrap(), u64::MAX);
    let mut r = Reader {
        b: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
    };
    assert!(r.varint().is_err());
}

#[test]
fn times_round_trip_at_the_extremes() {
    for t in [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::from_timestamp(0, 0).unwrap(),
        DateTime::from_timestamp(-1, 999_999_999).unwrap(),
    ] {
        let mut b = Buf(Zeroizing::new(Vec::with_capacity(32)));
        b.time(&t);
        let mut r = Reader { b: &b.0 };
        assert_eq!(r.time().unwrap(), t);
        assert!(r.b.is_empty());
    }
}

/// Rate limits travel in their own last section: in id order, for keys that exist, within
/// bounds, and a payload without any ends where it did before limits existed.
#[test]
fn rate_limits_round_trip_and_bad_ones_are_refused() {
    let mut p = sample();
    let without = encode(&p);
    let (id0, id2) = (p.keys.id(0).to_owned(), p.keys.id(2).to_owned());
    p.limits.insert(id0.clone(), "100/min".parse().unwrap());
    p.limits.insert(id2.clone(), "5/30s".parse().unwrap());
    let b = encode(&p);
    assert_eq!(
        &b[..without.len()],
        &without[..],
        "the section only appends"
    );
    let d = decode(&b, Events::Lazy).unwrap();
    assert_eq!(d.limits, p.limits);
    assert_eq!(&encode(&d)[..], &b[..], "one encoding");
    for n in without.len() + 1..b.len() {
        assert!(decode(&b[..n], Events::All).is_err(), "a cut at {n}");
    }
    let mut trailing = b.to_vec();
    trailing.push(0);
    assert!(decode(&trailing, Events::All).is_err());

    let refused = |p: Payload, why: &str| {
        let e = decode(&encode(&p), Events::All)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains(why)),
            "{why}: {e:?}"
        );
    };
    let mut orphan = decode(&without, Events::All).unwrap();
    orphan
        .limits
        .insert("feedfacefeedface".into(), "1/sec".parse().unwrap());
    refused(orphan, "which no key has");

    // Out of order and out of bounds: written by hand, as the writer never would.
    let mut section = vec![LIMITS, 2];
    let mut ids = [id0.as_str(), id2.as_str()];
    ids.sort_unstable();
    for id in ids.iter().rev() {
        section.extend_from_slice(&id_bytes(id));
        section.extend_from_slice(&[1, 1]);
    }
    let mut unordered = without.to_vec();
    unordered.extend_from_slice(&section);
    let e = decode(&unordered, Events::All).err().unwrap().to_string();
    assert!(e.contains("increasing order"), "{e}");
    let mut zero = without.to_vec();
    zero.extend_from_slice(&[LIMITS, 1]);
    zero.extend_from_slice(&id_bytes(&id0));
    zero.extend_from_slice(&[0, 60]);
    let e = decode(&zero, Events::All).err().unwrap().to_string();
    assert!(e.contains("out of bounds"), "{e}");
    let mut empty = without.to_vec();
    empty.extend_from_slice(&[LIMITS, 0]);
    assert!(decode(&empty, Events::All).is_err(), "an empty section");
}

fn id_bytes(id: &str) -> Vec<u8> {
    let mut b = Buf(Zeroizing::new(Vec::with_capacity(80)));
    b.id(id);
    b.0.to_vec()
}
