//! The format-2 envelope: a JSON header with 1 to 32 slots, its hard bounds, and the
//! canonical associated data that binds every header field to the payload ciphertext.
//!
//! This module knows bytes and bounds, never passphrases, identities or keys. Invariant:
//! nothing that leaves [`Header::parse`] can make the caller allocate or compute beyond
//! [`bounds`] (slot count, field sizes, each passphrase slot's KDF parameters), slot ids
//! and recipients are unique, and every field is part of [`Header::associated_data`].

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::format::{self, KdfParams, ARGON2_VERSION, FORMAT, MAX_FILE_BYTES};
use mcp_key_verifier::time::{format as fmt_time, parse as parse_time};

/// The format version this module reads and writes.
pub const VERSION: u32 = 2;

/// Hard bounds on a format-2 header, checked before any key derivation or decryption.
pub mod bounds {
    /// Most slots a vault may have.
    pub const MAX_SLOTS: usize = 32;
    /// A slot id: 8 lowercase hex characters.
    pub const SLOT_ID_LEN: usize = 8;
    /// Longest label, in bytes.
    pub const LABEL_MAX: usize = 64;
    /// Longest `created_at` text.
    pub const TIME_MAX: usize = 64;
    /// Longest recipient string (`age1…` is 62; plugin recipients are longer).
    pub const RECIPIENT_MAX: usize = 1024;
    /// Largest wrapped data key (an age file of 32 bytes: about 230 bytes for X25519, a
    /// few hundred for hardware plugins).
    pub const WRAPPED_MAX: usize = 8192;
    /// A sealed X25519 identity: the 74-character `AGE-SECRET-KEY-1…` string + the tag.
    pub const SEALED_IDENTITY_LEN: usize = 74 + super::format::bounds::TAG_LEN;
}

/// What unlocks a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// A passphrase: Argon2id(passphrase, salt) opens `sealed_identity`, an age X25519
    /// identity whose recipient is the slot's `recipient`.
    Passphrase {
        /// Argon2id parameters (bounded like format 1's).
        kdf: KdfParams,
        /// Argon2id salt, 16-64 bytes.
        salt: Vec<u8>,
        /// XChaCha20-Poly1305 nonce of the sealed identity.
        nonce: [u8; 24],
        /// The identity string sealed under the derived key.
        sealed_identity: Vec<u8>,
        /// HMAC-SHA256 under the derived key over the slot id and the vault's public key
        /// (`slots::binding`): only whoever knows the passphrase can make it, so it proves
        /// the slot belongs to this vault and was not copied into another. `None` in slots
        /// made before binding (bound at the next save by whoever opens them).
        binding: Option<[u8; 32]>,
    },
    /// An age recipient, native (`age1…`) or a plugin's (`age1yubikey1…`, …).
    Age,
}

impl SlotKind {
    /// `passphrase` or `age`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SlotKind::Passphrase { .. } => "passphrase",
            SlotKind::Age => "age",
        }
    }
}

/// One way to unlock the vault. All fields are public information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// 8 lowercase hex characters, unique in the vault.
    pub id: String,
    /// Free text, possibly empty; unique when not empty.
    pub label: String,
    /// When the slot was added.
    pub created_at: DateTime<Utc>,
    /// The age recipient the data key is wrapped to (for a passphrase slot, the public
    /// half of its sealed identity).
    pub recipient: String,
    /// Passphrase or age.
    pub kind: SlotKind,
    /// An age file (binary) whose plaintext is the 32-byte data key.
    pub wrapped_key: Vec<u8>,
}

/// A parsed, bounds-checked format-2 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 to 32 slots.
    pub slots: Vec<Slot>,
    /// XChaCha20-Poly1305 nonce of the payload.
    pub nonce: [u8; 24],
    /// The payload ciphertext with its tag.
    pub ciphertext: Vec<u8>,
    /// The vault's signature of this save; `None` in vaults written before signing.
    pub signature: Option<VaultSignature>,
    /// The organisation prefix new keys carry (`init --key-prefix`), if one was set.
    pub key_prefix: Option<String>,
}

/// A save's signature by the vault's Ed25519 key (its public half is part of the
/// associated data; the secret half is in the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSignature {
    /// The vault's public key.
    pub public_key: [u8; 32],
    /// Ed25519 over [`Header::signed_message`].
    pub signature: [u8; 64],
}

/// What a vault signature covers before the associated data.
const SIGNATURE_CONTEXT: &[u8] = b"mcp-key-vault/2/signature\n";
/// What a save digest covers before the associated data.
const SAVE_CONTEXT: &[u8] = b"mcp-key-vault/2/save\n";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfJson<'a> {
    #[serde(borrow)]
    algorithm: Cow<'a, str>,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    #[serde(borrow)]
    salt: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedJson<'a> {
    #[serde(borrow)]
    nonce: Cow<'a, str>,
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotJson<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    label: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow)]
    recipient: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    kdf: Option<KdfJson<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    identity: Option<SealedJson<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    binding: Option<Cow<'a, str>>,
    #[serde(borrow)]
    wrapped_key: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherJson<'a> {
    #[serde(borrow)]
    algorithm: Cow<'a, str>,
    #[serde(borrow)]
    nonce: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson<'a> {
    #[serde(borrow)]
    algorithm: Cow<'a, str>,
    #[serde(borrow)]
    public_key: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderJson<'a> {
    #[serde(borrow)]
    format: Cow<'a, str>,
    version: u32,
    #[serde(borrow)]
    slots: BoundedSlots<'a>,
    #[serde(borrow)]
    cipher: CipherJson<'a>,
    #[serde(default, borrow)]
    key_prefix: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    signature: Option<SignatureJson<'a>>,
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
}

/// A slot list that stops reading at one past the bound, so a file listing a million
/// slots never becomes a million parsed slots.
struct BoundedSlots<'a>(Vec<SlotJson<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for BoundedSlots<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = BoundedSlots<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a list of at most {} slots", bounds::MAX_SLOTS)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(slot) = s.next_element::<SlotJson<'a>>()? {
                    if out.len() == bounds::MAX_SLOTS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {} slots",
                            bounds::MAX_SLOTS
                        )));
                    }
                    out.push(slot);
                }
                Ok(BoundedSlots(out))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// The two fields every version has, read while skipping the rest.
#[derive(Deserialize)]
struct VersionProbe<'a> {
    #[serde(borrow, default)]
    format: Option<Cow<'a, str>>,
    #[serde(default)]
    version: Option<serde_json::Value>,
}

/// What a vault file is, before any secret is involved.
#[derive(Debug)]
pub enum Detected {
    /// A format-1 vault (bounds-checked).
    V1(format::Envelope),
    /// A format-2 vault (bounds-checked).
    V2(Header),
    /// A plaintext store of the Python tool.
    Legacy,
}

/// Recognises a vault of either format, a legacy store, or neither.
///
/// # Errors
/// [`OpenError::Corrupt`] for anything else, including versions other than 1 and 2.
pub fn detect(bytes: &[u8]) -> Result<Detected> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(OpenError::corrupt(format!(
            "the vault file is larger than {MAX_FILE_BYTES} bytes; it is not a vault"
        )));
    }
    // A format-2 file in the writer's layout is recognised without scanning its ciphertext
    // (what `Header::parse` accepts this way, the probe below would send to it as well).
    if let Some(h) = parse_cut(bytes) {
        return Ok(Detected::V2(h));
    }
    if let Ok(p) = serde_json::from_slice::<VersionProbe<'_>>(bytes) {
        if p.format.as_deref() == Some(FORMAT) {
            match p.version.as_ref().and_then(serde_json::Value::as_u64) {
                // The parse without the ciphertext's text was tried above.
                Some(2) => return Header::from_json(bytes, None).map(Detected::V2),
                Some(1) => {}
                _ => {
                    return Err(OpenError::corrupt(format!(
                        "vault format version {} is not supported by this build, which reads \
                         versions 1 and 2; upgrade mcp-key-manager",
                        p.version
                            .map(|v| crate::display::sanitize(&v.to_string()).to_string())
                            .unwrap_or_else(|| "(missing)".into())
                    )))
                }
            }
        }
    }
    match format::Envelope::detect(bytes)? {
        format::Detected::Vault(e) => Ok(Detected::V1(e)),
        format::Detected::Legacy => Ok(Detected::Legacy),
    }
}

fn parse_signature(s: &SignatureJson<'_>) -> Result<VaultSignature> {
    if s.algorithm != "ed25519" {
        return Err(corrupt(
            "unsupported signature algorithm (expected ed25519)",
        ));
    }
    let public_key = decode_exact(s.public_key.as_bytes(), "signature.public_key", 32, 32)?;
    let signature = decode_exact(s.value.as_bytes(), "signature.value", 64, 64)?;
    Ok(VaultSignature {
        public_key: public_key.try_into().expect("32 bytes"),
        signature: signature.try_into().expect("64 bytes"),
    })
}

fn corrupt(what: impl std::fmt::Display) -> OpenError {
    OpenError::corrupt(format!(
        "the vault header is malformed ({what}); the file is corrupt or was not written by \
         this tool"
    ))
}

/// How the writer's file goes on at the ciphertext's base64, and how it ends after it.
const CIPHERTEXT_OPENS: &[u8] = b"\"ciphertext\": \"";
const CIPHERTEXT_CLOSES: &[u8] = b"\"\n}\n";

/// The header of a file in the writer's layout, parsed with the ciphertext's text cut out
/// ([`split_ciphertext`]); `None` for any other layout or any failure (the whole parse
/// then decides).
fn parse_cut(bytes: &[u8]) -> Option<Header> {
    let (json, text) = split_ciphertext(bytes)?;
    Header::from_json(&json, Some(text)).ok()
}

/// The JSON text of a file laid out as [`Header::to_bytes`] writes it, ending
/// `"ciphertext": "<base64>"\n}\n`, with the base64 cut out (`"ciphertext": ""`), and the
/// base64. `None` for any other layout.
///
/// Parsing the rest instead of the whole gives the same header or none: the text cut out
/// holds no quote (it is what follows the last one), so it is one JSON string's content,
/// the last value of the outermost object (only `\n}\n` follows), and its key is the
/// outermost `ciphertext` (unknown and repeated fields are refused); the base64 decoder
/// then refuses anything in it that is not base64, backslashes and controls included.
fn split_ciphertext(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    // Everything before the ciphertext (32 slots at their largest) is well under 1 MiB: a
    // file whose last string starts later is not the writer's, and is not copied.
    const BEFORE_MAX: usize = 1 << 20;
    let body = bytes.strip_suffix(CIPHERTEXT_CLOSES)?;
    let open = memchr::memrchr(b'"', body)?;
    if open > BEFORE_MAX || !body[..=open].ends_with(CIPHERTEXT_OPENS) {
        return None;
    }
    let mut json = Vec::with_capacity(open + 1 + CIPHERTEXT_CLOSES.len());
    json.extend_from_slice(&body[..=open]);
    json.extend_from_slice(CIPHERTEXT_CLOSES);
    Some((json, &body[open + 1..]))
}

fn decode_exact(s: impl AsRef<[u8]>, field: &str, min: usize, max: usize) -> Result<Vec<u8>> {
    let s = s.as_ref();
    if s.len() > max.div_ceil(3) * 4 {
        return Err(corrupt(format_args!("{field} is too long")));
    }
    // SIMD base64: the ciphertext is nearly all of the file. As strict as `B64` (padding
    // required, no stray bits, no whitespace): `simd_base64_is_the_strict_standard`.
    let v = base64_simd::STANDARD
        .decode_to_vec(s)
        .map_err(|_| corrupt(format_args!("{field} is not valid base64")))?;
    if v.len() < min || v.len() > max {
        return Err(corrupt(format_args!(
            "{field} is {} bytes, outside {min}..={max}",
            v.len()
        )));
    }
    Ok(v)
}

fn nonce24(s: &str, field: &str) -> Result<[u8; 24]> {
    let v = decode_exact(s, field, 24, 24)?;
    let mut n = [0u8; 24];
    n.copy_from_slice(&v);
    Ok(n)
}

/// Whether `id` is a slot id: 8 lowercase hex characters.
pub fn is_slot_id(id: &str) -> bool {
    id.len() == bounds::SLOT_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `label` is acceptable: at most 64 bytes, no control characters, not shaped like
/// a slot id (so `--slot X` is never ambiguous).
pub fn label_problem(label: &str) -> Option<&'static str> {
    if label.len() > bounds::LABEL_MAX {
        Some("a slot label is longer than 64 bytes")
    } else if label.chars().any(char::is_control) {
        Some("a slot label contains a control character")
    } else if is_slot_id(label) {
        Some("a slot label must not look like a slot id (8 hex characters)")
    } else {
        None
    }
}

/// What kind of age recipient a string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientKind {
    /// `age1…`.
    X25519,
    /// `age1<plugin>1…`, with the plugin's name.
    Plugin(String),
}

/// Parses an age recipient string.
///
/// # Errors
/// A message saying what is wrong (the caller picks the error kind).
pub fn recipient_kind(r: &str) -> std::result::Result<RecipientKind, String> {
    if r.len() > bounds::RECIPIENT_MAX {
        return Err("an age recipient is longer than 1024 characters".into());
    }
    if r.parse::<age::x25519::Recipient>().is_ok() {
        return Ok(RecipientKind::X25519);
    }
    match r.parse::<age::plugin::Recipient>() {
        Ok(p) => Ok(RecipientKind::Plugin(p.plugin().to_string())),
        Err(_) => Err(
            "not an age recipient (expected age1… or a plugin recipient such as age1yubikey1…)"
                .into(),
        ),
    }
}

impl Header {
    /// Parses and bounds-checks a format-2 file.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] naming the first problem.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(corrupt("the file is larger than the vault bound"));
        }
        // A file laid out as the writer lays it out is parsed without its ciphertext's
        // text (nearly all of the file), which serde_json would otherwise scan character
        // by character for escapes base64 never holds; anything else, and any failure,
        // takes the whole parse, so errors are the same either way.
        if let Some(h) = parse_cut(bytes) {
            return Ok(h);
        }
        Header::from_json(bytes, None)
    }

    /// Parses the whole file, or (with `ciphertext`) a file whose ciphertext's text was cut
    /// out and is given apart.
    pub fn from_json(bytes: &[u8], ciphertext: Option<&[u8]>) -> Result<Header> {
        let h: HeaderJson<'_> = serde_json::from_slice(bytes).map_err(|e| {
            if e.to_string().starts_with("more than") {
                corrupt(format_args!("more than {} slots", bounds::MAX_SLOTS))
            } else {
                corrupt(crate::error::json_problem(&e))
            }
        })?;
        if h.format != FORMAT {
            return Err(corrupt("format is not mcp-key-vault"));
        }
        if h.version != VERSION {
            return Err(OpenError::corrupt(format!(
                "vault format version {} is not supported by this reader of version {VERSION}",
                h.version
            )));
        }
        if h.cipher.algorithm != "xchacha20poly1305" {
            return Err(corrupt("unsupported cipher (expected xchacha20poly1305)"));
        }
        let slots_json = h.slots.0;
        if slots_json.is_empty() {
            return Err(corrupt("a vault needs at least one slot"));
        }
        let mut slots = Vec::with_capacity(slots_json.len());
        for s in &slots_json {
            slots.push(parse_slot(s)?);
        }
        check_unique(&slots)?;
        let nonce = nonce24(&h.cipher.nonce, "cipher.nonce")?;
        let text = match ciphertext {
            Some(text) if h.ciphertext.is_empty() => text,
            Some(_) => return Err(corrupt("the ciphertext was not where it was cut out")),
            None => h.ciphertext.as_bytes(),
        };
        let ciphertext = decode_exact(
            text,
            "ciphertext",
            format::bounds::TAG_LEN,
            MAX_FILE_BYTES as usize,
        )?;
        let signature = h.signature.as_ref().map(parse_signature).transpose()?;
        let key_prefix = match h.key_prefix {
            Some(p) if crate::keyfmt::is_org_prefix(&p) => Some(p.into_owned()),
            Some(_) => return Err(corrupt("key_prefix is not a key prefix")),
            None => None,
        };
        // The signature is checked once the payload has authenticated the header
        // (`Sealing::open`): a changed header field fails decryption first, as it always
        // did, and a signature that does not verify means the file was re-signed or
        // damaged after.
        Ok(Header {
            slots,
            nonce,
            ciphertext,
            signature,
            key_prefix,
        })
    }

    /// The bytes a vault signature covers: a context, the associated data (which holds
    /// the public key) and the SHA-256 of the ciphertext.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        self.covered(&mut m);
        m
    }

    fn covered(&self, m: &mut Vec<u8>) {
        use sha2::{Digest, Sha256};
        m.extend_from_slice(&self.ad());
        m.extend_from_slice(&Sha256::digest(&self.ciphertext));
    }

    /// A digest that names this save (every save has a fresh nonce): what a verifier
    /// published from it carries as `save_digest`, 64 lowercase hex characters.
    pub fn save_digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut m = SAVE_CONTEXT.to_vec();
        self.covered(&mut m);
        Sha256::digest(&m).into()
    }

    /// Checks the signature, when there is one.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] when it does not verify: the file was changed by someone
    /// without the vault's signing key.
    pub fn check_signature(&self) -> Result<()> {
        let Some(sig) = &self.signature else {
            return Ok(());
        };
        let bad = || {
            OpenError::corrupt(format!(
                "the vault's signature by {} does not verify: the file was changed by someone \
                 without the vault's signing key; restore it from a backup",
                mcp_key_verifier::fingerprint(&sig.public_key)
            ))
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&sig.public_key).map_err(|_| bad())?;
        key.verify_strict(
            &self.signed_message(),
            &ed25519_dalek::Signature::from_bytes(&sig.signature),
        )
        .map_err(|_| bad())
    }

    /// The fingerprint of the vault that signed this file, if it is signed (as the header
    /// says: it is proven only once the vault is unlocked, see [`Header::check_signature`]).
    pub fn fingerprint(&self) -> Option<String> {
        self.signature
            .as_ref()
            .map(|s| mcp_key_verifier::fingerprint(&s.public_key))
    }

    /// The canonical associated data of the payload: every header field, each written as
    /// `name:length:value\n`, so no field can change (or move between slots) unnoticed.
    pub fn associated_data(
        slots: &[Slot],
        nonce: &[u8; 24],
        public_key: Option<&[u8; 32]>,
        key_prefix: Option<&str>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 512 * slots.len());
        let mut field = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(format!(":{}:", value.len()).as_bytes());
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        };
        field("format", FORMAT);
        field("version", &VERSION.to_string());
        field("slots", &slots.len().to_string());
        for s in slots {
            field("slot.id", &s.id);
            field("slot.kind", s.kind.as_str());
            field("slot.label", &s.label);
            field("slot.created_at", &fmt_time(&s.created_at));
            field("slot.recipient", &s.recipient);
            if let SlotKind::Passphrase {
                kdf,
                salt,
                nonce,
                sealed_identity,
                binding,
            } = &s.kind
            {
                field("slot.kdf.algorithm", "argon2id");
                field("slot.kdf.version", &ARGON2_VERSION.to_string());
                field("slot.kdf.memory_kib", &kdf.memory_kib.to_string());
                field("slot.kdf.iterations", &kdf.iterations.to_string());
                field("slot.kdf.parallelism", &kdf.parallelism.to_string());
                field("slot.kdf.salt", &B64.encode(salt));
                field("slot.identity.nonce", &B64.encode(nonce));
                field("slot.identity.ciphertext", &B64.encode(sealed_identity));
                if let Some(b) = binding {
                    field("slot.binding", &B64.encode(b));
                }
            }
            field("slot.wrapped_key", &B64.encode(&s.wrapped_key));
        }
        field("cipher.algorithm", "xchacha20poly1305");
        field("cipher.nonce", &B64.encode(nonce));
        if let Some(p) = key_prefix {
            field("key_prefix", p);
        }
        if let Some(pk) = public_key {
            field("signature.algorithm", "ed25519");
            field("signature.public_key", &B64.encode(pk));
        }
        out
    }

    /// This header's associated data.
    pub fn ad(&self) -> Vec<u8> {
        Header::associated_data(
            &self.slots,
            &self.nonce,
            self.signature.as_ref().map(|s| &s.public_key),
            self.key_prefix.as_deref(),
        )
    }

    /// The file's bytes: pretty JSON with a trailing newline; the base64 ciphertext is
    /// streamed into the output rather than built as a string first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.ciphertext.len().div_ceil(3) * 4 + 4096);
        self.write_to(&mut buf)
            .expect("writing to a Vec cannot fail");
        buf
    }

    /// Writes the file [`Header::to_bytes`] gives, the ciphertext's base64 in pieces of
    /// at most 1 MiB, so a large vault is never held as text in memory as a whole.
    ///
    /// # Errors
    /// A failed write.
    pub fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        w.write_all(&self.json_before_ciphertext())?;
        // Whole groups of 3 bytes per piece, so only the last piece is padded.
        const PIECE: usize = 3 * 256 * 1024;
        let mut text = Vec::with_capacity(PIECE / 3 * 4);
        for piece in self.ciphertext.chunks(PIECE) {
            text.clear();
            base64_simd::STANDARD.encode_append(piece, &mut text);
            w.write_all(&text)?;
        }
        w.write_all(CIPHERTEXT_CLOSES)
    }

    /// The file's JSON up to the opening quote of the ciphertext. The ciphertext, the last
    /// field and nearly all of the file, is base64 written straight into place after it:
    /// serde_json would scan every one of its characters for escapes that base64 never
    /// needs.
    fn json_before_ciphertext(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            format: &'a str,
            version: u32,
            slots: Vec<SlotJson<'a>>,
            cipher: CipherJson<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            key_prefix: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            signature: Option<SignatureJson<'a>>,
            ciphertext: &'a str,
        }
        let out = Out {
            format: FORMAT,
            version: VERSION,
            slots: self.slots.iter().map(slot_json).collect(),
            cipher: CipherJson {
                algorithm: "xchacha20poly1305".into(),
                nonce: B64.encode(self.nonce).into(),
            },
            key_prefix: self.key_prefix.as_deref(),
            signature: self.signature.as_ref().map(|s| SignatureJson {
                algorithm: "ed25519".into(),
                public_key: B64.encode(s.public_key).into(),
                value: B64.encode(s.signature).into(),
            }),
            ciphertext: "",
        };
        let mut head = Vec::with_capacity(4096);
        serde_json::to_writer_pretty(&mut head, &out)
            .expect("serializing plain structs cannot fail");
        // serde_json ends it `"ciphertext": ""\n}`: the base64 goes between the quotes.
        let closes = &CIPHERTEXT_CLOSES[..CIPHERTEXT_CLOSES.len() - 1];
        assert!(
            head.ends_with(closes),
            "the ciphertext is the header's last field"
        );
        head.truncate(head.len() - closes.len());
        assert!(
            head.ends_with(CIPHERTEXT_OPENS),
            "the ciphertext is the header's last field"
        );
        head
    }
}

/// A slot as the file spells it.
fn slot_json(s: &Slot) -> SlotJson<'_> {
    let (kdf, identity, binding) = match &s.kind {
        SlotKind::Passphrase {
            kdf,
            salt,
            nonce,
            sealed_identity,
            binding,
        } => (
            Some(KdfJson {
                algorithm: "argon2id".into(),
                version: ARGON2_VERSION,
                memory_kib: kdf.memory_kib,
                iterations: kdf.iterations,
                parallelism: kdf.parallelism,
                salt: B64.encode(salt).into(),
            }),
            Some(SealedJson {
                nonce: B64.encode(nonce).into(),
                ciphertext: B64.encode(sealed_identity).into(),
            }),
            binding.map(|b| B64.encode(b).into()),
        ),
        SlotKind::Age => (None, None, None),
    };
    SlotJson {
        id: s.id.as_str().into(),
        kind: s.kind.as_str().into(),
        label: s.label.as_str().into(),
        created_at: fmt_time(&s.created_at).into(),
        recipient: s.recipient.as_str().into(),
        kdf,
        identity,
        binding,
        wrapped_key: B64.encode(&s.wrapped_key).into(),
    }
}

fn parse_slot(s: &SlotJson<'_>) -> Result<Slot> {
    if !is_slot_id(&s.id) {
        return Err(corrupt("a slot id is not 8 lowercase hex characters"));
    }
    if let Some(p) = label_problem(&s.label) {
        return Err(corrupt(p));
    }
    if s.created_at.len() > bounds::TIME_MAX {
        return Err(corrupt("a slot's created_at is too long"));
    }
    let created_at =
        parse_time(&s.created_at).ok_or_else(|| corrupt("a slot's created_at is not RFC 3339"))?;
    // One spelling per time (`…T…Z`, as written), so the associated data, which holds the
    // canonical spelling, covers the text itself: `t`/`z` or `+00:00` are refused.
    if fmt_time(&created_at) != s.created_at {
        return Err(corrupt("a slot's created_at is not in the canonical form"));
    }
    let rkind = recipient_kind(&s.recipient).map_err(corrupt)?;
    let wrapped_key = decode_exact(
        s.wrapped_key.as_bytes(),
        "slot.wrapped_key",
        1,
        bounds::WRAPPED_MAX,
    )?;
    let kind = match (&*s.kind, &s.kdf, &s.identity) {
        ("passphrase", Some(k), Some(id)) => {
            if k.algorithm != "argon2id" || k.version != ARGON2_VERSION {
                return Err(corrupt(
                    "unsupported key derivation (expected argon2id version 19)",
                ));
            }
            let kdf = KdfParams {
                memory_kib: k.memory_kib,
                iterations: k.iterations,
                parallelism: k.parallelism,
            };
            kdf.check_bounds()?;
            let salt = decode_exact(
                k.salt.as_bytes(),
                "slot.kdf.salt",
                format::bounds::SALT_MIN,
                format::bounds::SALT_MAX,
            )?;
            if rkind != RecipientKind::X25519 {
                return Err(corrupt(
                    "a passphrase slot's recipient is not an X25519 recipient",
                ));
            }
            SlotKind::Passphrase {
                kdf,
                salt,
                nonce: nonce24(&id.nonce, "slot.identity.nonce")?,
                sealed_identity: decode_exact(
                    id.ciphertext.as_bytes(),
                    "slot.identity.ciphertext",
                    bounds::SEALED_IDENTITY_LEN,
                    bounds::SEALED_IDENTITY_LEN,
                )?,
                binding: s
                    .binding
                    .as_ref()
                    .map(|b| decode_exact(b.as_bytes(), "slot.binding", 32, 32))
                    .transpose()?
                    .map(|b| b.try_into().expect("32 bytes")),
            }
        }
        ("age", None, None) if s.binding.is_some() => {
            return Err(corrupt("an age slot has no binding"))
        }
        ("age", None, None) => SlotKind::Age,
        ("passphrase" | "age", _, _) => {
            return Err(corrupt(
                "a passphrase slot needs kdf and identity, an age slot has neither",
            ))
        }
        _ => return Err(corrupt("unknown slot kind")),
    };
    Ok(Slot {
        id: s.id.to_string(),
        label: s.label.to_string(),
        created_at,
        recipient: s.recipient.to_string(),
        kind,
        wrapped_key,
    })
}

/// Ids, recipients and non-empty labels are unique: a list that repeats a recipient would
/// let one identity count as several members, and repeated ids or labels make `--slot`
/// ambiguous.
pub fn check_unique(slots: &[Slot]) -> Result<()> {
    for (i, a) in slots.iter().enumerate() {
        for b in &slots[..i] {
            if a.id == b.id {
                return Err(corrupt("two slots have the same id"));
            }
            if a.recipient == b.recipient {
                return Err(corrupt("two slots have the same recipient"));
            }
            if !a.label.is_empty() && a.label == b.label {
                return Err(corrupt("two slots have the same label"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
