//! Unit tests of format 2 through [`Vault`]: slots, unlock order and bounds, rotation,
//! header tampering, upgrade.

use super::*;
use crate::error::Category;
use crate::types::{EventAction, Permission};
use crate::vault::{NewKey, Vault};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

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

fn with_keys(p: &SecretString, n: usize) -> Vault {
    let mut v = Vault::create(p, WEAK).unwrap();
    for i in 0..n {
        v.create_key(
            NewKey {
                name: format!("k{i}"),
                description: String::new(),
                expires_at: None,
                permissions: vec!["info".parse::<Permission>().unwrap()],
            },
            now(),
        );
    }
    v
}

fn key_of(v: &Vault) -> SecretKey {
    v.data_key_for_tests().expect("a format-2 vault")
}

#[test]
fn passphrase_slot_round_trip() {
    let p = pass("alpha");
    let v = with_keys(&p, 2);
    let bytes = v.to_bytes();
    assert_ne!(bytes, v.to_bytes(), "fresh nonce per save");
    let w = Vault::open(&bytes, &p).unwrap();
    assert_eq!(w.keys().len(), 2);
    assert_eq!(w.format_version(), 2);
    assert_eq!(w.unlocked_by(), Some(v.slots()[0].id.as_str()));
    let e = Vault::open(&bytes, &pass("beta")).unwrap_err();
    assert!(matches!(e, OpenError::WrongPassphrase), "{e:?}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("\"version\": 2") && text.contains("\"kind\": \"passphrase\""));
}

#[test]
fn age_slot_unlocks_without_any_kdf_and_identity_wins() {
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    let p = pass("alpha");
    let mut v = with_keys(&p, 1);
    let age_id = v.add_age_slot(&r, "ci", now()).unwrap().id;
    let bytes = v.to_bytes();
    let ids = Identities::new(vec![AgeIdentity::X25519(id)]);
    let both = Unlock {
        identities: Some(&ids),
        passphrase: Some(&p),
        slot: None,
    };
    let w = Vault::open_with(&bytes, &both).unwrap();
    assert_eq!(
        w.unlocked_by(),
        Some(age_id.as_str()),
        "identity tried first"
    );
    let w = Vault::open(&bytes, &p).unwrap();
    assert_ne!(w.unlocked_by(), Some(age_id.as_str()));
    let other = Identities::new(vec![AgeIdentity::X25519(age::x25519::Identity::generate())]);
    let e = Vault::open_with(
        &bytes,
        &Unlock {
            identities: Some(&other),
            ..Unlock::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, OpenError::Passphrase { reason: ref m } if m.contains("identity")),
        "{e:?}"
    );
}

#[test]
fn removing_a_slot_rotates_the_data_key() {
    let a = pass("alice");
    let b = pass("bob");
    let mut v = with_keys(&a, 1);
    v.add_passphrase_slot(&b, WEAK, "bob", now()).unwrap();
    let saved = v.to_bytes();
    // Bob opens the vault and keeps its data key.
    let bobs = Vault::open(&saved, &b).unwrap();
    let kept = key_of(&bobs);
    // Alice removes Bob, without typing anything, and saves.
    let mut v = Vault::open(&saved, &a).unwrap();
    v.remove_slot("bob", now()).unwrap();
    let later = v.to_bytes();
    let h = Header::parse(&later).unwrap();
    assert!(matches!(
        Vault::with_data_key(&h, kept, None),
        Err(OpenError::WrongPassphrase)
    ));
    assert!(matches!(
        Vault::open(&later, &b),
        Err(OpenError::WrongPassphrase)
    ));
    let w = Vault::open(&later, &a).unwrap();
    assert_eq!(h.slots.len(), 1);
    let last = w.events().last().unwrap();
    assert_eq!(last.action, EventAction::SlotRemove);
    assert!(last.detail.as_deref().unwrap().contains("bob"));
    // The last slot stays.
    let mut w = w;
    let only = w.slots()[0].id.clone();
    assert!(matches!(
        w.remove_slot(&only, now()),
        Err(ChangeError::Refused { .. })
    ));
}

#[test]
fn passphrase_tries_are_bounded_and_slot_selects() {
    let mut v = with_keys(&pass("p0"), 0);
    for i in 1..5 {
        v.add_passphrase_slot(&pass(&format!("p{i}")), WEAK, &format!("s{i}"), now())
            .unwrap();
    }
    let bytes = v.to_bytes();
    assert!(Vault::open(&bytes, &pass("p2")).is_ok());
    let e = Vault::open(&bytes, &pass("p4")).unwrap_err();
    assert!(
        matches!(e, OpenError::Passphrase { reason: ref m } if m.contains("--slot") && m.contains("5 passphrase")),
        "{e:?}"
    );
    let p4 = pass("p4");
    let sel = Unlock {
        passphrase: Some(&p4),
        slot: Some("s4"),
        ..Unlock::default()
    };
    assert!(Vault::open_with(&bytes, &sel).is_ok());
    let unknown = Unlock {
        passphrase: Some(&p4),
        slot: Some("nope"),
        ..Unlock::default()
    };
    assert!(matches!(
        Vault::open_with(&bytes, &unknown),
        Err(OpenError::Invalid { .. })
    ));
}

#[test]
fn rekey_changes_one_passphrase_and_the_data_key() {
    let mut v = with_keys(&pass("old"), 1);
    let before = key_of(&v);
    v.rekey(&pass("new"), WEAK).unwrap();
    let bytes = v.to_bytes();
    assert!(Vault::open(&bytes, &pass("old")).is_err());
    assert!(Vault::open(&bytes, &pass("new")).is_ok());
    let h = Header::parse(&bytes).unwrap();
    assert!(Vault::with_data_key(&h, before, None).is_err());
}

#[test]
fn every_header_field_is_bound() {
    let id = age::x25519::Identity::generate();
    let mut v = with_keys(&pass("alpha"), 1);
    v.add_age_slot(&id.to_public().to_string(), "b", now())
        .unwrap();
    let key = key_of(&v);
    let h = Header::parse(&v.to_bytes()).unwrap();
    assert!(Vault::with_data_key(&h, key.duplicate(), None).is_ok());
    let mut variants: Vec<Header> = Vec::new();
    let mut t = h.clone();
    t.slots[1].label = "c".into();
    variants.push(t);
    let mut t = h.clone();
    t.slots[0].created_at += chrono::Duration::seconds(1);
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
            Vault::with_data_key(&t, key.duplicate(), None),
            Err(OpenError::WrongPassphrase)
        ));
    }
}

#[test]
fn hostile_headers_are_refused_before_any_work() {
    let mut v = with_keys(&pass("alpha"), 0);
    for _ in 0..31 {
        let r = age::x25519::Identity::generate().to_public().to_string();
        v.add_age_slot(&r, "", now()).unwrap();
    }
    let r = age::x25519::Identity::generate().to_public().to_string();
    assert!(matches!(
        v.add_age_slot(&r, "", now()),
        Err(ChangeError::Invalid { .. })
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
        matches!(e, OpenError::Corrupt { reason: ref m } if m.contains("more than 32")),
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
            matches!(Header::parse(&b), Err(OpenError::Corrupt { .. })),
            "{what}"
        );
        assert!(
            matches!(detect(&b), Err(OpenError::Corrupt { .. })),
            "{what}"
        );
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
    let v1 = Vault::create_format1(&pass("p"), WEAK).unwrap();
    assert!(matches!(detect(&v1.to_bytes()), Ok(Detected::V1(_))));
    let v2 = Vault::create(&pass("p"), WEAK).unwrap();
    assert!(matches!(detect(&v2.to_bytes()), Ok(Detected::V2(_))));
    assert!(matches!(detect(b"{}"), Ok(Detected::Legacy)));
    assert!(matches!(detect(b"[1]"), Err(OpenError::Corrupt { .. })));
    // What a format-1 reader says about a format-2 file: exit 4.
    let e = crate::format::Envelope::detect(&v2.to_bytes()).unwrap_err();
    assert_eq!(e.category(), Category::Corrupt);
}

#[test]
fn upgrade_keeps_everything_needs_no_kdf_and_records_it() {
    let p = pass("p");
    let mut v1 = Vault::create_format1(&p, WEAK).unwrap();
    v1.create_key(
        NewKey {
            name: "a".into(),
            description: "b".into(),
            expires_at: None,
            permissions: vec!["info".parse().unwrap()],
        },
        now(),
    );
    let file1 = v1.to_bytes();
    let mut v = Vault::open(&file1, &p).unwrap();
    assert_eq!(v.format_version(), 1);
    let before = v.payload().to_json().to_vec();
    assert!(v.upgrade(now()).unwrap());
    assert!(v.take_upgrade_notice() && !v.take_upgrade_notice());
    assert!(!v.upgrade(now()).unwrap(), "only once");
    let w = Vault::open(&v.to_bytes(), &p).unwrap();
    assert_eq!(w.format_version(), 2);
    // Same passphrase and KDF settings; the slot reuses format 1's salt.
    assert_eq!(w.kdf(), WEAK);
    let mut after: serde_json::Value = serde_json::from_slice(&w.payload().to_json()).unwrap();
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
    assert_eq!(ids.list().len(), 1);
    let secretish = "AGE-SECRET-KEY-1NOTVALIDXYZ";
    let e = Identities::parse(&format!("{secretish}\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && !e.contains(secretish), "{e}");
    assert!(Identities::parse("# nothing\n").is_err());
}

#[test]
fn every_save_is_signed_by_the_vault_key_and_the_fingerprint_is_stable() {
    let p = pass("alpha");
    let v = with_keys(&p, 1);
    let fp = v.fingerprint().expect("a new vault has a signing key");
    assert!(fp.starts_with("mkv1:") && fp.len() == 37, "{fp}");
    let bytes = v.to_bytes();
    let h = Header::parse(&bytes).unwrap();
    assert_eq!(h.fingerprint().as_deref(), Some(fp.as_str()));
    h.check_signature().expect("the save verifies");
    // Another save of the same vault: a new nonce, a new save digest, the same key.
    let again = Header::parse(&v.to_bytes()).unwrap();
    assert_eq!(again.fingerprint(), h.fingerprint());
    assert_ne!(again.save_digest(), h.save_digest());
    let w = Vault::open(&bytes, &p).unwrap();
    assert_eq!(w.fingerprint().as_deref(), Some(fp.as_str()));
    let hex: String = h.save_digest().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(w.save_digest(), Some(hex));
    // Another vault, another key.
    assert_ne!(with_keys(&p, 0).fingerprint(), Some(fp));
}

#[test]
fn a_changed_signature_or_a_swapped_public_key_is_refused() {
    let p = pass("alpha");
    let v = with_keys(&p, 1);
    let mut json: serde_json::Value = serde_json::from_slice(&v.to_bytes()).unwrap();
    let good = json.clone();
    // The signature value is not in the associated data: decryption passes, and the
    // signature check after it refuses the file (exit 4).
    let sig = json["signature"]["value"].as_str().unwrap().to_string();
    let mut raw = B64.decode(&sig).unwrap();
    raw[0] ^= 1;
    json["signature"]["value"] = B64.encode(&raw).into();
    let e = Vault::open(&serde_json::to_vec(&json).unwrap(), &p).unwrap_err();
    assert!(
        matches!(&e, OpenError::Corrupt { reason } if reason.contains("does not verify")),
        "{e:?}"
    );
    // The public key is bound by the associated data: another one fails decryption.
    let mut json = good.clone();
    let other = with_keys(&p, 0).to_bytes();
    let other: serde_json::Value = serde_json::from_slice(&other).unwrap();
    json["signature"]["public_key"] = other["signature"]["public_key"].clone();
    let e = Vault::open(&serde_json::to_vec(&json).unwrap(), &p).unwrap_err();
    assert!(matches!(e, OpenError::WrongPassphrase), "{e:?}");
    // Dropping the signature changes the associated data too.
    let mut json = good;
    json.as_object_mut().unwrap().remove("signature");
    let e = Vault::open(&serde_json::to_vec(&json).unwrap(), &p).unwrap_err();
    assert!(matches!(e, OpenError::WrongPassphrase), "{e:?}");
}

#[test]
fn a_vault_written_before_signing_opens_and_gains_a_key_when_asked() {
    let p = pass("alpha");
    let mut v = with_keys(&p, 1);
    v.payload_mut_unchecked().signing_key = None;
    let bytes = v.to_bytes();
    let h = Header::parse(&bytes).unwrap();
    assert!(h.signature.is_none() && h.fingerprint().is_none());
    let mut w = Vault::open(&bytes, &p).unwrap();
    assert_eq!(w.fingerprint(), None);
    assert!(w.ensure_signing_key());
    assert!(!w.ensure_signing_key(), "only once");
    let fp = w.fingerprint().unwrap();
    let signed = w.to_bytes();
    assert_eq!(Header::parse(&signed).unwrap().fingerprint(), Some(fp));
    assert!(Vault::open(&signed, &p).is_ok());
}

#[test]
fn passphrase_slots_are_bound_to_their_vaults_key() {
    let p = pass("alpha");
    let a = with_keys(&p, 0);
    let b = with_keys(&p, 0);
    let slot = a.slots()[0].clone();
    let SlotKind::Passphrase {
        kdf, salt, binding, ..
    } = &slot.kind
    else {
        panic!("a passphrase slot")
    };
    assert!(binding.is_some(), "a new vault's slot is bound");
    let key = crypto::derive_key(&p, salt, kdf).unwrap();
    assert_eq!(a.passphrase_slot_binding(&slot.id, &key), Bound::Yes);
    let pk = |v: &Vault| {
        let h = Header::parse(&v.to_bytes()).unwrap();
        h.signature.unwrap().public_key
    };
    assert_eq!(check_binding(&slot, &key, Some(&pk(&a))), Bound::Yes);
    // The same slot in a vault with another signing key (a copy): not its binding.
    assert_eq!(check_binding(&slot, &key, Some(&pk(&b))), Bound::Other);
    // A wrong key never matches.
    let other = crypto::derive_key(&pass("beta"), salt, kdf).unwrap();
    assert_eq!(check_binding(&slot, &other, Some(&pk(&a))), Bound::Other);
}

#[test]
fn an_unbound_slot_is_bound_by_its_own_key_only() {
    use ed25519_dalek::Signer as _;
    let p = pass("alpha");
    let v = with_keys(&p, 1);
    let id = v.slots()[0].id.clone();
    let data_key = key_of(&v);
    // The same vault as written by a release before binding: the slot without it, the
    // payload sealed again under the associated data without it, signed again.
    let mut h = Header::parse(&v.to_bytes()).unwrap();
    let plain = crypto::open(&data_key, &h.nonce, &h.ad(), &h.ciphertext).unwrap();
    let (kdf, salt) = match &mut h.slots[0].kind {
        SlotKind::Passphrase {
            kdf, salt, binding, ..
        } => {
            *binding = None;
            (*kdf, salt.clone())
        }
        SlotKind::Age => unreachable!(),
    };
    h.ciphertext = crypto::seal(&data_key, &h.nonce, &h.ad(), &plain);
    let seed = v.payload().signing_key.as_ref().unwrap().duplicate();
    let signer = ed25519_dalek::SigningKey::from_bytes(seed.expose());
    h.signature.as_mut().unwrap().signature = signer.sign(&h.signed_message()).to_bytes();
    let mut old = Vault::open(&h.to_bytes(), &p).expect("an unbound slot still opens");

    let key = crypto::derive_key(&p, &salt, &kdf).unwrap();
    assert_eq!(old.passphrase_slot_binding(&id, &key), Bound::Unbound);
    let wrong = crypto::derive_key(&pass("beta"), &salt, &kdf).unwrap();
    assert!(
        !old.bind_passphrase_slot(&id, &wrong),
        "a wrong key binds nothing"
    );
    assert_eq!(old.passphrase_slot_binding(&id, &key), Bound::Unbound);
    assert!(old.bind_passphrase_slot(&id, &key));
    assert!(!old.bind_passphrase_slot(&id, &key), "already bound");
    let bound = Vault::open(&old.to_bytes(), &p).unwrap();
    assert_eq!(bound.passphrase_slot_binding(&id, &key), Bound::Yes);
}
