//! The two primitives of the vault: Argon2id key derivation and XChaCha20-Poly1305.
//!
//! This module knows keys and nonces, never paths. Invariant: every derived key and every
//! decrypted byte is held in a zeroizing buffer from the moment it exists.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::format::KdfParams;
use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::secret::{SecretKey, SecretString};

/// Length of a new salt in bytes (RFC 9106 recommends 128 bits).
pub const SALT_LEN: usize = 16;

/// Derives the 32-byte vault key: Argon2id(passphrase, salt, params) as RFC 9106 defines it.
///
/// # Errors
/// [`OpenError::Corrupt`] if Argon2 rejects the parameters (callers check bounds first). If the
/// memory cannot be had the allocator aborts the process; the 2 GiB bound keeps that to
/// machines that are genuinely out of memory.
///
/// # Security
/// The parameters must have passed [`KdfParams::check_bounds`]; this function trusts them.
pub fn derive_key(passphrase: &SecretString, salt: &[u8], kdf: &KdfParams) -> Result<SecretKey> {
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| OpenError::corrupt(format!("invalid Argon2id parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.expose().as_bytes(), salt, &mut out[..])
        .map_err(|e| OpenError::corrupt(format!("key derivation failed: {e}")))?;
    Ok(SecretKey::new(*out))
}

/// Encrypts `plaintext` under `key` with the given nonce and associated data.
pub fn seal(key: &SecretKey, nonce: &[u8; 24], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption only fails past 256 GiB, far beyond the file bound")
}

/// Encrypts `buf` in place and appends the tag, so a plaintext never has a second copy.
/// Callers leave 16 bytes of spare capacity, or the buffer moves (and the old one is not
/// wiped).
pub fn seal_in_place(key: &SecretKey, nonce: &[u8; 24], ad: &[u8], buf: &mut Vec<u8>) {
    use chacha20poly1305::aead::AeadInPlace;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .encrypt_in_place(XNonce::from_slice(nonce), ad, buf)
        .expect("XChaCha20-Poly1305 encryption only fails past 256 GiB, far beyond the file bound");
}

/// Decrypts and authenticates; the plaintext comes back in a zeroizing buffer.
///
/// # Errors
/// [`OpenError::WrongPassphrase`], with the single "wrong passphrase, or the vault was modified"
/// message: a wrong key and a modified file are indistinguishable by design.
pub fn open(
    key: &SecretKey,
    nonce: &[u8; 24],
    ad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::WrongPassphrase)
}

impl KdfParams {
    /// Picks the number of passes that makes one derivation with these settings take
    /// about `target_ms` on this machine, within the format's bounds.
    ///
    /// # Errors
    /// As `derive_key`.
    pub fn calibrate(self, target_ms: u64) -> Result<u32> {
        let probe = KdfParams {
            iterations: 1,
            ..self
        };
        let pass = SecretString::new("calibration".into());
        let salt = crate::rng::bytes(16);
        let start = std::time::Instant::now();
        derive_key(&pass, &salt, &probe)?;
        let one = start.elapsed().as_secs_f64() * 1000.0;
        let t = (target_ms as f64 / one.max(0.001)).round() as u64;
        let max_t = (super::format::bounds::WORK_KIB_MAX / u64::from(self.memory_kib))
            .min(u64::from(super::format::bounds::ITERATIONS_MAX));
        Ok(t.clamp(u64::from(KdfParams::MINIMUM.iterations), max_t) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_known_answer() {
        // The reference implementation's own vector (phc-winner-argon2, src/test.c):
        // Argon2id v=0x13, m=2^16 KiB, t=2, p=1, "password" / "somesalt", 32-byte tag.
        let k = derive_key(
            &SecretString::new("password".into()),
            b"somesalt",
            &KdfParams {
                memory_kib: 65536,
                iterations: 2,
                parallelism: 1,
            },
        )
        .unwrap();
        assert_eq!(
            crate::rng::hex(k.expose()),
            "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
        );
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = SecretKey::new([3; 32]);
        let nonce = [5; 24];
        let ct = seal(&key, &nonce, b"ad", b"hello");
        assert_eq!(&open(&key, &nonce, b"ad", &ct).unwrap()[..], b"hello");
        assert!(open(&key, &nonce, b"ax", &ct).is_err());
        assert!(open(&SecretKey::new([4; 32]), &nonce, b"ad", &ct).is_err());
        let mut inplace = b"hello".to_vec();
        seal_in_place(&key, &nonce, b"ad", &mut inplace);
        assert_eq!(inplace, ct, "in-place and copying encryption agree");
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open(&key, &nonce, b"ad", &bad).is_err());
    }
}
