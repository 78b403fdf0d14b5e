//! mcp-key-manager: create, store and verify the API keys that guard MCP servers.
//!
//! The vault (`keys.json`) is a JSON envelope around an XChaCha20-Poly1305 ciphertext whose
//! key is derived from a passphrase with Argon2id; keys are verified through HMAC-SHA256
//! keyed hashes, never by comparing plaintext. Servers written in Rust can verify keys
//! with [`verify::Verifier`] and [`verify::api_key_from_headers`].
//!
//! Layers point one way: `cli` (clap types) → `commands` → `vault`, `envfile`,
//! `passphrase`, `verify`, `fsio`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
#[allow(missing_docs)] // clap derives its help from the doc comments; fields need none.
pub mod cli;
pub mod commands;
pub mod display;
pub mod envfile;
pub mod error;
pub mod fsio;
pub mod keyfmt;
pub mod legacy;
pub mod passphrase;
pub mod rng;
pub mod secret;
pub mod sys;
pub mod vault;
pub mod verify;

pub use error::{Error, Result};
pub use secret::{SecretBytes, SecretKey, SecretString};
pub use vault::{KdfParams, Vault};
pub use verify::{api_key_from_headers, Code, Verdict, Verifier};
