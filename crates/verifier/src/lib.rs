//! mcp-key-verifier: what an MCP server links to check the API keys that
//! `mcp-key-manager` issues, offline, from a published verifier file.
//!
//! A verifier file holds ids, keyed hashes (HMAC-SHA256), the hash key, status, expiry and
//! permissions: nothing from which a key can be computed. A presented key is hashed under
//! the file's hash key and compared in constant time; it is never compared as text.
//!
//! The public API, in full:
//! - [`Verifier`] (load with [`Verifier::from_file`], judge with [`Verifier::verify`]),
//!   [`Verdict`], [`Code`], [`KeyInfo`]; [`permits()`], the one rule for what a key's
//!   permissions grant (`tools:call` grants `tools:call:NAME`);
//! - [`Watched`], a verifier that follows its file as publishers replace it, and its
//!   [`ReloadEvent`]s;
//! - [`api_key_from_headers`] and [`api_key_from_header_values`] (for repeated headers),
//!   the one rule for finding a key in `X-API-Key` /
//!   `Authorization: Bearer`;
//! - [`keys`] (the key shapes, format 2's checksum, [`keys::Reason`] for a `MALFORMED`
//!   verdict, [`keys::KEY_PATTERN`] for scanners), [`time`] (the file's RFC 3339 rule),
//!   [`escape_controls`] (for logging ids and names from a file), [`Error`];
//! - [`rpc`] (the refusals of `mcp-key-manager serve` as status, JSON-RPC body and
//!   `WWW-Authenticate` strings) and [`routing`] (the permissions a JSON-RPC message needs
//!   under tool permissions, and the `Mcp-Method`/`Mcp-Name` header rules), for any HTTP
//!   stack;
//! - with the cargo feature **`tower`**: `tower::RequireApiKey`, a tower layer for an HTTP
//!   MCP server (rmcp on axum, for one) that checks every request's key against a
//!   [`Watched`] file and answers refusals as `serve` does (docs/rust.md in the
//!   repository; `examples/axum_rmcp.rs`).
//!
//! ```
//! use mcp_key_verifier::{api_key_from_headers, Code, Verifier};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("verifier.json");
//! # std::fs::write(&path, r#"{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",
//! #   "hash_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","generated_at":"2026-01-01T00:00:00Z",
//! #   "keys":[]}"#).unwrap();
//! let verifier = Verifier::from_file(&path)?;
//! let presented = api_key_from_headers(None, Some("Bearer mcp_0123456789abcdef_00"));
//! let verdict = verifier.verify(presented.unwrap_or(""), &["generate"]);
//! assert_eq!(verdict.code, Code::Malformed);
//! assert!(!verdict.is_valid());
//! # Ok::<(), mcp_key_verifier::Error>(())
//! ```
//!
//! Dependencies are what verification needs and no more: HMAC-SHA256 (`hmac`, `sha2`),
//! constant-time comparison (`subtle`), JSON (`serde`, `serde_json`), Base64 (`base64`),
//! wiping the hash key (`zeroize`), RFC 3339 times (`chrono`, without its clock or time
//! zone database) and `libc` (a non-blocking open, so a FIFO put in place of the file
//! cannot hang a server). The `tower` feature adds only the HTTP types and traits the layer
//! is written against: `http`, `http-body`, `http-body-util` (reading a body with a limit),
//! `bytes`, `tower-layer` and `tower-service`; without it none of them is built.

// One call needs `unsafe`: `malloc_trim` after a reload (watch.rs says why and why it is
// sound); everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod fs;
mod headers;
mod hex;
pub mod keys;
pub mod limit;
#[cfg(feature = "oauth")]
pub mod oauth;
mod permits;
pub mod routing;
pub mod rpc;
pub mod signature;
mod text;
pub mod time;
#[cfg(feature = "tower")]
pub mod tower;
mod verifier;
mod watch;

pub use error::{Error, Result};
pub use fs::MAX_VERIFIER_BYTES;
pub use headers::{api_key_from_header_values, api_key_from_headers};
pub use limit::RateLimit;
pub use permits::permits;
pub use signature::fingerprint;
pub use text::{escape_controls, needs_escape};
pub use verifier::{hashes_equal, Code, KeyInfo, Verdict, Verifier, MAX_REVISION, VERIFIER_FORMAT};
pub use watch::{ReloadEvent, Watched, DEFAULT_INTERVAL};
