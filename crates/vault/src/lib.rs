//! The vault of mcp-key-manager: the encrypted file that holds the keys, in formats 1 and
//! 2, its crypto, the file protocol (lock, re-read, atomic replace), the records and their
//! history, and the import of the Python tool's plaintext store.

#![deny(unsafe_code)]
#![warn(missing_docs)]

// The formats' internals: private to the library; tests, benchmarks and fuzz targets see
// them through the `test-support` feature.
#[cfg(feature = "test-support")]
pub mod crypto;
#[cfg(not(feature = "test-support"))]
mod crypto;
pub mod display;
pub mod error;
#[cfg(feature = "test-support")]
pub mod format;
#[cfg(not(feature = "test-support"))]
mod format;
pub mod fsio;
pub mod keyfmt;
pub mod keyset;
pub mod legacy;
pub mod records;
pub mod rng;
pub mod secret;
pub mod store;
pub mod types;
pub mod v2;
mod vault;
pub mod verify;

pub use error::{Error, Result};
pub use secret::{SecretBytes, SecretKey, SecretString};
pub use vault::*;
