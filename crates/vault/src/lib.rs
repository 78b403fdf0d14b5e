//! The vault of mcp-key-manager: the encrypted file that holds the keys, in formats 1 and
//! 2, its crypto, the file protocol (lock, re-read, atomic replace), the records and their
//! history, and the import of the Python tool's plaintext store.
//!
//! The public API:
//! - [`Store`] opens, changes ([`Txn`]) and saves the vault file at a path, asking the
//!   caller through [`Interaction`] for passphrases, warnings and identities (the library
//!   never prompts, prints or exits); [`Vault`] is an unlocked vault and its changes ([`NewKey`],
//!   [`Selector`], [`Rotation`]); the records: [`KeyRecord`], [`Keys`], [`Look`],
//!   [`Event`], [`History`], [`Published`], [`Status`], [`KeyId`], [`KeyHash`],
//!   [`Permission`]; the file's identity: [`Envelope`], [`KdfParams`], [`Detected`].
//! - [`v2`]: format 2's slots as a caller sees them ([`v2::Slot`], [`v2::Identities`], the
//!   [`v2::PluginUi`] an age plugin talks through) and records read in place
//!   ([`v2::RecordRef`]).
//! - [`verify`]: a [`Verifier`](verify::Verifier) built from an unlocked vault (the type
//!   itself is `mcp-key-verifier`'s).
//! - [`keyfmt`] (making keys, their strength), [`legacy`] (the Python tool's store),
//!   [`secret`] (wiped secret types), [`fsio`] (bounded reads, locks, atomic replace: what
//!   the binary's own files use too), [`display`] (text safe to print).
//! - [`error`]: one error type per operation, each `#[non_exhaustive]` with a
//!   [`Category`](error::Category) for the caller's exit codes: [`OpenError`] (read, parse,
//!   unlock), [`ChangeError`] (create, slots, re-key, rotate, import), [`SelectError`]
//!   (find keys), [`SaveError`] (write), [`PromptError`] (the caller's [`Interaction`]
//!   could not give a passphrase), and `fsio`'s [`IoError`](error::IoError) and
//!   [`ReadError`](error::ReadError). Calls that do several ([`Store::update`],
//!   [`Store::rekey`]) return the caller's own error type, built with `From`.
//!
//! Private: the format-1 envelope's parser, format 2's header and payload codec, the
//! crypto, the record index. Tests, benchmarks and fuzz targets reach them, and a few
//! hooks no tool should call (`Vault::payload_mut_unchecked`, the data key), through the
//! `test-support` feature, which the binary never enables.

#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Declares modules private to the library, public to tests, benchmarks and fuzz targets
/// through the `test-support` feature (which the binary never enables).
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "test-support")]
        pub mod $name;
        #[cfg(not(feature = "test-support"))]
        mod $name;
    )*};
}

// The formats, the crypto and the record index: private.
internal!(crypto, format, keyset, record, records, rng, store, types, wire);

pub mod display;
pub mod error;
pub mod fsio;
pub mod keyfmt;
pub mod legacy;
pub mod secret;
pub mod v2;
mod vault;
pub mod verify;

pub use crypto::SALT_LEN;
pub use error::{ChangeError, OpenError, PromptError, SaveError, SelectError};
pub use format::{Detected, Envelope, KdfParams};
pub use keyset::{Keys, Look};
pub use records::{
    expires_within, time_opt, Event, History, KeyRecord, Payload, Published, Status,
    DEFAULT_PERMISSIONS,
};
pub use secret::{SecretBytes, SecretKey, SecretString};
pub use store::{AfterCommit, Expect, Interaction, Opened, OpenedBy, Parsed, Store, Txn};
pub use types::{EventAction, InvalidPermission, KeyHash, KeyId, Permission};
pub use vault::*;
