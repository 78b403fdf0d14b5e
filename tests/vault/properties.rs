//! Property tests for the parsers and the vault: the env-file editor, the vault
//! header, a vault round trip through the library, key classification and the legacy
//! importer. Where a fuzz target asserts the same property, the check is the target's own
//! function (`fuzz/src/lib.rs`, included by path), fed by proptest strategies that build
//! realistic inputs; case counts keep the whole file to a few seconds in the dev profile.

use crate::checks;
use chrono::{Duration, TimeZone, Utc};
use mcp_key_manager::envfile::EnvFile;
use mcp_key_vault::format::{bounds, MAX_FILE_BYTES};
use mcp_key_vault::keyfmt::{self, Shape};
use mcp_key_vault::legacy;
use mcp_key_vault::{Envelope, KdfParams, NewKey};
use mcp_key_vault::{OpenError, SecretString, Vault};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are reported with their minimal input; persisting them to a file next
        // to this one would leave untracked files in CI checkouts.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- env file

/// A value as written in a file: unquoted, single- or double-quoted (with escapes), an
/// unterminated quote, or nothing.
fn written_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_./:@=+-]{0,12}",
        "'[^'\r\n]{0,10}'",
        r#""([^"\\\r\n]|\\[\\"nrt$]){0,10}""#,
        r#"["'][^\r\n]{0,8}"#,
        Just(String::new()),
    ]
}

/// One line of a realistic env file (without its ending).
fn env_line() -> impl Strategy<Value = Vec<u8>> {
    // The fuzz target's names, plus two look-alikes that must never be touched.
    let mut names = checks::ENV_NAMES.to_vec();
    names.extend(["MCP_API_KEY_OLD", "XMCP_API_KEY"]);
    let name = select(names);
    let assignment = (
        "[ \t]{0,2}",
        select(vec!["", "export ", "export\t ", "#", "# "]),
        name,
        "[ \t]{0,2}",
        "[ \t]{0,2}",
        written_value(),
        select(vec!["", " # note", "\t#c", "#glued", "   "]),
    )
        .prop_map(|(i, e, n, s1, s2, v, c)| format!("{i}{e}{n}{s1}={s2}{v}{c}").into_bytes());
    prop_oneof![
        4 => assignment,
        1 => "#[ -~]{0,20}".prop_map(String::into_bytes),
        1 => Just(Vec::new()),
        1 => vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..16),
    ]
}

/// A realistic env file: lines joined by LF or CRLF, with or without a final ending.
fn env_file() -> impl Strategy<Value = Vec<u8>> {
    (
        vec((env_line(), select(vec![&b"\n"[..], b"\r\n"])), 0..8),
        select(vec![&b""[..], b"\n", b"\r\n"]),
    )
        .prop_map(|(lines, last)| {
            let mut out = Vec::new();
            let n = lines.len();
            for (i, (text, ending)) in lines.into_iter().enumerate() {
                out.extend_from_slice(&text);
                out.extend_from_slice(if i + 1 == n { last } else { ending });
            }
            out
        })
}

/// A file of plain lines only (see docs/envfile.md), each name assigned at most once:
/// every loader reads it alike, so the analysis must find nothing.
fn plain_env_file() -> impl Strategy<Value = Vec<u8>> {
    let mut names = checks::ENV_NAMES.to_vec();
    names.extend(["PORT", "MCP_API_KEY_OLD", "XMCP_API_KEY"]);
    let value = prop_oneof![
        "[A-Za-z0-9_./:@=+-]{1,12}",
        "\"[A-Za-z0-9 _./-]{0,10}\"",
        "'[A-Za-z0-9 _./-]{0,10}'",
    ];
    let assignment = (
        " {0,2}",
        select(vec!["", "export "]),
        " {0,1}",
        " {0,1}",
        value,
        select(vec!["", " # note", "   #c", "  "]),
    );
    let line = prop_oneof![
        4 => assignment.prop_map(Some),
        1 => Just(None),
    ];
    (
        proptest::sample::subsequence(names.clone(), 0..names.len()).prop_shuffle(),
        vec(line, 0..9),
        vec("#[ -~]{0,20}|", 0..9),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(names, lines, comments, crlf, last)| {
            let ending = if crlf { "\r\n" } else { "\n" };
            let mut out = String::new();
            let mut names = names.into_iter();
            for (n, l) in lines.into_iter().enumerate() {
                match l {
                    Some((i, e, s1, s2, v, c)) => {
                        let Some(name) = names.next() else { continue };
                        out.push_str(&format!("{i}{e}{name}{s1}={s2}{v}{c}"));
                    }
                    None => out.push_str(comments.get(n).map_or("", String::as_str)),
                }
                out.push_str(ending);
            }
            if !last {
                out.truncate(out.len().saturating_sub(ending.len()));
            }
            out.into_bytes()
        })
}

/// A value `set` must store and `get` read back: no control characters.
fn safe_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        "[A-Za-z0-9_]{0,12}",
        "mcp_[0-9a-f]{16}_[0-9a-f]{64}",
        "[ -~éß€🔑\u{a0}日]{0,12}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn env_render_gives_back_any_bytes(bytes in vec(any::<u8>(), 0..400)) {
        prop_assert_eq!(EnvFile::parse(&bytes).render(), bytes);
    }

    #[test]
    fn env_render_gives_back_realistic_files(file in env_file()) {
        prop_assert_eq!(EnvFile::parse(&file).render(), file);
    }

    #[test]
    fn env_set_then_get_leaves_other_lines_alone(
        file in env_file(),
        key in select(checks::ENV_NAMES.to_vec()),
        value in safe_value(),
    ) {
        checks::check_env_set(&file, key, &value);
    }

    #[test]
    fn env_set_on_arbitrary_bytes(
        file in vec(any::<u8>(), 0..200),
        key in select(checks::ENV_NAMES.to_vec()),
        value in safe_value(),
    ) {
        checks::check_env_set(&file, key, &value);
    }

    #[test]
    fn env_analysis_never_panics_on_any_bytes(bytes in vec(any::<u8>(), 0..400)) {
        checks::check_env_analysis(&bytes);
    }

    #[test]
    fn env_checked_set_on_realistic_files(
        file in env_file(),
        key in select(checks::ENV_NAMES.to_vec()),
        value in safe_value(),
    ) {
        checks::check_env_analysis(&file);
        checks::check_env_set_checked(&file, key, &value);
    }

    #[test]
    fn env_plain_files_are_unambiguous_and_edited(
        file in plain_env_file(),
        key in select(checks::ENV_NAMES.to_vec()),
        value in "[A-Za-z0-9_./:@=+-]{1,24}|mcp_[0-9a-f]{16}_[0-9a-f]{64}|[A-Za-z0-9 ]{0,12}",
    ) {
        let a = mcp_key_manager::envfile::analyze(&file);
        // Only a name starting with `export` is read otherwise (by docker compose).
        let exportish = |f: &mcp_key_manager::envfile::Ambiguity| {
            f.name.as_deref().is_some_and(|n| n.starts_with("export"))
        };
        prop_assert!(a.findings().iter().all(exportish), "{:?} in {:?}", a, String::from_utf8_lossy(&file));
        prop_assert_eq!(
            mcp_key_manager::envfile::apply_checked(&file, &[(key, &value)]).is_ok(),
            !key.starts_with("export")
        );
        checks::check_env_set_checked(&file, key, &value);
    }

    #[test]
    fn env_checked_set_on_arbitrary_bytes(
        file in vec(any::<u8>(), 0..200),
        key in select(checks::ENV_NAMES.to_vec()),
        value in safe_value(),
    ) {
        checks::check_env_set_checked(&file, key, &value);
    }

    #[test]
    fn env_second_set_overrides_the_first(
        file in env_file(),
        key in select(checks::ENV_NAMES.to_vec()),
        v1 in safe_value(),
        v2 in safe_value(),
    ) {
        let mut f = EnvFile::parse(&file);
        f.set(key, &v1);
        let lines_after_first = f.render().split(|&b| b == b'\n').count();
        f.set(key, &v2);
        prop_assert_eq!(f.get(key), Some(v2));
        // The second set rewrites in place: it never appends another line.
        prop_assert_eq!(f.render().split(|&b| b == b'\n').count(), lines_after_first);
    }
}

// ---------------------------------------------------------------- vault header

/// KDF settings within the documented bounds, spread over the whole range.
fn kdf_in_bounds() -> impl Strategy<Value = KdfParams> {
    (bounds::PARALLELISM_MIN..=bounds::PARALLELISM_MAX)
        .prop_flat_map(|p| {
            (
                bounds::MEMORY_KIB_MIN.max(8 * p)..=bounds::MEMORY_KIB_MAX,
                Just(p),
            )
        })
        .prop_flat_map(|(m, p)| {
            let tmax = (bounds::WORK_KIB_MAX / u64::from(m)).min(bounds::ITERATIONS_MAX.into());
            (Just(m), bounds::ITERATIONS_MIN..=tmax as u32, Just(p))
        })
        .prop_map(|(memory_kib, iterations, parallelism)| KdfParams {
            memory_kib,
            iterations,
            parallelism,
        })
}

fn envelope_in_bounds() -> impl Strategy<Value = Envelope> {
    (
        kdf_in_bounds(),
        vec(any::<u8>(), bounds::SALT_MIN..=bounds::SALT_MAX),
        any::<[u8; 24]>(),
        vec(any::<u8>(), bounds::TAG_LEN..200),
    )
        .prop_map(|(kdf, salt, nonce, ciphertext)| Envelope {
            kdf,
            salt,
            nonce,
            ciphertext,
        })
}

fn any_kdf() -> impl Strategy<Value = KdfParams> {
    let edge = |lo: u32, hi: u32| {
        prop_oneof![
            Just(0u32),
            Just(lo.saturating_sub(1)),
            Just(lo),
            Just(hi),
            Just(hi.saturating_add(1)),
            Just(u32::MAX),
            any::<u32>(),
            lo..=hi,
        ]
    };
    (
        edge(bounds::MEMORY_KIB_MIN, bounds::MEMORY_KIB_MAX),
        edge(bounds::ITERATIONS_MIN, bounds::ITERATIONS_MAX),
        edge(bounds::PARALLELISM_MIN, bounds::PARALLELISM_MAX),
    )
        .prop_map(|(memory_kib, iterations, parallelism)| KdfParams {
            memory_kib,
            iterations,
            parallelism,
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn header_serialize_parse_round_trip(env in envelope_in_bounds()) {
        let bytes = env.to_bytes();
        let back = Envelope::parse(&bytes).expect("an in-bounds envelope parses");
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(back.to_bytes(), bytes);
        checks::check_vault_header(&env.to_bytes());
    }

    #[test]
    fn header_is_accepted_exactly_within_bounds(
        kdf in any_kdf(),
        salt_len in 0usize..80,
        ct_len in 0usize..40,
    ) {
        let env = Envelope {
            kdf,
            salt: vec![3; salt_len],
            nonce: [4; 24],
            ciphertext: vec![5; ct_len],
        };
        let valid = kdf.check_bounds().is_ok()
            && (bounds::SALT_MIN..=bounds::SALT_MAX).contains(&salt_len)
            && ct_len >= bounds::TAG_LEN;
        let work = u64::from(kdf.memory_kib) * u64::from(kdf.iterations);
        let documented = (1..=16).contains(&kdf.parallelism)
            && u64::from(kdf.memory_kib) >= 8 * u64::from(kdf.parallelism)
            && kdf.memory_kib <= 2 * 1024 * 1024
            && (1..=64).contains(&kdf.iterations)
            && work <= 8 * 1024 * 1024;
        prop_assert_eq!(kdf.check_bounds().is_ok(), documented, "{:?}", kdf);
        match Envelope::parse(&env.to_bytes()) {
            Ok(back) => {
                prop_assert!(valid);
                prop_assert_eq!(back, env);
            }
            Err(OpenError::Corrupt { .. }) => prop_assert!(!valid),
            Err(e) => prop_assert!(false, "unexpected error kind {:?}", e),
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_vault_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let mut bytes = bytes;
        if bytes.first() == Some(&0) {
            bytes[0] = 1; // file mode; the payload mode has its own property below
        }
        checks::check_vault_open(&bytes);
        checks::check_vault_header(&bytes);
    }

    #[test]
    fn arbitrary_json_values_as_a_vault_never_panic(json in json_value(3)) {
        let bytes = serde_json::to_vec(&json).expect("serialize a generated value");
        checks::check_vault_open(&bytes);
        checks::check_vault_header(&bytes);
    }

    #[test]
    fn edited_vault_files_never_panic(
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut file = sample_vault_file().to_vec();
        for (at, b) in edits {
            let i = at.index(file.len());
            file[i] = b;
        }
        checks::check_vault_open(&file);
        checks::check_vault_header(&file);
    }

    #[test]
    fn decrypted_payloads_never_panic(json in payload_like()) {
        let mut input = vec![0u8];
        input.extend(serde_json::to_vec(&json).expect("serialize a generated value"));
        checks::check_vault_open(&input);
    }
}

/// Arbitrary JSON, with the vault header's field names among the keys so that generated
/// objects reach the envelope parser and not just the "not a vault" branch.
fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        select(vec![
            "mcp-key-vault",
            "argon2id",
            "xchacha20poly1305",
            "AAAAAAAAAAAAAAAAAAAAAA=="
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    let key = prop_oneof![
        select(vec![
            "format",
            "version",
            "kdf",
            "cipher",
            "ciphertext",
            "algorithm",
            "memory_kib",
            "iterations",
            "parallelism",
            "salt",
            "nonce",
            "key_value",
            "key_id",
        ])
        .prop_map(String::from),
        "[a-z]{0,4}",
    ];
    leaf.prop_recursive(depth, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A decrypted payload, well-formed or close to it.
fn payload_like() -> impl Strategy<Value = serde_json::Value> {
    let time = prop_oneof![
        Just(serde_json::json!("2025-01-01T00:00:00Z")),
        Just(serde_json::json!("2025-01-01T00:00:00.123456789+05:30")),
        Just(serde_json::json!("not a time")),
        Just(serde_json::Value::Null),
    ];
    let record = (
        select(vec!["0123456789abcdef", "fedcba9876543210", "x", ""]),
        any::<String>(),
        time.clone(),
        time,
        vec("[a-z:]{1,8}", 0..3),
        json_value(2),
    )
        .prop_map(|(id, name, created, expires, perms, meta)| {
            let mut r = serde_json::json!({
                "id": id, "name": name, "created_at": created, "expires_at": expires,
                "permissions": perms, "secret": format!("mcp_{id}_{}", "a".repeat(64)),
                "hash": "b".repeat(64),
            });
            if meta.is_object() {
                r["metadata"] = meta;
            }
            r
        });
    (
        select(vec!["11".repeat(32), "zz".repeat(32), "11".into()]),
        vec(record, 0..4),
    )
        .prop_map(|(hash_key, keys)| serde_json::json!({"hash_key": hash_key, "keys": keys}))
}

fn sample_vault_file() -> &'static [u8] {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let pass = SecretString::new("p".into());
        let mut v = Vault::create_format1(&pass, checks::CHEAP).expect("create a cheap vault");
        v.create_key(new_key("k", "d", vec!["info".into()], None), Utc::now());
        v.to_bytes()
    })
}

// ---------------------------------------------------------------- vault round trip

fn new_key(
    name: &str,
    description: &str,
    permissions: Vec<String>,
    expires_at: Option<chrono::DateTime<Utc>>,
) -> NewKey {
    NewKey {
        name: name.into(),
        description: description.into(),
        expires_at,
        permissions: permissions.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn vault_round_trip_keeps_every_record(
        passphrase in any::<String>(),
        specs in vec(
            (
                any::<String>(),
                any::<String>(),
                vec("[a-z0-9_.:-]{1,64}", 0..4),
                prop::option::of(-1000i64..100_000),
            ),
            0..5,
        ),
        revoke in any::<prop::sample::Index>(),
    ) {
        let pass = SecretString::new(passphrase.clone());
        let mut v = Vault::create_format1(&pass, checks::CHEAP).expect("create a cheap vault");
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).single().expect("a valid time");
        let mut issued = Vec::new();
        for (name, description, permissions, days) in &specs {
            let exp = days.map(|d| now + Duration::days(d));
            let (_, key) = v.create_key(new_key(name, description, permissions.clone(), exp), now);
            prop_assert_eq!(keyfmt::classify(key.expose()), Shape::Modern {
                id: &v.keys().last().expect("just added").id,
            });
            issued.push(key);
        }
        if !issued.is_empty() {
            let i = revoke.index(issued.len());
            v.payload_mut_unchecked().keys[i].revoked_at = Some(now);
        }
        let file = v.to_bytes();
        prop_assert!(file.len() as u64 <= MAX_FILE_BYTES);

        let w = Vault::open(&file, &pass).expect("the vault opens with its passphrase");
        prop_assert_eq!(w.kdf(), checks::CHEAP);
        prop_assert_eq!(w.keys().len(), specs.len());
        prop_assert_eq!(w.events().len(), specs.len());
        prop_assert_eq!(w.payload().hash_key.expose(), v.payload().hash_key.expose());
        for ((r, orig), ((name, description, permissions, days), key)) in
            w.keys().iter().zip(v.keys()).zip(specs.iter().zip(&issued))
        {
            prop_assert_eq!(&r.id, &orig.id);
            prop_assert!(keyfmt::is_id(&r.id));
            prop_assert_eq!(&r.name, name);
            prop_assert_eq!(&r.description, description);
            prop_assert_eq!(&r.permissions, permissions);
            prop_assert_eq!(r.created_at, now);
            prop_assert_eq!(r.expires_at, days.map(|d| now + Duration::days(d)));
            prop_assert_eq!(r.revoked_at, orig.revoked_at);
            prop_assert_eq!(r.secret.expose(), key.expose());
            prop_assert_eq!(&r.hash, &w.keyed_hash(key.expose()));
            prop_assert_eq!(r.status(now), orig.status(now));
        }
        // Saving again uses a fresh nonce but keeps the payload.
        let again = w.to_bytes();
        prop_assert_ne!(&again, &file);
        prop_assert_eq!(
            &*Vault::open(&again, &pass).expect("re-saved vault opens").payload().to_json(),
            &*w.payload().to_json()
        );

        let wrong = SecretString::new(format!("{passphrase}x"));
        prop_assert!(matches!(Vault::open(&file, &wrong), Err(OpenError::WrongPassphrase)));
    }

    #[test]
    fn a_changed_ciphertext_or_header_never_opens(
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        which in 0u8..3,
    ) {
        let pass = SecretString::new("p".into());
        let env = Envelope::parse(sample_vault_file()).expect("the sample parses");
        let mut env2 = env.clone();
        match which {
            0 => { let i = at.index(env2.ciphertext.len()); env2.ciphertext[i] ^= 1 << bit }
            1 => { let i = at.index(env2.salt.len()); env2.salt[i] ^= 1 << bit }
            _ => { let i = at.index(24); env2.nonce[i] ^= 1 << bit }
        }
        match Vault::open(&env2.to_bytes(), &pass) {
            Err(e @ OpenError::WrongPassphrase) => prop_assert_eq!(e.to_string(), mcp_key_vault::error::WRONG_PASSPHRASE),
            other => prop_assert!(false, "a modified vault gave {:?}", other.map(|v| v.keys().len())),
        }
    }
}

// ---------------------------------------------------------------- key format

fn near_keys() -> impl Strategy<Value = String> {
    prop_oneof![
        "mcp_[0-9a-f]{16}_[0-9a-f]{64}",
        "mcp_[0-9a-fA-G]{15,17}[_-][0-9a-f]{63,65}",
        "mcp_[0-9a-f_]{81}",
        "[a-z_]{0,4}[0-9a-f_]{70,90}",
        "[A-Za-z0-9_.~+/=-]{14,258}",
        "[A-Za-z0-9_.~+/= é-]{10,30}",
        "(acme_)?mkm_[0-9a-f]{16}_[0-9A-Za-z]{49}",
        "[a-z_]{0,6}mkm[_-][0-9a-fA-G]{15,17}[_-][0-9A-Za-z_]{48,50}",
        "[A-Za-z0-9_.~+/=-]{1,26}[0-9a-f]{16}_[0-9A-Za-z]{49}",
    ]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn classify_matches_the_documented_shapes(s in prop_oneof![any::<String>(), near_keys()]) {
        checks::check_classify(&s);
    }

    #[test]
    fn one_changed_character_makes_a_new_key_malformed(
        at in 0usize..keyfmt::KEY2_LEN,
        c in prop::char::any(),
    ) {
        let id = keyfmt::new_id();
        let key = keyfmt::generate(&id);
        let key = key.expose();
        prop_assert_eq!(keyfmt::classify(key), Shape::Modern { id: &id });
        let mut changed: String = key[..at].into();
        changed.push(c);
        changed.push_str(&key[at + 1..]);
        // The checksum catches every change: no lookup is needed to refuse a typo.
        let unchanged = c == char::from(key.as_bytes()[at]);
        prop_assert_eq!(keyfmt::classify(&changed) != Shape::Malformed, unchanged);
        checks::check_classify(&changed);
    }

    #[test]
    fn one_changed_character_breaks_a_format_1_key(
        at in 0usize..keyfmt::KEY_LEN,
        c in prop::char::any(),
        secret in "[0-9a-f]{64}",
    ) {
        let id = keyfmt::new_id();
        let key = format!("mcp_{id}_{secret}");
        prop_assert_eq!(keyfmt::classify(&key), Shape::Modern { id: &id });
        let mut changed: String = key[..at].into();
        changed.push(c);
        changed.push_str(&key[at + 1..]);
        let still_fits = match at {
            0..=3 => c == char::from(b"mcp_"[at]),
            20 => c == '_',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        };
        prop_assert_eq!(matches!(keyfmt::classify(&changed), Shape::Modern { .. }), still_fits);
        checks::check_classify(&changed);
    }
}

#[test]
fn generated_keys_are_modern_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let id = keyfmt::new_id();
        let key = keyfmt::generate(&id);
        assert!(checks::is_modern_shape(key.expose()));
        assert_eq!(keyfmt::classify(key.expose()), Shape::Modern { id: &id });
        assert!(seen.insert(key.expose().to_owned()));
    }
}

// ---------------------------------------------------------------- legacy store

/// A record of the Python tool's store, well-formed when `valid`.
fn legacy_record(valid: bool) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let time = prop_oneof![
        Just("2025-03-01T12:00:00".to_string()),
        Just("2025-03-01T12:00:00.123456".to_string()),
        Just("2024-12-31 23:59:59".to_string()),
        Just("2025-03-01T12:00:00+02:00".to_string()),
    ];
    let key = prop_oneof!["[0-9a-f]{64}", "[A-Za-z0-9_.~+/=-]{16,40}"];
    let base = (
        key,
        any::<String>(),
        prop::option::of(any::<String>()),
        time.clone(),
        prop::option::of(time),
        prop::option::of(any::<bool>()),
        vec("[a-z0-9_.:-]{1,12}", 0..3),
    )
        .prop_map(|(k, name, description, created, expires, active, perms)| {
            json!({
                "key_value": k, "name": name, "description": description,
                "created_at": created, "expires_at": expires, "is_active": active,
                "permissions": perms, "metadata": {"owner": "ops"},
            })
        });
    let broken = (
        select(vec![
            "key_value",
            "name",
            "created_at",
            "expires_at",
            "is_active",
            "permissions",
            "metadata",
            "key_id",
            "description",
        ]),
        json_value(1),
    );
    (base, prop::option::of(broken)).prop_map(move |(mut r, broken)| {
        if let (false, Some((field, v))) = (valid, broken) {
            r[field] = v;
        }
        if !valid {
            if let Value::Object(m) = &mut r {
                m.remove("name");
            }
        }
        r
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn legacy_parse_never_panics_on_bytes(bytes in vec(any::<u8>(), 0..400)) {
        checks::check_legacy_store(&bytes);
    }

    #[test]
    fn legacy_parse_never_panics_on_json(json in json_value(3)) {
        checks::check_legacy_store(&serde_json::to_vec(&json).expect("serialize"));
    }

    #[test]
    fn legacy_parse_of_mixed_stores(
        records in vec(("[A-Za-z0-9_-]{1,20}", any::<bool>()), 0..5)
            .prop_flat_map(|ids| {
                ids.into_iter()
                    .map(|(id, ok)| (Just(id), legacy_record(ok), Just(ok)))
                    .collect::<Vec<_>>()
            }),
    ) {
        let store: serde_json::Map<String, serde_json::Value> =
            records.iter().map(|(id, r, _)| (id.clone(), r.clone())).collect();
        let bytes = serde_json::to_vec(&store).expect("serialize");
        checks::check_legacy_store(&bytes);
        // A later record under the same id replaces an earlier one in `store`; judge each
        // id by the record that remains.
        let ok: std::collections::HashMap<&str, bool> =
            records.iter().map(|(id, _, ok)| (id.as_str(), *ok)).collect();
        let distinct_keys = {
            let mut ks: Vec<String> = store.values().map(|r| r["key_value"].to_string()).collect();
            ks.sort();
            ks.dedup();
            ks.len() == store.len()
        };
        if ok.values().all(|v| *v) && distinct_keys {
            let parsed = legacy::parse_store(&bytes).expect("a well-formed store parses");
            prop_assert_eq!(parsed.len(), store.len());
            for r in &parsed {
                let src = &store[&r.id];
                prop_assert_eq!(r.key.expose(), src["key_value"].as_str().expect("a string"));
                prop_assert_eq!(&r.name, src["name"].as_str().expect("a string"));
                prop_assert_eq!(r.active, src["is_active"].as_bool().unwrap_or(true));
            }
        } else if ok.values().any(|v| !v) {
            prop_assert!(legacy::parse_store(&bytes).is_err());
        }
    }
}

// ---------------------------------------------------------------- vault format 2

use mcp_key_vault::v2::codec;
use mcp_key_vault::{EventAction, Payload, Published};

fn any_time() -> impl Strategy<Value = chrono::DateTime<Utc>> {
    prop_oneof![
        (0i64..4_000_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        (
            -8_000_000_000_000i64..8_000_000_000_000,
            0u32..1_000_000_000
        )
            .prop_map(|(s, n)| Utc.timestamp_opt(s, n).single().unwrap_or_default()),
    ]
}

/// A payload with keys of every shape the codec distinguishes: modern and imported ids
/// and secrets, optional times with and without nanoseconds, shared permissions,
/// metadata, rotation links, and a history.
fn any_contents() -> impl Strategy<Value = Payload> {
    let key = (
        any::<bool>(),
        "\\PC{0,12}",
        "\\PC{0,12}",
        any_time(),
        proptest::option::of(any_time()),
        proptest::option::of(any_time()),
        vec(select(vec!["info", "generate", "tools:call", "x"]), 0..4),
        proptest::option::of(json_value(2)),
        "[a-zA-Z0-9_]{1,20}",
    );
    (
        vec(key, 0..12),
        vec(
            (
                any_time(),
                select(EventAction::ALL.to_vec()),
                proptest::option::of("\\PC{0,8}"),
            ),
            0..12,
        ),
        any::<u64>(),
        proptest::option::of(("/[a-z/]{1,20}", any::<bool>(), any::<u64>())),
    )
        .prop_map(|(keys, events, revision, published)| {
            let pass = SecretString::new("p".into());
            let mut v = Vault::create(&pass, checks::CHEAP).expect("cheap vault");
            for (i, (modern, name, desc, created, expires, revoked, perms, meta, legacy)) in
                keys.into_iter().enumerate()
            {
                let mut perms: Vec<String> = perms.into_iter().map(String::from).collect();
                perms.dedup();
                let (idx, _) = v.create_key(new_key(&name, &desc, perms, expires), created);
                let k = &mut v.payload_mut_unchecked().keys[idx];
                k.revoked_at = revoked;
                if !modern {
                    k.id = format!("{legacy}-{i}").into();
                    k.secret = SecretString::new(format!("legacy-{legacy}"));
                }
                if let Some(serde_json::Value::Object(m)) = meta {
                    k.metadata = m;
                }
                if i > 0 {
                    k.rotated_from = Some(format!("prev{i}").into());
                }
            }
            for (at, action, detail) in events {
                v.record(at, action, None, detail);
            }
            let p = v.payload_mut_unchecked();
            p.revision = revision;
            if let Some((path, names, _)) = published {
                p.published.push(Published {
                    path: path.into(),
                    names,
                    then: None,
                });
            }
            std::mem::take(p)
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn v2_payload_round_trips_exactly(c in any_contents()) {
        let bytes = codec::encode(&c);
        let back = codec::decode(&bytes, codec::Events::All).expect("decodes");
        prop_assert_eq!(back.to_json().to_vec(), c.to_json().to_vec());
        prop_assert_eq!(back.revision, c.revision);
        prop_assert_eq!(&back.published, &c.published);
        // Uniqueness, the allocation bound and the whole-vault path: the fuzz check.
        checks::check_vault2_payload(&bytes);
    }

    #[test]
    fn v2_edited_payloads_never_panic(
        c in any_contents(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..5),
    ) {
        let mut bytes = codec::encode(&c).to_vec();
        for (at, b, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = b,
                1 => bytes.insert(i.min(bytes.len()), b),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        checks::check_vault2_payload(&bytes);
    }

    #[test]
    fn v2_arbitrary_payload_bytes_never_panic(tail in vec(any::<u8>(), 0..400)) {
        let mut bytes = codec::MAGIC.to_vec();
        bytes.extend(tail);
        checks::check_vault2_payload(&bytes);
    }

    #[test]
    fn v2_edited_headers_never_panic(
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/vault/v2/passphrase/keys.json"
        ))
        .expect("the committed vector");
        for (at, b) in edits {
            let i = at.index(file.len());
            file[i] = b;
        }
        checks::check_vault2_header(&file);
    }

    #[test]
    fn v2_arbitrary_json_headers_never_panic(json in json_value(3)) {
        checks::check_vault2_header(&serde_json::to_vec(&json).expect("serialize"));
    }
}
