//! The vault file's envelope: JSON header fields, their hard bounds, and the canonical
//! associated data that binds them to the ciphertext.
//!
//! This module knows bytes and bounds, never passphrases or keys. Invariant: nothing that
//! leaves [`Envelope::parse`] can make the caller allocate or compute beyond the bounds
//! below, and every field that matters is part of [`Envelope::associated_data`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{ChangeError, OpenError};

type Result<T, E = OpenError> = std::result::Result<T, E>;

/// The `format` field of every vault.
pub const FORMAT: &str = "mcp-key-vault";
/// The one format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Argon2 version 0x13, the only one RFC 9106 defines.
pub const ARGON2_VERSION: u32 = 19;
/// Largest vault file read, in bytes. A 100,000-key vault is about 60 MB.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Hard bounds on what a header may ask for. A hostile header outside them is refused
/// before any key-derivation work (exit 4).
pub mod bounds {
    /// Smallest Argon2 memory accepted when reading (Argon2's own floor is 8 KiB per lane).
    pub const MEMORY_KIB_MIN: u32 = 8;
    /// Largest Argon2 memory accepted: 2 GiB.
    pub const MEMORY_KIB_MAX: u32 = 2 * 1024 * 1024;
    /// Passes: Argon2 needs at least 1.
    pub const ITERATIONS_MIN: u32 = 1;
    /// Largest number of passes.
    pub const ITERATIONS_MAX: u32 = 64;
    /// Largest total work, memory × passes, in KiB: 8 GiB·passes, a few seconds at most.
    pub const WORK_KIB_MAX: u64 = 8 * 1024 * 1024;
    /// Lanes.
    pub const PARALLELISM_MIN: u32 = 1;
    /// Largest number of lanes.
    pub const PARALLELISM_MAX: u32 = 16;
    /// Shortest salt in bytes (docs/vault-format-1.md, "Header").
    pub const SALT_MIN: usize = 16;
    /// Largest salt.
    pub const SALT_MAX: usize = 64;
    /// XChaCha20-Poly1305 nonce length.
    pub const NONCE_LEN: usize = 24;
    /// Poly1305 tag length: the shortest possible ciphertext.
    pub const TAG_LEN: usize = 16;
}

/// The Argon2id parameters recorded in a vault header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommendation, our default: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
    };
    /// OWASP's minimum for Argon2id, the weakest setting `init` accepts: 19 MiB, 2 passes.
    pub const MINIMUM: KdfParams = KdfParams {
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
    };
    /// The `high` preset: 256 MiB, 4 passes, 1 lane.
    pub const HIGH: KdfParams = KdfParams {
        memory_kib: 262_144,
        iterations: 4,
        parallelism: 1,
    };

    /// Checks the hard bounds every header must satisfy.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] naming the field that is out of bounds.
    pub fn check_bounds(&self) -> Result<()> {
        use bounds::*;
        let bad = |what: &str, v: u64, lo: u64, hi: u64| {
            OpenError::corrupt(format!(
                "the vault header asks for {what} = {v}, outside the accepted range \
                 {lo}..={hi}; the file is corrupt or was not written by this tool"
            ))
        };
        let p = self.parallelism;
        if !(PARALLELISM_MIN..=PARALLELISM_MAX).contains(&p) {
            return Err(bad(
                "kdf.parallelism",
                p.into(),
                PARALLELISM_MIN.into(),
                PARALLELISM_MAX.into(),
            ));
        }
        let m = self.memory_kib;
        let mmin = MEMORY_KIB_MIN.max(8 * p);
        if !(mmin..=MEMORY_KIB_MAX).contains(&m) {
            return Err(bad(
                "kdf.memory_kib",
                m.into(),
                mmin.into(),
                MEMORY_KIB_MAX.into(),
            ));
        }
        let t = self.iterations;
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&t) {
            return Err(bad(
                "kdf.iterations",
                t.into(),
                ITERATIONS_MIN.into(),
                ITERATIONS_MAX.into(),
            ));
        }
        let work = u64::from(m) * u64::from(t);
        if work > WORK_KIB_MAX {
            return Err(bad(
                "kdf.memory_kib × kdf.iterations",
                work,
                0,
                WORK_KIB_MAX,
            ));
        }
        Ok(())
    }

    /// Checks the policy for new vaults: within bounds and at least [`KdfParams::MINIMUM`].
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] saying which setting is too weak or too large.
    pub fn check_policy(&self) -> Result<(), ChangeError> {
        if self.memory_kib < Self::MINIMUM.memory_kib {
            return Err(ChangeError::invalid(format!(
                "--kdf-memory-kib {} is below the minimum of {} KiB (OWASP's floor for Argon2id)",
                self.memory_kib,
                Self::MINIMUM.memory_kib
            )));
        }
        if self.iterations < Self::MINIMUM.iterations {
            return Err(ChangeError::invalid(format!(
                "--kdf-iterations {} is below the minimum of {}",
                self.iterations,
                Self::MINIMUM.iterations
            )));
        }
        self.check_bounds().map_err(|e| ChangeError::invalid(e.to_string()))
    }

    /// Whether these parameters are weaker than the policy minimum for new vaults.
    pub fn below_policy(&self) -> bool {
        self.memory_kib < Self::MINIMUM.memory_kib || self.iterations < Self::MINIMUM.iterations
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct KdfJson {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CipherJson {
    algorithm: String,
    nonce: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct EnvelopeJson<'a> {
    format: String,
    version: u32,
    kdf: KdfJson,
    cipher: CipherJson,
    /// Borrowed from the file's bytes when read: it is nearly all of the file.
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
}

/// A parsed, bounds-checked vault envelope. Public fields are all non-secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// Argon2id salt.
    pub salt: Vec<u8>,
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; 24],
    /// Ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// What a file looks like before a passphrase is involved.
#[derive(Debug)]
pub enum Detected {
    /// A vault envelope (already bounds-checked).
    Vault(Envelope),
    /// A plaintext key store written by the Python tool.
    Legacy,
}

impl Envelope {
    /// Recognises the file: a vault envelope, a plaintext legacy store, or neither.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] for anything that is not a well-formed, in-bounds envelope of
    /// a known version, or a legacy store.
    pub fn detect(bytes: &[u8]) -> Result<Detected> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(OpenError::corrupt(format!(
                "the vault file is larger than {MAX_FILE_BYTES} bytes; it is not a vault"
            )));
        }
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(OpenError::corrupt(
                "the vault file is empty; restore it from a backup, or move it aside and \
                 create a new vault",
            ));
        }
        // A well-formed vault parses straight into the header type, borrowing the base64
        // ciphertext from `bytes`: no JSON tree, no copy of the largest field.
        let typed = serde_json::from_slice::<EnvelopeJson<'_>>(bytes);
        let header_error = match typed {
            Ok(env) => return Envelope::from_json(env).map(Detected::Vault),
            Err(e) => e,
        };
        // Anything else is told apart by a probe that looks at the top-level keys (and, for
        // a legacy store, at each record's keys) while keeping nothing: an unauthenticated
        // file cannot make us build a tree many times its size.
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
            OpenError::corrupt(format!(
                "the vault file is not valid JSON ({}); it is corrupt or not a vault",
                crate::error::json_problem(&e)
            ))
        })?;
        match probe {
            Probe::NotObject => Err(OpenError::corrupt(
                "the vault file is not a JSON object; it is not a vault",
            )),
            Probe::Object {
                vault_like: true, ..
            } => Err(OpenError::corrupt(format!(
                "the vault header is malformed ({})",
                crate::error::json_problem(&header_error)
            ))),
            Probe::Object {
                all_records_legacy: true,
                ..
            } => Ok(Detected::Legacy),
            Probe::Object { .. } => Err(OpenError::corrupt(
                "the file is JSON but neither an mcp-key-vault nor a key store of the Python tool",
            )),
        }
    }

    /// Parses a vault envelope, refusing legacy stores.
    ///
    /// # Errors
    /// As [`Envelope::detect`], plus [`OpenError::Corrupt`] naming `import-legacy` for a legacy store.
    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        match Envelope::detect(bytes)? {
            Detected::Vault(e) => Ok(e),
            Detected::Legacy => Err(legacy_refusal()),
        }
    }

    fn from_json(env: EnvelopeJson) -> Result<Envelope> {
        if env.format != FORMAT {
            return Err(OpenError::corrupt(format!(
                "unknown file format (expected \"{FORMAT}\")"
            )));
        }
        if env.version != VERSION {
            return Err(OpenError::corrupt(format!(
                "vault format version {} is not supported by this build, which reads version \
                 {VERSION}; upgrade mcp-key-manager",
                env.version
            )));
        }
        if env.kdf.algorithm != "argon2id" || env.kdf.version != ARGON2_VERSION {
            return Err(OpenError::corrupt(
                "unsupported key derivation (expected argon2id version 19)",
            ));
        }
        if env.cipher.algorithm != "xchacha20poly1305" {
            return Err(OpenError::corrupt(
                "unsupported cipher (expected xchacha20poly1305)",
            ));
        }
        let kdf = KdfParams {
            memory_kib: env.kdf.memory_kib,
            iterations: env.kdf.iterations,
            parallelism: env.kdf.parallelism,
        };
        kdf.check_bounds()?;
        let salt = decode_bounded(&env.kdf.salt, "kdf.salt", bounds::SALT_MAX)?;
        if salt.len() < bounds::SALT_MIN {
            return Err(OpenError::corrupt(format!(
                "the vault salt is {} bytes, shorter than {}",
                salt.len(),
                bounds::SALT_MIN
            )));
        }
        let nonce_v = decode_bounded(&env.cipher.nonce, "cipher.nonce", bounds::NONCE_LEN)?;
        let nonce: [u8; 24] = nonce_v
            .try_into()
            .map_err(|_| OpenError::corrupt("the vault nonce is not 24 bytes"))?;
        let ciphertext = decode_bounded(&env.ciphertext, "ciphertext", MAX_FILE_BYTES as usize)?;
        if ciphertext.len() < bounds::TAG_LEN {
            return Err(OpenError::corrupt("the vault ciphertext is truncated"));
        }
        Ok(Envelope {
            kdf,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// The canonical associated data: every header field, in a fixed order and spelling,
    /// so changing any of them (a KDF parameter, the version, the salt) fails decryption.
    pub fn associated_data(kdf: &KdfParams, salt: &[u8], nonce: &[u8; 24]) -> Vec<u8> {
        format!(
            "{FORMAT};version={VERSION};kdf=argon2id;kdf.version={ARGON2_VERSION};\
             kdf.memory_kib={};kdf.iterations={};kdf.parallelism={};kdf.salt={};\
             cipher=xchacha20poly1305;cipher.nonce={}",
            kdf.memory_kib,
            kdf.iterations,
            kdf.parallelism,
            B64.encode(salt),
            B64.encode(nonce)
        )
        .into_bytes()
    }

    /// This envelope's associated data.
    pub fn ad(&self) -> Vec<u8> {
        Envelope::associated_data(&self.kdf, &self.salt, &self.nonce)
    }

    /// The file's bytes: pretty JSON with a trailing newline. The base64 ciphertext is
    /// streamed into the output rather than built as a string first: for a large vault that
    /// string would be the largest allocation of a save.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            format: &'a str,
            version: u32,
            kdf: KdfJson,
            cipher: CipherJson,
            ciphertext: Base64Stream<'a>,
        }
        let env = Out {
            format: FORMAT,
            version: VERSION,
            kdf: KdfJson {
                algorithm: "argon2id".into(),
                version: ARGON2_VERSION,
                memory_kib: self.kdf.memory_kib,
                iterations: self.kdf.iterations,
                parallelism: self.kdf.parallelism,
                salt: B64.encode(&self.salt),
            },
            cipher: CipherJson {
                algorithm: "xchacha20poly1305".into(),
                nonce: B64.encode(self.nonce),
            },
            ciphertext: Base64Stream(&self.ciphertext),
        };
        let mut out = Vec::with_capacity(self.ciphertext.len().div_ceil(3) * 4 + 1024);
        serde_json::to_writer_pretty(&mut out, &env)
            .expect("serializing plain structs cannot fail");
        out.push(b'\n');
        out
    }
}

/// Serializes bytes as one base64 string, encoding a chunk at a time.
pub(crate) struct Base64Stream<'a>(pub(crate) &'a [u8]);

impl std::fmt::Display for Base64Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whole groups of three bytes per chunk, so padding can only appear at the end.
        let mut buf = [0u8; 4096];
        for chunk in self.0.chunks(3 * 1024) {
            let n = B64
                .encode_slice(chunk, &mut buf)
                .map_err(|_| std::fmt::Error)?;
            f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

impl Serialize for Base64Stream<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the top level of a JSON file looks like, learnt without keeping any of it.
enum Probe {
    NotObject,
    Object {
        /// It has a `format` or `ciphertext` field: meant to be a vault.
        vault_like: bool,
        /// Every value is an object with a `key_value` or `key_id` field (an empty object
        /// counts: the Python tool wrote `{}` when it had no keys).
        all_records_legacy: bool,
    },
}

/// Visitor methods that accept any JSON scalar (keeping nothing) as `$v`.
macro_rules! scalars_are {
    ($v:expr) => {
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok($v)
        }
    };
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        use std::borrow::Cow;

        /// Whether one top-level value is an object with a `key_value` or `key_id` field.
        struct RecordProbe(bool);
        impl<'de> Deserialize<'de> for RecordProbe {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = RecordProbe;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> std::result::Result<RecordProbe, A::Error> {
                        let mut found = false;
                        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                            found |= k == "key_value" || k == "key_id";
                            m.next_value::<IgnoredAny>()?;
                        }
                        Ok(RecordProbe(found))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut s: A,
                    ) -> std::result::Result<RecordProbe, A::Error> {
                        while s.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(RecordProbe(false))
                    }
                    scalars_are!(RecordProbe(false));
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Probe, A::Error> {
                let mut vault_like = false;
                let mut all_records_legacy = true;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "format" || k == "ciphertext" {
                        vault_like = true;
                        m.next_value::<IgnoredAny>()?;
                    } else {
                        all_records_legacy &= m.next_value::<RecordProbe>()?.0;
                    }
                }
                Ok(Probe::Object {
                    vault_like,
                    all_records_legacy: all_records_legacy && !vault_like,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<Probe, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Probe::NotObject)
            }
            scalars_are!(Probe::NotObject);
        }
        d.deserialize_any(V)
    }
}

/// The refusal every command gives when pointed at a plaintext store of the Python tool.
pub fn legacy_refusal() -> OpenError {
    OpenError::LegacyStore
}

fn decode_bounded(s: &str, field: &str, max: usize) -> Result<Vec<u8>> {
    // Base64 grows by 4/3: refuse before decoding anything larger than the bound allows.
    if s.len() > max.div_ceil(3) * 4 {
        return Err(OpenError::corrupt(format!(
            "the vault field {field} is too long"
        )));
    }
    let bytes = B64
        .decode(s)
        .map_err(|_| OpenError::corrupt(format!("the vault field {field} is not valid base64")))?;
    // The length check above admits up to two bytes more than `max` (88 base64 characters
    // hold 66 bytes); the bound is on the decoded bytes.
    if bytes.len() > max {
        return Err(OpenError::corrupt(format!(
            "the vault field {field} is too long"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            kdf: KdfParams::MINIMUM,
            salt: vec![7; 16],
            nonce: [9; 24],
            ciphertext: vec![1; 40],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Envelope::parse(&e.to_bytes()).unwrap(), e);
        // Lengths around the 3,072-byte chunk boundary of the streamed base64.
        for len in [16, 17, 18, 3071, 3072, 3073, 3074, 10_000] {
            let e = Envelope {
                ciphertext: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
                ..sample()
            };
            let text = String::from_utf8(e.to_bytes()).unwrap();
            assert!(text.contains(&B64.encode(&e.ciphertext)), "{len}");
            assert_eq!(Envelope::parse(text.as_bytes()).unwrap(), e, "{len}");
        }
    }

    #[test]
    fn associated_data_changes_with_every_field() {
        let e = sample();
        let base = e.ad();
        let mut k = e.kdf;
        k.memory_kib += 1;
        assert_ne!(Envelope::associated_data(&k, &e.salt, &e.nonce), base);
        let mut k = e.kdf;
        k.iterations += 1;
        assert_ne!(Envelope::associated_data(&k, &e.salt, &e.nonce), base);
        let mut k = e.kdf;
        k.parallelism += 1;
        assert_ne!(Envelope::associated_data(&k, &e.salt, &e.nonce), base);
        assert_ne!(Envelope::associated_data(&e.kdf, &[8; 16], &e.nonce), base);
        assert_ne!(Envelope::associated_data(&e.kdf, &e.salt, &[0; 24]), base);
    }

    #[test]
    fn bounds_refuse_huge_requests() {
        for (m, t, p) in [
            (4 * 1024 * 1024, 3, 1),
            (65536, 4_000_000_000, 1),
            (65536, 3, 0),
            (65536, 3, 255),
            (4, 3, 1),
            (65536, 0, 1),
            (2 * 1024 * 1024, 64, 1),
        ] {
            let k = KdfParams {
                memory_kib: m,
                iterations: t,
                parallelism: p,
            };
            assert!(
                matches!(k.check_bounds(), Err(OpenError::Corrupt { .. })),
                "{m} {t} {p}"
            );
        }
        KdfParams::DEFAULT.check_bounds().unwrap();
        KdfParams::MINIMUM.check_policy().unwrap();
        assert!(KdfParams {
            memory_kib: 19455,
            ..KdfParams::MINIMUM
        }
        .check_policy()
        .is_err());
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        let variants = [
            good.replacen("\"version\": 1", "\"version\": 2", 1),
            good.replacen("\"format\": \"mcp-key-vault\"", "\"format\": \"other\"", 1),
            good.replacen("\"ciphertext\"", "\"extra\": 1, \"ciphertext\"", 1),
            good.replacen("argon2id", "argon2i", 1),
            good.replacen("xchacha20poly1305", "aes256gcm", 1),
            good.replacen("\"version\": 19", "\"version\": 16", 1),
        ];
        for v in variants {
            assert_ne!(v, good);
            assert!(
                matches!(Envelope::parse(v.as_bytes()), Err(OpenError::Corrupt { .. })),
                "{v}"
            );
        }
    }

    #[test]
    fn detection_tells_vaults_legacy_stores_and_garbage_apart() {
        let k = "ab".repeat(32);
        for legacy in [
            "{}".to_string(),
            format!(r#"{{"a1": {{"key_id": "a1", "key_value": "{k}"}}}}"#),
            format!(
                r#"{{"a1": {{"nested": [1, {{"x": 2}}], "key_value": "{k}"}}, "b": {{"key_id": "b"}}}}"#
            ),
        ] {
            assert!(
                matches!(Envelope::detect(legacy.as_bytes()), Ok(Detected::Legacy)),
                "{legacy}"
            );
        }
        for (bad, words) in [
            ("[0, 0, 0]", "not a JSON object"),
            ("\"text\"", "not a JSON object"),
            (r#"{"a1": {"name": "x"}}"#, "neither"),
            (r#"{"a1": [1]}"#, "neither"),
            (r#"{"format": "mcp-key-vault"}"#, "header is malformed"),
            (r#"{"ciphertext": "AA=="}"#, "header is malformed"),
            ("{\"a\": ", "not valid JSON"),
        ] {
            let e = Envelope::detect(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        for b in [
            &b""[..],
            b"   ",
            b"\x00\xff",
            b"[]",
            b"{}",
            b"{\"format\": 1}",
            b"null",
        ] {
            assert!(
                matches!(Envelope::parse(b), Err(e) if e.category() == crate::error::Category::Corrupt)
            );
        }
    }
}
