//! Unit tests of format 2: slots, unlock order and bounds, rotation, header tampering.

use super::*;
use crate::vault::NewKey;

const WEAK: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn pass(s: &str) -> SecretString {
    SecretString::new(s.into())
}

fn with_keys(n: usize) -> Contents {
    let mut v = crate::Vault::create(&pass("x"), WEAK).unwrap();
    for i in 0..n {
        v.add_key(
            NewKey {
                name: format!("k{i}"),
                description: String::new(),
                expires_at: None,
                permissions: vec!["info".into()],
            },
            now(),
        );
    }
    Contents {
        payload: std::mem::take(&mut v.payload),
        revision: 7,
        published: vec![],
    }
}

fn by_pass<'a>(p: &'a SecretString) -> Unlock<'a> {
    Unlock {
        passphrase: Some(p),
        ..Unlock::default()
    }
}

#[test]
fn passphrase_slot_round_trip() {
    let p = pass("alpha");
    let v = VaultV2::create_with_passphrase(with_keys(2), &p, WEAK, "admin", now()).unwrap();
    let bytes = v.to_bytes();
    assert_ne!(bytes, v.to_bytes(), "fresh nonce per save");
    let w = VaultV2::open(&bytes, &by_pass(&p)).unwrap();
    assert_eq!(w.contents.payload.keys.len(), 2);
    assert_eq!(w.contents.revision, 7);
    assert_eq!(w.unlocked_by(), Some(v.slots()[0].id.as_str()));
    let e = VaultV2::open(&bytes, &by_pass(&pass("beta"))).unwrap_err();
    assert!(matches!(e, Error::Passphrase(_)), "{e:?}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("\"version\": 2") && text.contains("\"kind\": \"passphrase\""));
}

#[test]
fn age_slot_unlocks_without_any_kdf_and_identity_wins() {
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    let p = pass("alpha");
    let mut v = VaultV2::create_with_passphrase(with_keys(1), &p, WEAK, "", now()).unwrap();
    let age_id = v.add_age_slot(&r, "ci", now()).unwrap().id.clone();
    let bytes = v.to_bytes();
    let ids = Identities(vec![AgeIdentity::X25519(id)]);
    let both = Unlock {
        identities: Some(&ids),
        passphrase: Some(&p),
        slot: None,
    };
    let w = VaultV2::open(&bytes, &both).unwrap();
    assert_eq!(
        w.unlocked_by(),
        Some(age_id.as_str()),
        "identity tried first"
    );
    let w = VaultV2::open(&bytes, &by_pass(&p)).unwrap();
    assert_ne!(w.unlocked_by(), Some(age_id.as_str()));
    let other = Identities(vec![AgeIdentity::X25519(age::x25519::Identity::generate())]);
    let e = VaultV2::open(
        &bytes,
        &Unlock {
            identities: Some(&other),
            ..Unlock::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Passphrase(ref m) if m.contains("identity")),
        "{e:?}"
    );
}

#[test]
fn removing_a_slot_rotates_the_data_key() {
    let a = pass("alice");
    let b = pass("bob");
    let mut v = VaultV2::create_with_passphrase(with_keys(1), &a, WEAK, "alice", now()).unwrap();
    v.add_passphrase_slot(&b, WEAK, "bob", now()).unwrap();
    let saved = v.to_bytes();
    // Bob opens the vault and keeps its data key.
    let bobs = VaultV2::open(&saved, &by_pass(&b)).unwrap();
    let kept = bobs.data_key_for_tests();
    // Alice removes Bob, without typing anything, and saves.
    let mut v = VaultV2::open(&saved, &by_pass(&a)).unwrap();
    v.remove_slot("bob", now()).unwrap();
    let later = v.to_bytes();
    let h = Header::parse(&later).unwrap();
    assert!(matches!(
        VaultV2::with_data_key(h.clone(), kept, Events::All),
        Err(Error::Passphrase(_))
    ));
    assert!(matches!(
        VaultV2::open(&later, &by_pass(&b)),
        Err(Error::Passphrase(_))
    ));
    assert!(VaultV2::open(&later, &by_pass(&a)).is_ok());
    assert_eq!(h.slots.len(), 1);
    let w = VaultV2::open(&later, &by_pass(&a)).unwrap();
    let last = w.contents.payload.events.last().unwrap();
    assert_eq!(last.action, "slot-remove");
    assert!(last.detail.as_deref().unwrap().contains("bob"));
    // The last slot stays.
    let mut w = w;
    let only = w.slots()[0].id.clone();
    assert!(matches!(w.remove_slot(&only, now()), Err(Error::Failed(_))));
}

#[test]
fn passphrase_tries_are_bounded_and_slot_selects() {
    let mut v =
        VaultV2::create_with_passphrase(with_keys(0), &pass("p0"), WEAK, "s0", now()).unwrap();
    for i in 1..5 {
        v.add_passphrase_slot(&pass(&format!("p{i}")), WEAK, &format!("s{i}"), now())
            .unwrap();
    }
    let bytes = v.to_bytes();
    assert!(VaultV2::open(&bytes, &by_pass(&pass("p2"))).is_ok());
    let e = VaultV2::open(&bytes, &by_pass(&pass("p4"))).unwrap_err();
    assert!(
        matches!(e, Error::Passphrase(ref m) if m.contains("--slot") && m.contains("5 passphrase")),
        "{e:?}"
    );
    let p4 = pass("p4");
    let sel = Unlock {
        passphrase: Some(&p4),
        slot: Some("s4"),
        ..Unlock::default()
    };
    assert!(VaultV2::open(&bytes, &sel).is_ok());
    let unknown = Unlock {
        passphrase: Some(&p4),
        slot: Some("nope"),
        ..Unlock::default()
    };
    assert!(matches!(
        VaultV2::open(&bytes, &unknown),
        Err(Error::Usage(_))
    ));
}

#[test]
fn rekey_changes_one_passphrase_and_the_data_key() {
    let mut v =
        VaultV2::create_with_passphrase(with_keys(1), &pass("old"), WEAK, "me", now()).unwrap();
    let before = v.data_key_for_tests();
    v.rekey_slot("me", &pass("new"), WEAK, now()).unwrap();
    let bytes = v.to_bytes();
    assert!(VaultV2::open(&bytes, &by_pass(&pass("old"))).is_err());
    assert!(VaultV2::open(&bytes, &by_pass(&pass("new"))).is_ok());
    let h = Header::parse(&bytes).unwrap();
    assert!(VaultV2::with_data_key(h, before, Events::All).is_err());
}

#[test]
fn every_header_field_is_bound() {
    let id = age::x25519::Identity::generate();
    let p = pass("alpha");
    let mut v = VaultV2::create_with_passphrase(with_keys(1), &p, WEAK, "a", now()).unwrap();
    v.add_age_slot(&id.to_public().to_string(), "b", now())
        .unwrap();
    let key = v.data_key_for_tests();
    let h = Header::parse(&v.to_bytes()).unwrap();
    assert!(VaultV2::with_data_key(h.clone(), key.duplicate(), Events::All).is_ok());
    let mut variants: Vec<Header> = Vec::new();
    let mut t = h.clone();
    t.slots[1].label = "c".into();
    variants.push(t);
    let mut t = h.clone();
    t.slots[0].created_at = now() + chrono::Duration::seconds(1);
    variants.push(t);
    let mut t = h.clone();
    t.slots.swap(0, 1);
    variants.push(t);
    let mut t = h.clone();
    t.slots[1].wrapped_key.push(0);
    variants.push(t);
    let mut t = h.clone();
    t.slots.pop();
    variants.push(t);
    let mut t = h.clone();
    if let SlotKind::Passphrase { kdf, .. } = &mut t.slots[0].kind {
        kdf.iterations += 1;
    }
    variants.push(t);
    let mut t = h.clone();
    t.nonce[0] ^= 1;
    variants.push(t);
    for t in variants {
        assert_ne!(t.ad(), h.ad());
        assert!(matches!(
            VaultV2::with_data_key(t, key.duplicate(), Events::All),
            Err(Error::Passphrase(_))
        ));
    }
}

#[test]
fn hostile_headers_are_refused_before_any_work() {
    let p = pass("alpha");
    let mut v = VaultV2::create_with_passphrase(with_keys(0), &p, WEAK, "", now()).unwrap();
    for _ in 0..31 {
        let r = age::x25519::Identity::generate().to_public().to_string();
        v.add_age_slot(&r, "", now()).unwrap();
    }
    let r = age::x25519::Identity::generate().to_public().to_string();
    assert!(matches!(
        v.add_age_slot(&r, "", now()),
        Err(Error::Usage(_))
    ));
    let good = v.to_bytes();
    assert_eq!(Header::parse(&good).unwrap().slots.len(), 32);
    let mut json: serde_json::Value = serde_json::from_slice(&good).unwrap();
    // 33 slots.
    let mut extra = json["slots"][1].clone();
    extra["id"] = "ffffffff".into();
    extra["recipient"] = r.into();
    json["slots"].as_array_mut().unwrap().push(extra);
    let e = Header::parse(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt(ref m) if m.contains("more than 32")),
        "{e:?}"
    );
    let base: serde_json::Value = serde_json::from_slice(&good).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "repeated recipient",
            Box::new(|j| {
                j["slots"][2]["recipient"] = j["slots"][1]["recipient"].clone();
            }),
        ),
        (
            "huge label",
            Box::new(|j| j["slots"][1]["label"] = "x".repeat(100_000).into()),
        ),
        (
            "huge recipient",
            Box::new(|j| j["slots"][1]["recipient"] = "a".repeat(5000).into()),
        ),
        (
            "huge wrapped key",
            Box::new(|j| j["slots"][1]["wrapped_key"] = "QUFB".repeat(10_000).into()),
        ),
        (
            "huge kdf",
            Box::new(|j| j["slots"][0]["kdf"]["memory_kib"] = 4_000_000.into()),
        ),
        (
            "unknown field",
            Box::new(|j| j["slots"][0]["extra"] = 1.into()),
        ),
        (
            "unknown kind",
            Box::new(|j| j["slots"][1]["kind"] = "fido".into()),
        ),
        ("no slots", Box::new(|j| j["slots"] = serde_json::json!([]))),
        (
            "id not hex",
            Box::new(|j| j["slots"][0]["id"] = "XXXXXXXX".into()),
        ),
        (
            "age slot with kdf",
            Box::new(|j| {
                j["slots"][1]["kdf"] = j["slots"][0]["kdf"].clone();
            }),
        ),
        ("version 3", Box::new(|j| j["version"] = 3.into())),
        ("top-level extra", Box::new(|j| j["x"] = 1.into())),
    ];
    for (what, f) in cases {
        let mut j = base.clone();
        f(&mut j);
        let b = serde_json::to_vec(&j).unwrap();
        assert!(
            matches!(Header::parse(&b), Err(Error::Corrupt(_))),
            "{what}"
        );
        assert!(matches!(detect(&b), Err(Error::Corrupt(_))), "{what}");
    }
    let mut j = base.clone();
    j["version"] = 3.into();
    let e = detect(&serde_json::to_vec(&j).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("versions 1 and 2") && e.contains("upgrade"),
        "{e}"
    );
}

#[test]
fn detect_tells_both_formats_apart() {
    let v1 = crate::Vault::create(&pass("p"), WEAK).unwrap();
    assert!(matches!(detect(&v1.to_bytes()), Ok(Detected::V1(_))));
    let v2 = VaultV2::create_with_passphrase(with_keys(0), &pass("p"), WEAK, "", now()).unwrap();
    assert!(matches!(detect(&v2.to_bytes()), Ok(Detected::V2(_))));
    assert!(matches!(detect(b"{}"), Ok(Detected::Legacy)));
    assert!(matches!(detect(b"[1]"), Err(Error::Corrupt(_))));
    // What a format-1 reader says about a format-2 file: exit 4.
    assert!(matches!(
        crate::vault::Envelope::detect(&v2.to_bytes()),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn upgrade_keeps_everything_and_records_it() {
    let p = pass("p");
    let mut v1 = crate::Vault::create(&p, WEAK).unwrap();
    v1.add_key(
        NewKey {
            name: "a".into(),
            description: "b".into(),
            expires_at: None,
            permissions: vec!["info".into()],
        },
        now(),
    );
    let before = v1.payload.to_json().to_vec();
    let payload = std::mem::take(&mut v1.payload);
    let v = VaultV2::upgrade(payload, 3, &p, WEAK, now()).unwrap();
    let w = VaultV2::open(&v.to_bytes(), &by_pass(&p)).unwrap();
    let mut after: serde_json::Value =
        serde_json::from_slice(&w.contents.payload.to_json()).unwrap();
    let upgrade = after["events"].as_array_mut().unwrap().pop().unwrap();
    assert_eq!(upgrade["action"], "upgrade");
    assert_eq!(
        after,
        serde_json::from_slice::<serde_json::Value>(&before).unwrap()
    );
}

#[test]
fn identity_files_parse_and_never_echo() {
    let id = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret;
    let text = format!(
        "# created: test\n# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    );
    let ids = Identities::parse(&text).unwrap();
    assert_eq!(ids.0.len(), 1);
    let secretish = "AGE-SECRET-KEY-1NOTVALIDXYZ";
    let e = Identities::parse(&format!("{secretish}\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && !e.contains(secretish), "{e}");
    assert!(Identities::parse("# nothing\n").is_err());
}
