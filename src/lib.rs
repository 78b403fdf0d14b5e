//! mcp-key-manager: create, store and verify the API keys that guard MCP servers.
//!
//! The vault (`keys.json`) is a JSON envelope around an XChaCha20-Poly1305 ciphertext whose
//! key is derived from a passphrase with Argon2id; keys are verified through HMAC-SHA256
//! keyed hashes, never by comparing plaintext.
//!
//! What a library user needs is re-exported at the top: the vault ([`Vault`], opened and
//! changed through its [`Store`]), the server side ([`Verifier`], [`api_key_from_headers`],
//! [`Verdict`], [`Code`]), the secret types and the key format ([`keyfmt`]). The modules
//! marked hidden serve the binary, the tests, the fuzz targets and the benchmarks; they are
//! not a stable API.
//!
//! Layers point one way: `cli` (clap types) → `commands` → `vault`, `publish`, `envstore`,
//! `envfile`, `passphrase`, `verify`, `fsio`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod agent;
#[doc(hidden)]
#[allow(missing_docs)] // clap derives its help from the doc comments; fields need none.
pub mod cli;
#[doc(hidden)]
pub mod commands;
#[doc(hidden)]
pub mod envfile;
#[doc(hidden)]
pub mod envstore;
#[doc(hidden)]
pub mod passphrase;
#[doc(hidden)]
pub mod publish;
pub mod serve;
#[doc(hidden)]
pub mod sys;

pub use mcp_key_vault as vault;
pub use mcp_key_vault::{display, error, fsio, keyfmt, legacy, rng, secret, verify};

pub use error::{Error, Result};
pub use secret::{SecretBytes, SecretKey, SecretString};
pub use vault::{KdfParams, KeyHash, KeyId, Permission, Store, Vault};
pub use verify::{api_key_from_headers, Code, Verdict, Verifier};
