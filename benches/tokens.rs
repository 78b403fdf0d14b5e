//! Access tokens (docs/oauth.md) beside keys: what `serve` and the tower layer pay per
//! request. A first-seen ES256 and EdDSA token (signature and claims checked), the same token
//! again (served from the cache), and a key of a 10-key verifier as the reference: read the
//! ratio `cached / key` from one run.
//!
//! ```text
//! cargo bench --bench tokens
//! ```
//!
//! Single-threaded: the rates are per core.

use divan::{black_box, Bencher};
use mcp_key_verifier::oauth::TokenVerifier;
use mcp_key_verifier::{KeyInfo, Verifier};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

fn main() {
    divan::main();
}

const ISSUER: &str = "https://id.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Signs a JWS signing input.
type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// A signer and its JWK Set.
struct Issuer {
    sign: Signer,
    alg: &'static str,
    jwks: String,
}

fn es256() -> Issuer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    Issuer {
        sign: Box::new(move |m| {
            pair.sign(&SystemRandom::new(), m)
                .unwrap()
                .as_ref()
                .to_vec()
        }),
        alg: "ES256",
        jwks: jwks.to_string(),
    }
}

fn eddsa() -> Issuer {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap();
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "alg": "EdDSA", "x": b64(pair.public_key().as_ref())}]});
    Issuer {
        sign: Box::new(move |m| pair.sign(m).as_ref().to_vec()),
        alg: "EdDSA",
        jwks: jwks.to_string(),
    }
}

impl Issuer {
    fn token(&self, n: usize) -> String {
        let h = b64(format!(r#"{{"alg":"{}","kid":"k","typ":"JWT"}}"#, self.alg).as_bytes());
        let c = b64(
            serde_json::json!({"iss": ISSUER, "aud": RESOURCE, "sub": "user-1",
            "exp": 4_000_000_000u64, "iat": 1_800_000_000u64, "jti": n,
            "scope": "tools:call"})
            .to_string()
            .as_bytes(),
        );
        let sig = (self.sign)(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", b64(&sig))
    }

    fn verifier(&self) -> TokenVerifier {
        let v = TokenVerifier::new(RESOURCE, &[ISSUER.to_owned()], "scope");
        v.set_jwks(0, self.jwks.as_bytes()).unwrap();
        v
    }
}

fn first_seen(bencher: Bencher, issuer: fn() -> Issuer) {
    let iss = issuer();
    let tokens: Vec<String> = (0..512).map(|n| iss.token(n)).collect();
    let mut n = 0;
    bencher
        .with_inputs(|| {
            n += 1;
            (iss.verifier(), tokens[n % tokens.len()].clone())
        })
        .bench_local_refs(|(v, t)| black_box(v.verify(t, 1_800_000_000).is_ok()));
}

/// A token never seen before: parse, signature, claims (ES256: one P-256 verification).
#[divan::bench]
fn first_seen_es256(bencher: Bencher) {
    first_seen(bencher, es256);
}

/// A token never seen before, EdDSA (one Ed25519 verification).
#[divan::bench]
fn first_seen_eddsa(bencher: Bencher) {
    first_seen(bencher, eddsa);
}

/// The same ES256 token again: the cache (a SHA-256 of the token and a map lookup).
#[divan::bench]
fn cached_es256(bencher: Bencher) {
    let iss = es256();
    let v = iss.verifier();
    let t = iss.token(1);
    assert!(v.verify(&t, 1_800_000_000).is_ok());
    bencher.bench_local(|| black_box(v.verify(black_box(&t), 1_800_000_000).is_ok()));
}

/// The reference: a key of a 10-key verifier.
#[divan::bench]
fn key(bencher: Bencher) {
    let hasher = Verifier::new(&[3; 32], 0, Vec::new());
    let keys: Vec<String> = (0..10)
        .map(|i| format!("mcp_{i:016x}_{}", "b".repeat(64)))
        .collect();
    let infos = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            KeyInfo::new(
                format!("{i:016x}"),
                None,
                hasher.keyed_hash(k),
                false,
                None,
                vec!["tools:call".into()],
            )
        })
        .collect();
    let v = Verifier::new(&[3; 32], 1, infos);
    assert!(v.verify(&keys[3], &[]).is_valid());
    bencher.bench_local(|| black_box(v.verify(black_box(&keys[3]), &[]).is_valid()));
}
