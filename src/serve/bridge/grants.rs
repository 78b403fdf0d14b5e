//! Where the bridge keeps its state: in this process ([`Store`], one instance), or in a
//! Redis store a fleet shares ([`Shared`], `--authorization-state redis://…`). Either way
//! the denylist `/auth` reads is in this process's memory, so a request never waits on
//! Redis; only the authorization endpoints do (off the async workers, see
//! `Bridge::off_thread`).

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::shared::Shared;
use super::store::{Family, Grant, GrantError, Pending, Redeemed, Rotated, Store};

type Hash = [u8; 32];
type Answer<T> = std::result::Result<T, GrantError>;

/// The bridge's state.
pub enum Grants {
    /// In this process.
    Local(Box<Store>),
    /// In a shared store (which keeps the hashing secret and the denylist as pushed here).
    Shared(Arc<Shared>),
}

impl Grants {
    fn local(&self) -> &Store {
        match self {
            Grants::Local(s) => s,
            Grants::Shared(shared) => shared.local(),
        }
    }

    /// The shared store, if the state is there.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        match self {
            Grants::Local(_) => None,
            Grants::Shared(shared) => Some(shared),
        }
    }

    /// How long ago the shared denylist was last known current (`None` in one process).
    pub fn age(&self) -> Option<Duration> {
        self.shared().and_then(|s| s.age())
    }

    /// The keyed hash of a CSRF value or cookie.
    pub fn digest(&self, s: &str) -> Hash {
        self.local().digest(s)
    }

    /// Whether `s` hashes to `h`, in constant time.
    pub fn matches(&self, s: &str, h: &Hash) -> bool {
        self.local().matches(s, h)
    }

    /// Whether an access token (`jti`, family entry, `iat`) was revoked: from memory.
    pub fn is_denied(&self, jti: &str, family: &str, iat: i64, now: i64) -> bool {
        self.local().is_denied(jti, family, iat, now)
    }

    /// Keeps a consent request; its handle, or `None` when too many wait.
    pub fn add_pending(&self, p: Pending, now: i64) -> Answer<Option<Zeroizing<String>>> {
        match self {
            Grants::Local(s) => Ok(s.add_pending(p, now)),
            Grants::Shared(shared) => shared.add_pending(&p),
        }
    }

    /// The consent request `handle` names, while it lasts.
    pub fn pending(&self, handle: &str, now: i64) -> Answer<Option<Pending>> {
        match self {
            Grants::Local(s) => Ok(s.pending(handle, now)),
            Grants::Shared(shared) => shared.pending(handle, now),
        }
    }

    /// Counts a refused key; false once the request has had its attempts.
    pub fn failed_attempt(&self, handle: &str, now: i64) -> Answer<bool> {
        match self {
            Grants::Local(s) => Ok(s.failed_attempt(handle, now)),
            Grants::Shared(shared) => shared.failed_attempt(handle),
        }
    }

    /// Ends a consent request.
    pub fn take_pending(&self, handle: &str, now: i64) -> Answer<Option<Pending>> {
        match self {
            Grants::Local(s) => Ok(s.take_pending(handle, now)),
            Grants::Shared(shared) => shared.take_pending(handle, now),
        }
    }

    /// A code for `grant`.
    pub fn issue_code(&self, grant: Grant, now: i64) -> Answer<Zeroizing<String>> {
        match self {
            Grants::Local(s) => s.issue_code(grant, now),
            Grants::Shared(shared) => shared.issue_code(&grant, now),
        }
    }

    /// Exchanges `code` (see [`Store::redeem_code`]).
    pub fn redeem_code<E>(
        &self,
        code: &str,
        now: i64,
        check: impl FnOnce(&Grant) -> Result<Vec<String>, E>,
    ) -> Answer<Result<Redeemed, E>> {
        match self {
            Grants::Local(s) => s.redeem_code(code, now, check),
            Grants::Shared(shared) => shared.redeem_code(code, now, check),
        }
    }

    /// Rotates `refresh` (see [`Store::rotate`]).
    pub fn rotate<E>(
        &self,
        refresh: &str,
        now: i64,
        check: impl FnOnce(&Family) -> Result<(), E>,
    ) -> Answer<Result<Rotated, E>> {
        match self {
            Grants::Local(s) => s.rotate(refresh, now, check),
            Grants::Shared(shared) => shared.rotate(refresh, now, check),
        }
    }

    /// The scopes granted to the family of the current refresh token `refresh`.
    pub fn family_scopes(&self, refresh: &str, now: i64) -> Option<Vec<String>> {
        match self {
            Grants::Local(s) => s.family_scopes(refresh, now),
            Grants::Shared(shared) => shared.family_scopes(refresh),
        }
    }

    /// RFC 7009 for a refresh token.
    pub fn revoke_refresh(&self, refresh: &str, client_id: Option<&str>, now: i64) -> Answer<()> {
        match self {
            Grants::Local(s) => {
                s.revoke_refresh(refresh, client_id, now);
                Ok(())
            }
            Grants::Shared(shared) => shared.revoke_refresh(refresh, client_id),
        }
    }

    /// Revokes family `id`: its refresh tokens, and its access tokens (RFC 7009 for one
    /// of them: the grant goes with it).
    pub fn revoke_family(&self, id: u64, now: i64) -> Answer<()> {
        match self {
            Grants::Local(s) => {
                s.revoke_family(id, now);
                Ok(())
            }
            Grants::Shared(shared) => shared.revoke_family(id),
        }
    }
}
