//! The bridge's state for one instance, in memory: consent requests waiting for a person,
//! authorization codes, refresh-token families and the access-token denylist.
//!
//! Invariants: codes, refresh tokens and consent handles are random (256 bits) and kept
//! only as keyed hashes (HMAC-SHA-256 under the signing key's derived secret), so a memory
//! dump does not hand out working credentials; every table has a bound and expiring
//! entries, swept when a table fills and at least every [`SWEEP_EVERY`] seconds; a code or
//! refresh token used twice revokes everything issued from it (RFC 9700 §4.14, §2.2.2).
//! Access tokens carry their family (`sid`): revoking a family denies that one entry for
//! as long as any token of it can live, so nothing has to remember each token it issued.
//!
//! A fleet keeps the same tables in Redis (`shared.rs`); this store then holds only the
//! denylist as the store pushes it, and the hashing secret.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use zeroize::Zeroizing;

/// How long a code may wait for its exchange, in seconds.
pub const CODE_LIFETIME: i64 = 60;
/// How long a used code is remembered, so that a second use still revokes its tokens.
pub const USED_CODE_MEMORY: i64 = 3600;
/// How long a consent page may wait for the person, in seconds.
pub const PENDING_LIFETIME: i64 = 600;
/// Key attempts on one consent page before it must be started again.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long a refresh token stays usable without being used, in seconds.
pub const REFRESH_LIFETIME: i64 = 24 * 3600;
/// How long a family of refresh tokens lives at most, whatever its use, in seconds.
pub const FAMILY_LIFETIME: i64 = 30 * 24 * 3600;
/// The longest an access token lives, in seconds: a revoked family is denied this long.
pub const MAX_TOKEN_LIFETIME: i64 = 3600;
const SWEEP_EVERY: i64 = 60;

/// The bounds of the tables.
pub const MAX_PENDING: usize = 10_000;
/// Most consent requests of one client waiting at once (the oldest gives way).
pub const MAX_PENDING_PER_CLIENT: usize = 50;
/// Rotated-out refresh tokens of one family remembered (to notice their reuse).
pub const OLD_REFRESH_KEPT: usize = 2;
pub const MAX_CODES: usize = 10_000;
pub const MAX_FAMILIES: usize = 100_000;
const MAX_REFRESH: usize = (1 + OLD_REFRESH_KEPT) * MAX_FAMILIES;
pub const MAX_DENIED: usize = 100_000;

type Hash = [u8; 32];

/// A new random secret: 256 bits, base64url.
pub fn random_token() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut b[..]);
    Zeroizing::new(B64URL.encode(&b[..]))
}

/// The denylist entry of family `id`: what its access tokens carry as `sid` (a `jti` is
/// base64url, without a colon: the two never meet).
pub fn family_entry(id: u64) -> String {
    format!("sid:{id}")
}

/// A consent request waiting for the person.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub challenge: String,
    pub scopes: Vec<String>,
    /// Whether the client named the scopes (they must all be held) or left them to the key.
    pub explicit_scope: bool,
    pub csrf: Hash,
    pub cookie: Hash,
    pub expires: i64,
    pub attempts: u32,
}

/// What a code was issued for.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub scopes: Vec<String>,
    pub key_id: String,
}

struct CodeEntry {
    grant: Grant,
    expires: i64,
    /// Once exchanged: the family it started.
    used: Option<u64>,
}

/// What a family of refresh tokens was granted.
#[derive(Clone, Debug)]
pub struct Family {
    pub key_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// When it ends, whatever its use.
    pub expires: i64,
    /// Its rotated-out refresh tokens still remembered, oldest first.
    old: Vec<Hash>,
}

impl Family {
    /// A family as a shared store holds it (its rotated-out tokens are the store's).
    pub fn new(key_id: String, client_id: String, scopes: Vec<String>, expires: i64) -> Family {
        Family {
            key_id,
            client_id,
            scopes,
            expires,
            old: Vec::new(),
        }
    }
}

struct RefreshEntry {
    family: u64,
    current: bool,
    expires: i64,
}

/// A code exchanged: what it was issued for, the scopes granted, and the family started
/// with its first refresh token.
pub struct Redeemed {
    pub grant: Grant,
    pub scopes: Vec<String>,
    pub family: u64,
    pub refresh: Zeroizing<String>,
}

/// A refresh token rotated: its family and the next refresh token.
pub struct Rotated {
    pub family: Family,
    pub id: u64,
    pub refresh: Zeroizing<String>,
}

/// Why a code or refresh token is refused (`invalid_grant` either way).
#[derive(Debug, PartialEq, Eq)]
pub enum GrantError {
    /// Unknown, expired, or of a revoked family.
    Invalid,
    /// Used before: everything issued from it is now revoked.
    Reused,
    /// A table is full even after sweeping.
    Full,
    /// The shared store could not be reached (nothing was decided).
    Unavailable,
}

#[derive(Default)]
struct Tables {
    pending: HashMap<Hash, Pending>,
    codes: HashMap<Hash, CodeEntry>,
    families: HashMap<u64, Family>,
    refresh: HashMap<Hash, RefreshEntry>,
    /// Revoked access tokens' `jti` and revoked families' [`family_entry`], until no
    /// token they name can be valid.
    denied: HashMap<String, i64>,
    /// Every token issued at or before this time is refused (the denylist overflowed).
    denied_before: i64,
    next_family: u64,
    last_sweep: i64,
}

/// The tables, behind one lock (every operation is a few map lookups). What `/auth` asks
/// on every request, whether a token is denied, is answered without the lock while the
/// denylist is empty: its size and `denied_before` are mirrored in atomics, written under
/// the lock whenever the tables are let go.
pub struct Store {
    secret: Zeroizing<[u8; 32]>,
    tables: Mutex<Tables>,
    denied_len: AtomicUsize,
    denied_before: AtomicI64,
}

/// The tables, locked; on release the denylist's mirrors are brought up to date.
struct Locked<'a> {
    tables: MutexGuard<'a, Tables>,
    store: &'a Store,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Tables;
    fn deref(&self) -> &Tables {
        &self.tables
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Tables {
        &mut self.tables
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Still under the lock: a reader that sees the mirrors sees this state or a later one.
        self.store
            .denied_len
            .store(self.tables.denied.len(), Ordering::Release);
        self.store
            .denied_before
            .store(self.tables.denied_before, Ordering::Release);
    }
}

impl Store {
    /// A store whose tokens issued at or before `denied_before` are refused.
    pub fn new(secret: Zeroizing<[u8; 32]>, denied_before: i64) -> Store {
        Store {
            secret,
            tables: Mutex::new(Tables {
                denied_before,
                ..Tables::default()
            }),
            denied_len: AtomicUsize::new(0),
            denied_before: AtomicI64::new(denied_before),
        }
    }

    fn hash(&self, s: &str) -> Hash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret[..])
            .expect("HMAC takes a key of any length");
        mac.update(s.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The keyed hash of a CSRF value or cookie, to keep in a [`Pending`].
    pub fn digest(&self, s: &str) -> Hash {
        self.hash(s)
    }

    /// Whether `s` hashes to `h`, in constant time.
    pub fn matches(&self, s: &str, h: &Hash) -> bool {
        mcp_key_verifier::hashes_equal(&self.hash(s), h)
    }

    fn locked(&self) -> Locked<'_> {
        Locked {
            tables: self.tables.lock().unwrap_or_else(PoisonError::into_inner),
            store: self,
        }
    }

    fn tables(&self, now: i64) -> Locked<'_> {
        let mut t = self.locked();
        if now - t.last_sweep >= SWEEP_EVERY {
            t.sweep(now);
        }
        t
    }

    /// Keeps a consent request; its handle, or `None` when too many wait.
    pub fn add_pending(&self, p: Pending, now: i64) -> Option<Zeroizing<String>> {
        let mut t = self.tables(now);
        if t.pending.len() >= MAX_PENDING {
            t.sweep(now);
            if t.pending.len() >= MAX_PENDING {
                return None;
            }
        }
        // One client cannot hold the whole table: past its share, its oldest request goes.
        let mut theirs: Vec<(i64, Hash)> = t
            .pending
            .iter()
            .filter(|(_, q)| q.client_id == p.client_id)
            .map(|(h, q)| (q.expires, *h))
            .collect();
        if theirs.len() >= MAX_PENDING_PER_CLIENT {
            theirs.sort_unstable();
            for (_, h) in &theirs[..=theirs.len() - MAX_PENDING_PER_CLIENT] {
                t.pending.remove(h);
            }
        }
        let handle = random_token();
        t.pending.insert(self.hash(&handle), p);
        Some(handle)
    }

    /// The consent request `handle` names, while it lasts.
    pub fn pending(&self, handle: &str, now: i64) -> Option<Pending> {
        let t = self.tables(now);
        t.pending
            .get(&self.hash(handle))
            .filter(|p| p.expires > now)
            .cloned()
    }

    /// Counts a refused key on a consent request; false when it has had its attempts
    /// (it is then dropped).
    pub fn failed_attempt(&self, handle: &str, now: i64) -> bool {
        let h = self.hash(handle);
        let mut t = self.tables(now);
        let Some(p) = t.pending.get_mut(&h) else {
            return false;
        };
        p.attempts += 1;
        if p.attempts >= MAX_ATTEMPTS {
            t.pending.remove(&h);
            return false;
        }
        true
    }

    /// Ends a consent request (approved or denied).
    pub fn take_pending(&self, handle: &str, now: i64) -> Option<Pending> {
        let h = self.hash(handle);
        self.tables(now)
            .pending
            .remove(&h)
            .filter(|p| p.expires > now)
    }

    /// A code for `grant`, valid [`CODE_LIFETIME`] seconds.
    pub fn issue_code(&self, grant: Grant, now: i64) -> Result<Zeroizing<String>, GrantError> {
        let mut t = self.tables(now);
        if t.codes.len() >= MAX_CODES {
            t.sweep(now);
            if t.codes.len() >= MAX_CODES {
                return Err(GrantError::Full);
            }
        }
        let code = random_token();
        t.codes.insert(
            self.hash(&code),
            CodeEntry {
                grant,
                expires: now + CODE_LIFETIME,
                used: None,
            },
        );
        Ok(code)
    }

    /// Exchanges `code`: its grant and a new family with its first refresh token. `check`
    /// decides whether the grant fits the request (client, redirect URI, PKCE, key still
    /// valid); a refusal there consumes nothing.
    pub fn redeem_code<E>(
        &self,
        code: &str,
        now: i64,
        check: impl FnOnce(&Grant) -> Result<Vec<String>, E>,
    ) -> Result<Result<Redeemed, E>, GrantError> {
        let h = self.hash(code);
        let mut t = self.tables(now);
        let Some(entry) = t.codes.get(&h) else {
            return Err(GrantError::Invalid);
        };
        if let Some(family) = entry.used {
            // RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
            t.revoke_family(family, now);
            return Err(GrantError::Reused);
        }
        if entry.expires <= now {
            return Err(GrantError::Invalid);
        }
        let grant = entry.grant.clone();
        let scopes = match check(&grant) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if t.families.len() >= MAX_FAMILIES || t.refresh.len() >= MAX_REFRESH {
            t.sweep(now);
            if t.families.len() >= MAX_FAMILIES || t.refresh.len() >= MAX_REFRESH {
                return Err(GrantError::Full);
            }
        }
        t.next_family += 1;
        let family = t.next_family;
        t.families.insert(
            family,
            Family {
                key_id: grant.key_id.clone(),
                client_id: grant.client_id.clone(),
                scopes: scopes.clone(),
                expires: now + FAMILY_LIFETIME,
                old: Vec::new(),
            },
        );
        if let Some(e) = t.codes.get_mut(&h) {
            e.used = Some(family);
            e.expires = now + USED_CODE_MEMORY;
        }
        let refresh = random_token();
        t.refresh.insert(
            self.hash(&refresh),
            RefreshEntry {
                family,
                current: true,
                expires: now + REFRESH_LIFETIME,
            },
        );
        Ok(Ok(Redeemed {
            grant,
            scopes,
            family,
            refresh,
        }))
    }

    /// Rotates `refresh`: the family and a new refresh token; the old one is out. `check`
    /// decides whether the family may go on (the client, the key still valid); a refusal
    /// there revokes the family.
    pub fn rotate<E>(
        &self,
        refresh: &str,
        now: i64,
        check: impl FnOnce(&Family) -> Result<(), E>,
    ) -> Result<Result<Rotated, E>, GrantError> {
        let h = self.hash(refresh);
        let mut t = self.tables(now);
        let Some(entry) = t.refresh.get(&h) else {
            return Err(GrantError::Invalid);
        };
        let (family, current, expires) = (entry.family, entry.current, entry.expires);
        if !current {
            // A rotated-out token comes back: one of its two holders is not the client.
            t.revoke_family(family, now);
            return Err(GrantError::Reused);
        }
        let Some(f) = t.families.get(&family).filter(|f| f.expires > now) else {
            return Err(GrantError::Invalid);
        };
        if expires <= now {
            return Err(GrantError::Invalid);
        }
        let f = f.clone();
        if let Err(e) = check(&f) {
            t.revoke_family(family, now);
            return Ok(Err(e));
        }
        if t.refresh.len() >= MAX_REFRESH {
            t.sweep(now);
            if t.refresh.len() >= MAX_REFRESH {
                return Err(GrantError::Full);
            }
        }
        if let Some(e) = t.refresh.get_mut(&h) {
            e.current = false;
        }
        // Only the last few rotated-out tokens are remembered: a family holds a bounded
        // number of entries however often it is refreshed.
        let forgotten = t.families.get_mut(&family).and_then(|f| {
            f.old.push(h);
            (f.old.len() > OLD_REFRESH_KEPT).then(|| f.old.remove(0))
        });
        if let Some(old) = forgotten {
            t.refresh.remove(&old);
        }
        let next = random_token();
        t.refresh.insert(
            self.hash(&next),
            RefreshEntry {
                family,
                current: true,
                expires: now + REFRESH_LIFETIME,
            },
        );
        Ok(Ok(Rotated {
            family: f,
            id: family,
            refresh: next,
        }))
    }

    /// The scopes granted to the family of the current refresh token `refresh`.
    pub fn family_scopes(&self, refresh: &str, now: i64) -> Option<Vec<String>> {
        let t = self.tables(now);
        let e = t
            .refresh
            .get(&self.hash(refresh))
            .filter(|e| e.current && e.expires > now)?;
        t.families.get(&e.family).map(|f| f.scopes.clone())
    }

    /// RFC 7009 for a refresh token: its family, with its access tokens. Unknown: nothing.
    pub fn revoke_refresh(&self, refresh: &str, client_id: Option<&str>, now: i64) {
        let h = self.hash(refresh);
        let mut t = self.tables(now);
        let Some(family) = t.refresh.get(&h).map(|e| e.family) else {
            return;
        };
        // §2.1: a client may revoke only its own tokens.
        let theirs = t
            .families
            .get(&family)
            .is_some_and(|f| client_id.is_none_or(|c| c == f.client_id));
        if theirs {
            t.revoke_family(family, now);
        }
    }

    /// Revokes family `id`: its refresh tokens go, and its access tokens are denied.
    pub fn revoke_family(&self, id: u64, now: i64) {
        self.tables(now).revoke_family(id, now);
    }

    /// Denies an access token (its `jti`) or a family ([`family_entry`]) until `until`.
    pub fn deny(&self, entry: &str, until: i64, now: i64) {
        let mut t = self.tables(now);
        t.deny(entry, until, now);
    }

    /// Refuses every token issued at or before `t` (a shared store's epoch).
    pub fn deny_before(&self, t: i64) {
        let mut tables = self.locked();
        tables.denied_before = tables.denied_before.max(t);
    }

    /// Every token (and grant) issued at or before this time is refused.
    pub fn denied_before(&self) -> i64 {
        self.denied_before.load(Ordering::Acquire)
    }

    /// Whether the access token `jti` of family entry `family`, issued at `iat`, was
    /// revoked.
    pub fn is_denied(&self, jti: &str, family: &str, iat: i64, now: i64) -> bool {
        if iat <= self.denied_before.load(Ordering::Acquire) {
            return true;
        }
        if self.denied_len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let t = self.tables(now);
        iat <= t.denied_before || t.denied.contains_key(jti) || t.denied.contains_key(family)
    }

    /// How many entries each table holds (pending, codes, families, refresh, denied).
    #[cfg(test)]
    fn sizes(&self) -> [usize; 5] {
        let t = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        [
            t.pending.len(),
            t.codes.len(),
            t.families.len(),
            t.refresh.len(),
            t.denied.len(),
        ]
    }
}

use sha2::Sha256;

impl Tables {
    fn revoke_family(&mut self, family: u64, now: i64) {
        self.families.remove(&family);
        self.refresh.retain(|_, e| e.family != family);
        self.deny(&family_entry(family), now + MAX_TOKEN_LIFETIME, now);
    }

    fn deny(&mut self, entry: &str, until: i64, now: i64) {
        // Kept as long as the verifier would still take a token that ends at `until`.
        let leeway = mcp_key_verifier::oauth::LEEWAY_SECONDS as i64;
        if until + leeway <= now {
            return;
        }
        if self.denied.len() >= MAX_DENIED {
            self.denied.retain(|_, e| *e + leeway > now);
            if self.denied.len() >= MAX_DENIED {
                // Fail closed, in bounded memory: every token issued until now is refused.
                self.denied.clear();
                self.denied_before = now;
                return;
            }
        }
        self.denied.insert(entry.to_owned(), until);
    }

    fn sweep(&mut self, now: i64) {
        self.last_sweep = now;
        self.pending.retain(|_, p| p.expires > now);
        self.codes.retain(|_, c| c.expires > now);
        self.refresh.retain(|_, r| r.expires > now);
        // A family whose current refresh token has expired can issue nothing more, and its
        // access tokens (at most an hour long) expired before it: it is dropped.
        let live: std::collections::HashSet<u64> = self
            .refresh
            .values()
            .filter(|r| r.current)
            .map(|r| r.family)
            .collect();
        self.families
            .retain(|id, f| f.expires > now && live.contains(id));
        let families = &self.families;
        self.refresh.retain(|_, r| families.contains_key(&r.family));
        // Leeway as the verifier's: a token is refused as expired only this much later.
        let leeway = mcp_key_verifier::oauth::LEEWAY_SECONDS as i64;
        self.denied.retain(|_, e| *e + leeway > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(Zeroizing::new([7u8; 32]), 0)
    }

    /// A consent request of `client` made at `at`.
    fn pending(client: &str, at: i64) -> Pending {
        Pending {
            client_id: client.into(),
            client_name: None,
            redirect_uri: "https://c/cb".into(),
            state: None,
            challenge: "x".into(),
            scopes: vec![],
            explicit_scope: false,
            csrf: [0; 32],
            cookie: [0; 32],
            expires: at + PENDING_LIFETIME,
            attempts: 0,
        }
    }

    fn grant() -> Grant {
        Grant {
            client_id: "https://client.example/meta".into(),
            redirect_uri: "https://client.example/cb".into(),
            challenge: "c".repeat(43),
            scopes: vec!["tools:call".into()],
            key_id: "0123456789abcdef".into(),
        }
    }

    fn ok(g: &Grant) -> Result<Vec<String>, ()> {
        Ok(g.scopes.clone())
    }

    #[test]
    fn a_code_expires_after_its_lifetime() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let late = 1000 + CODE_LIFETIME;
        assert_eq!(
            s.redeem_code(&code, late, ok).err(),
            Some(GrantError::Invalid)
        );
        let code = s.issue_code(grant(), 1000).unwrap();
        assert!(s.redeem_code(&code, late - 1, ok).unwrap().is_ok());
    }

    #[test]
    fn a_code_used_twice_revokes_what_it_gave() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let Redeemed {
            family, refresh, ..
        } = s.redeem_code(&code, 1001, ok).unwrap().unwrap();
        let sid = family_entry(family);
        assert!(!s.is_denied("jti-1", &sid, 1001, 1002));
        assert_eq!(
            s.redeem_code(&code, 1002, ok).err(),
            Some(GrantError::Reused)
        );
        assert!(s.is_denied("jti-1", &sid, 1001, 1003));
        assert!(!s.is_denied("jti-1", &family_entry(family + 1), 1001, 1003));
        assert_eq!(
            s.rotate(&refresh, 1003, |_| Ok::<(), ()>(())).err(),
            Some(GrantError::Invalid)
        );
    }

    #[test]
    fn a_refused_check_consumes_no_code() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        assert_eq!(
            s.redeem_code(&code, 1001, |_| Err::<Vec<String>, _>("pkce"))
                .unwrap()
                .err(),
            Some("pkce")
        );
        assert!(s.redeem_code(&code, 1002, ok).unwrap().is_ok());
    }

    #[test]
    fn refresh_rotates_and_a_rotated_out_token_revokes_the_family() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let Redeemed {
            family,
            refresh: r1,
            ..
        } = s.redeem_code(&code, 1001, ok).unwrap().unwrap();
        let Rotated {
            id: f2,
            refresh: r2,
            ..
        } = s.rotate(&r1, 1002, |_| Ok::<(), ()>(())).unwrap().unwrap();
        assert_eq!(f2, family);
        assert_eq!(
            s.rotate(&r1, 1003, |_| Ok::<(), ()>(())).err(),
            Some(GrantError::Reused)
        );
        let sid = family_entry(family);
        assert!(s.is_denied("a", &sid, 1001, 1004) && s.is_denied("b", &sid, 1002, 1004));
        // For as long as a token of the family can live, and no longer.
        let end = 1003 + MAX_TOKEN_LIFETIME;
        assert!(s.is_denied("c", &sid, 1003, end - 1));
        assert!(!s.is_denied("c", &sid, 1003, end + SWEEP_EVERY + 60));
        assert_eq!(
            s.rotate(&r2, 1004, |_| Ok::<(), ()>(())).err(),
            Some(GrantError::Invalid)
        );
    }

    #[test]
    fn a_refresh_token_expires_and_a_refused_check_revokes() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let r1 = s.redeem_code(&code, 1001, ok).unwrap().unwrap().refresh;
        assert_eq!(
            s.rotate(&r1, 1001 + REFRESH_LIFETIME, |_| Ok::<(), ()>(()))
                .err(),
            Some(GrantError::Invalid)
        );
        let code = s.issue_code(grant(), 1000).unwrap();
        let r1 = s.redeem_code(&code, 1001, ok).unwrap().unwrap().refresh;
        assert_eq!(
            s.rotate(&r1, 1002, |_| Err("key revoked")).unwrap().err(),
            Some("key revoked")
        );
        assert_eq!(
            s.rotate(&r1, 1003, |_| Ok::<(), ()>(())).err(),
            Some(GrantError::Invalid)
        );
    }

    #[test]
    fn a_consent_request_expires_and_has_few_attempts() {
        let s = store();
        let p = pending("c", 1000);
        let h = s.add_pending(p.clone(), 1000).unwrap();
        assert!(s.pending(&h, 1000 + PENDING_LIFETIME - 1).is_some());
        assert!(s.pending(&h, 1000 + PENDING_LIFETIME).is_none());
        let h = s.add_pending(p, 1000).unwrap();
        for _ in 1..MAX_ATTEMPTS {
            assert!(s.failed_attempt(&h, 1001));
        }
        assert!(!s.failed_attempt(&h, 1001));
        assert!(s.pending(&h, 1001).is_none());
    }

    #[test]
    fn tables_are_swept_of_what_expired() {
        let s = store();
        for _ in 0..10 {
            let code = s.issue_code(grant(), 1000).unwrap();
            s.redeem_code(&code, 1001, ok).unwrap().unwrap();
        }
        s.deny("j", 1500, 1001);
        // A day and more later the refresh tokens have expired, and with them their
        // families: nothing is left.
        let later = 1001 + REFRESH_LIFETIME + SWEEP_EVERY;
        let _ = s.pending("x", later);
        assert_eq!(s.sizes(), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_family_refreshed_forever_holds_a_bounded_number_of_entries() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let mut refresh = s.redeem_code(&code, 1001, ok).unwrap().unwrap().refresh;
        let mut seen = Vec::new();
        for i in 0..1000 {
            seen.push(refresh.clone());
            refresh = s
                .rotate(&refresh, 1002 + i, |_| Ok::<_, ()>(()))
                .unwrap()
                .unwrap()
                .refresh;
        }
        assert_eq!(s.sizes()[3], 1 + OLD_REFRESH_KEPT);
        // The last rotated-out token is still known: its reuse revokes the family.
        let last = seen.last().unwrap();
        assert_eq!(
            s.rotate(last, 3000, |_| Ok::<_, ()>(())).err(),
            Some(GrantError::Reused)
        );
        assert_eq!(
            s.rotate(&refresh, 3000, |_| Ok::<_, ()>(())).err(),
            Some(GrantError::Invalid)
        );
    }

    #[test]
    fn one_client_cannot_fill_the_consent_table() {
        let s = store();
        let other = s.add_pending(pending("b", 1000), 1000).unwrap();
        let first = s.add_pending(pending("a", 1000), 1000).unwrap();
        for i in 0..(3 * MAX_PENDING_PER_CLIENT as i64) {
            s.add_pending(pending("a", 1001 + i), 1001).unwrap();
        }
        assert_eq!(s.sizes()[0], MAX_PENDING_PER_CLIENT + 1);
        assert!(
            s.pending(&first, 1001).is_none(),
            "the oldest of a gave way"
        );
        assert!(
            s.pending(&other, 1001).is_some(),
            "b's request is untouched"
        );
    }

    #[test]
    fn a_family_revoked_while_a_token_was_minted_denies_it() {
        let s = store();
        let code = s.issue_code(grant(), 1000).unwrap();
        let f = s.redeem_code(&code, 1001, ok).unwrap().unwrap().family;
        assert_eq!(
            s.redeem_code(&code, 1002, ok).err(),
            Some(GrantError::Reused)
        );
        // A token of that family minted after the revocation (a race) is refused too.
        assert!(s.is_denied("late", &family_entry(f), 1003, 1003));
    }

    #[test]
    fn tokens_from_before_the_store_are_refused() {
        let s = Store::new(Zeroizing::new([7u8; 32]), 5000);
        assert!(s.is_denied("j", "sid:1", 5000, 5001));
        assert!(!s.is_denied("j", "sid:1", 5001, 5001));
        s.deny_before(6000);
        s.deny_before(5500);
        assert!(s.is_denied("j", "sid:1", 6000, 6001));
    }

    #[test]
    fn a_full_denylist_refuses_everything_issued_so_far() {
        let s = store();
        for i in 0..MAX_DENIED {
            s.deny(&format!("j{i}"), 5000, 1000);
        }
        s.deny("last", 5000, 1001);
        assert!(s.is_denied("never-revoked", "sid:1", 1001, 1002));
        assert!(!s.is_denied("never-revoked", "sid:1", 1002, 1002));
    }
}
