//! Verification against a vault: builds a [`Verifier`] (the verifier crate's) from an
//! unlocked vault's records, for `verify`, `check` and `publish`. Everything a server
//! needs is in the `mcp-key-verifier` crate, re-exported here.

pub use mcp_key_verifier::{
    api_key_from_headers, hashes_equal, Code, KeyInfo, ReloadEvent, Verdict, Verifier, Watched,
    MAX_REVISION, MAX_VERIFIER_BYTES, VERIFIER_FORMAT,
};

use crate::keyfmt::{self, Shape};
use crate::vault::Vault;

/// What a verifier keeps of one record: read in place where it is still encoded (only what
/// a verifier keeps is copied), or copied from the record decoded earlier.
fn key_info(
    look: &crate::keyset::Look<'_>,
    dict: &[crate::types::Permission],
    limits: &Limits,
) -> KeyInfo {
    use crate::keyset::Look;
    let info = match look {
        Look::Record(k) => KeyInfo::new(
            k.id.to_string(),
            Some(k.name.clone()),
            k.hash.0,
            k.revoked_at.is_some(),
            k.expires_at,
            k.permissions
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
        ),
        Look::InPlace(r) => KeyInfo::new(
            r.id.as_str(&mut [0u8; 16]).to_string(),
            Some(r.name.to_string()),
            *r.hash,
            r.revoked_at.is_some(),
            r.expires_at.map(crate::v2::datetime),
            r.permission_indexes()
                .map(|i| dict[i].as_str().to_string())
                .collect(),
        ),
    };
    if limits.is_empty() {
        return info;
    }
    let limit = limits.get(&info.id).copied();
    info.with_rate_limit(limit)
}

type Limits = std::collections::BTreeMap<String, mcp_key_verifier::RateLimit>;

/// A verifier over every key of an unlocked vault.
///
/// ```
/// use mcp_key_vault::{KdfParams, NewKey, Vault};
/// use mcp_key_vault::verify::{from_vault, Code};
/// use mcp_key_vault::secret::SecretString;
///
/// // A throwaway vault with cheap KDF settings (the CLI refuses these for real vaults).
/// let cheap = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };
/// let mut vault = Vault::create(&SecretString::new("example".into()), cheap)?;
/// let spec = NewKey {
///     name: "server".into(),
///     description: String::new(),
///     expires_at: None,
///     permissions: vec!["generate".parse().unwrap()],
/// };
/// let (_, key) = vault.create_key(spec, chrono::Utc::now());
///
/// let verifier = from_vault(&vault);
/// assert!(verifier.verify(key.expose(), &["generate"]).is_valid());
/// assert_eq!(verifier.verify(key.expose(), &["admin"]).code, Code::InsufficientPermissions);
/// # Ok::<(), mcp_key_vault::ChangeError>(())
/// ```
pub fn from_vault(vault: &Vault) -> Verifier {
    let dict = vault.keys().dict();
    let limits = &vault.payload().limits;
    let keys = vault
        .keys()
        .looks()
        .map(|l| key_info(&l, dict, limits))
        .collect();
    Verifier::new(vault.hash_key().expose(), vault.revision(), keys)
}

/// A verifier of only the records the `presented` keys could match — the record with a
/// presented modern key's id, and every record whose keyed hash is a presented key's —
/// so every verdict for those keys is the one [`from_vault`] gives, without
/// copying 100,000 records to check one key (what `verify` does against a vault).
pub fn from_vault_for(vault: &Vault, presented: &[&str]) -> Verifier {
    if presented.len() >= vault.keys().len() / 4 {
        // Most records would be copied anyway: skip the keyed hash of each key here.
        return from_vault(vault);
    }
    let mut ids = std::collections::HashSet::new();
    let mut hashes = std::collections::HashSet::new();
    for key in presented {
        if let Shape::Modern { id } = keyfmt::classify(key) {
            ids.insert(id);
        }
        hashes.insert(vault.keyed_hash(key).0);
    }
    let all = vault.keys();
    let dict = all.dict();
    let keys = (0..all.len())
        .filter(|&i| ids.contains(all.id(i)) || hashes.contains(&all.hash(i).0))
        .map(|i| key_info(&all.look(i), dict, &vault.payload().limits))
        .collect();
    Verifier::new(vault.hash_key().expose(), vault.revision(), keys)
}

/// A verifier file's bytes signed by `vault` (docs/verifier.md, "Signatures and trust
/// pins"): `unsigned` (which starts with `{` and a newline) with the signature line after
/// its first line. Unchanged for a vault that has no signing key yet.
pub fn sign_file(vault: &Vault, unsigned: &[u8]) -> Vec<u8> {
    use mcp_key_verifier::signature::{insert_signature, signed_message};
    match vault.sign(&signed_message(unsigned)) {
        Some((public_key, signature)) => insert_signature(unsigned, &public_key, &signature),
        None => unsigned.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KdfParams;
    use crate::secret::SecretString;
    use crate::vault::{NewKey, Vault};
    use chrono::Duration;
    use chrono::Utc;

    fn cheap_vault() -> (Vault, Vec<(String, SecretString)>) {
        let weak = KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let mut v = Vault::create(&SecretString::new("p".into()), weak).unwrap();
        let now = Utc::now();
        let mut keys = Vec::new();
        for (name, perms, exp) in [
            (
                "good",
                vec!["generate", "info"],
                Some(now + Duration::days(3)),
            ),
            ("revoked", vec!["generate"], None),
            (
                "expired",
                vec!["generate"],
                Some(now - Duration::seconds(1)),
            ),
        ] {
            let (i, key) = v.create_key(
                NewKey {
                    name: name.into(),
                    description: String::new(),
                    expires_at: exp,
                    permissions: perms.into_iter().map(|p| p.parse().unwrap()).collect(),
                },
                now,
            );
            keys.push((v.keys()[i].id.to_string(), key));
        }
        v.payload_mut_unchecked().keys[1].revoked_at = Some(now);
        (v, keys)
    }

    #[test]
    fn every_code_through_the_library() {
        let (v, keys) = cheap_vault();
        let ver = from_vault(&v);
        let good = keys[0].1.expose();
        assert_eq!(ver.verify(good, &[]).code, Code::Valid);
        assert_eq!(ver.verify(good, &["info"]).code, Code::Valid);
        assert_eq!(
            ver.verify(good, &["info", "admin"]).code,
            Code::InsufficientPermissions
        );
        assert_eq!(ver.verify(keys[1].1.expose(), &[]).code, Code::Revoked);
        assert_eq!(ver.verify(keys[2].1.expose(), &[]).code, Code::Expired);
        // The right shape and checksum, a known id, another secret.
        let body = format!("{}{}", &good[..21], "0".repeat(43));
        let wrong = format!(
            "{body}{}",
            String::from_utf8_lossy(&keyfmt::checksum(&body))
        );
        let wrong_v = ver.verify(&wrong, &[]);
        assert_eq!(wrong_v.code, Code::NotFound);
        assert!(
            wrong_v.key.is_none(),
            "a wrong secret reveals nothing about the id"
        );
        let unknown = format!("mcp_{}_{}", "f".repeat(16), "0".repeat(64));
        assert_eq!(ver.verify(&unknown, &[]).code, Code::NotFound);
        assert_eq!(ver.verify("mcp_x", &[]).code, Code::Malformed);
        assert_eq!(ver.verify("", &[]).code, Code::Malformed);
        // Revoked is reported before expired and before permissions.
        assert_eq!(
            ver.verify(keys[1].1.expose(), &["nope"]).code,
            Code::Revoked
        );
    }

    /// A verifier made from records read in place is the one made from decoded records:
    /// the same keys, fields and verdicts.
    #[test]
    fn records_read_in_place_make_the_same_verifier() {
        let (v, keys) = cheap_vault();
        let reopened = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        assert_eq!(reopened.keys().decoded_count(), 0);
        let in_place = from_vault(&reopened);
        assert_eq!(reopened.keys().decoded_count(), 0, "nothing decoded for it");
        let decoded = from_vault(&v);
        assert_eq!(
            format!("{:?}", in_place.keys()),
            format!("{:?}", decoded.keys())
        );
        let now = Utc::now();
        assert_eq!(in_place.to_json(now), decoded.to_json(now));
        for (_, k) in &keys {
            for perms in [&[][..], &["info"][..], &["admin"][..]] {
                assert_eq!(
                    in_place.verify(k.expose(), perms).code,
                    decoded.verify(k.expose(), perms).code
                );
            }
        }
    }

    /// A verifier of only the records some keys could match gives those keys the verdicts
    /// (code and key) of the verifier of every record: valid, revoked, expired, wrong
    /// secret behind a known id, unknown id, imported keys by hash, malformed; alone and
    /// together.
    #[test]
    fn a_verifier_for_some_keys_judges_them_as_the_whole_one() {
        let (mut v, keys) = cheap_vault();
        let now = Utc::now();
        for i in 0..60 {
            v.create_key(
                NewKey {
                    name: format!("filler {i}"),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec!["info".parse().unwrap()],
                },
                now,
            );
        }
        let legacy = "sk-imported-0123456789abcdefghijklmnopqrstuvwxyz";
        let hash = v.keyed_hash(legacy);
        v.payload_mut_unchecked()
            .keys
            .push(crate::record::KeyRecord {
                id: "old-id".into(),
                name: "imported".into(),
                description: String::new(),
                created_at: now,
                expires_at: None,
                revoked_at: None,
                permissions: vec!["info".parse().unwrap()],
                metadata: serde_json::Map::new(),
                secret: SecretString::new(legacy.into()),
                hash,
                rotated_from: None,
                rotated_to: None,
            });
        let v = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        let good = keys[0].1.expose().to_string();
        let presented: Vec<String> = vec![
            good.clone(),
            keys[1].1.expose().into(),
            keys[2].1.expose().into(),
            {
                let body = format!("{}{}", &good[..21], "0".repeat(43));
                format!(
                    "{body}{}",
                    String::from_utf8_lossy(&keyfmt::checksum(&body))
                )
            },
            format!("mcp_{}_{}", "f".repeat(16), "0".repeat(64)),
            legacy.into(),
            "sk-imported-but-not-this-one-0123456789abcdefghij".into(),
            "mcp_x".into(),
        ];
        let whole = from_vault(&v);
        let judged = |ver: &Verifier, k: &str| {
            let d = ver.verify_at(k, &["info"], now);
            (
                d.code,
                d.key
                    .map(|i| (i.id.clone(), i.name.clone(), i.permissions.clone())),
            )
        };
        let all: Vec<&str> = presented.iter().map(String::as_str).collect();
        let together = from_vault_for(&v, &all);
        assert!(together.keys().len() < v.keys().len(), "a subset");
        for k in &all {
            assert_eq!(judged(&together, k), judged(&whole, k), "{k}");
            let alone = from_vault_for(&v, &[k]);
            assert!(
                alone.keys().len() <= 1,
                "{k}: {} records",
                alone.keys().len()
            );
            assert_eq!(judged(&alone, k), judged(&whole, k), "{k}");
        }
        assert_eq!(
            judged(&whole, legacy).0,
            Code::Valid,
            "the imported key is found"
        );
        assert_eq!(judged(&whole, &good).0, Code::Valid);
    }

    #[test]
    fn verifier_file_round_trip_and_no_secret() {
        let (v, keys) = cheap_vault();
        let ver = from_vault(&v);
        let bytes = ver.to_json(Utc::now());
        let text = String::from_utf8(bytes.clone()).unwrap();
        for (_, k) in &keys {
            assert!(!text.contains(k.expose()));
            assert!(!text.contains(&k.expose()[21..]));
        }
        let back = Verifier::from_json(&bytes).unwrap();
        for (i, (_, k)) in keys.iter().enumerate() {
            assert_eq!(
                back.verify(k.expose(), &[]).code,
                ver.verify(k.expose(), &[]).code,
                "key {i}"
            );
        }
        assert!(Verifier::from_json(b"{}").is_err());
        let other = text.replace("mcp-key-verifier", "something-else");
        assert!(matches!(
            Verifier::from_json(other.as_bytes()),
            Err(mcp_key_verifier::Error::Invalid(_))
        ));
    }

    #[test]
    fn revision_names_and_unknown_fields() {
        let (mut v, keys) = cheap_vault();
        v.payload_mut_unchecked().keys[0].name = "ci-bot".into();
        let ver = from_vault(&v).with_revision(17);
        let now = Utc::now();
        // Names only on request; the revision given is the one written.
        let plain: serde_json::Value = serde_json::from_slice(&ver.to_json(now)).unwrap();
        assert_eq!(plain["revision"], 17);
        assert!(plain["keys"][0].get("name").is_none());
        let named = ver.to_json_with(now, 18, true);
        let back = Verifier::from_json(&named).unwrap();
        assert_eq!(back.revision(), 18);
        assert!(back.has_names());
        let verdict = back.verify(keys[0].1.expose(), &[]);
        assert_eq!(verdict.key.unwrap().name.as_deref(), Some("ci-bot"));
        let unnamed = Verifier::from_json(&ver.to_json(now)).unwrap();
        assert!(!unnamed.has_names());
        assert_eq!(unnamed.keys()[0].name, None);

        // A newer writer's fields are ignored; a file without revision is revision 0.
        let mut f: serde_json::Value = serde_json::from_slice(&ver.to_json(now)).unwrap();
        f["comment"] = "from the future".into();
        f["keys"][0]["labels"] = serde_json::json!({"team": "infra"});
        f.as_object_mut().unwrap().remove("revision");
        let old = Verifier::from_json(&serde_json::to_vec(&f).unwrap()).unwrap();
        assert_eq!(old.revision(), 0);
        assert!(old.verify(keys[0].1.expose(), &[]).is_valid());

        // Rejected: duplicate ids, a bad generated_at, a negative revision.
        let mut dup = f.clone();
        let first = dup["keys"][0].clone();
        dup["keys"].as_array_mut().unwrap().push(first);
        let e = Verifier::from_json(&serde_json::to_vec(&dup).unwrap()).unwrap_err();
        assert!(e.to_string().contains("two entries"), "{e}");
        let mut bad_time = f.clone();
        bad_time["generated_at"] = "2026-02-30T00:00:00Z".into();
        assert!(Verifier::from_json(&serde_json::to_vec(&bad_time).unwrap()).is_err());
        let mut negative = f;
        negative["revision"] = (-1).into();
        assert!(Verifier::from_json(&serde_json::to_vec(&negative).unwrap()).is_err());
    }

    #[test]
    fn legacy_keys_are_found_by_keyed_hash() {
        let (mut v, _) = cheap_vault();
        let legacy = "ab".repeat(32);
        let hash = v.keyed_hash(&legacy);
        let mut rec = serde_json::from_value::<crate::record::KeyRecord>(serde_json::json!({
            "id": "legacy-id", "name": "old", "created_at": "2025-01-01T00:00:00Z",
            "secret": legacy, "hash": hash, "permissions": ["generate"]
        }))
        .unwrap();
        rec.description = "imported".into();
        v.payload_mut_unchecked().keys.push(rec);
        let ver = from_vault(&v);
        let verdict = ver.verify(&legacy, &["generate"]);
        assert_eq!(verdict.code, Code::Valid);
        assert_eq!(verdict.key.unwrap().id, "legacy-id");
        assert_eq!(ver.verify(&"cd".repeat(32), &[]).code, Code::NotFound);
    }

    /// A stored hash that differs from the presented key's digest in one bit, at either
    /// end, is NOT_FOUND for a modern and for a legacy key: the lookup compares whole
    /// digests, never a prefix.
    #[test]
    fn one_bit_off_in_the_stored_hash_is_not_found() {
        for (byte, bit) in [(0usize, 0u8), (31, 7)] {
            let (mut v, keys) = cheap_vault();
            let legacy = "ab".repeat(32);
            let mut rec = serde_json::from_value::<crate::record::KeyRecord>(serde_json::json!({
                "id": "legacy-id", "name": "old", "created_at": "2025-01-01T00:00:00Z",
                "secret": legacy, "hash": v.keyed_hash(&legacy)
            }))
            .unwrap();
            rec.hash.0[byte] ^= 1 << bit;
            v.payload_mut_unchecked().keys.push(rec);
            v.payload_mut_unchecked().keys[0].hash.0[byte] ^= 1 << bit;
            let ver = from_vault(&v);
            assert_eq!(ver.verify(keys[0].1.expose(), &[]).code, Code::NotFound);
            assert_eq!(ver.verify(&legacy, &[]).code, Code::NotFound);
        }
    }
}
