//! The bridge's state in Redis, for a fleet of `serve --authorization-server` instances
//! behind one issuer (`--authorization-state redis://…?key=NAME`): any instance may show
//! the consent page, take the person's answer, exchange the code or rotate the refresh
//! token, whichever the load balancer picks.
//!
//! Layout, every key under `mkm:{NAME}:bridge:` (one hash tag: one Cluster slot, so each
//! script below runs whole on one node):
//! - `pending:<h>`: a consent request (hash: `p` its JSON, `n` refused keys, `c` its
//!   client's zset), expiring with it; `pendings` and `pendings:<client h>`: zsets of the
//!   waiting requests by expiry, which bound them (all, and per client);
//! - `code:<h>`: a code (hash: `g` the grant's JSON, `u` the family it started once used),
//!   60 s, then kept an hour once used so that a second use revokes;
//! - `family:<id>`: a refresh family (hash: `k` key id, `c` client id, `s` scopes' JSON,
//!   `e` its end, `r` the current refresh token's `h`, `o` the rotated-out ones kept);
//!   `families`: the counter of family ids;
//! - `refresh:<h>`: `<family id> 1` for the current token, `<family id> 0` for one
//!   rotated out, expiring with it;
//! - `denied`: a zset of revoked access tokens' `jti` and revoked families' `sid:<id>`, by
//!   the time until which a token they name can be valid; `revoked`: the channel each
//!   denial is announced on, as `<entry> <until>` (or `epoch <t>`);
//! - `epoch`: tokens issued at or before it are refused (set when the state is first
//!   used, so an emptied store cannot make revoked tokens good again, and when the
//!   denylist overflows);
//! - `client:<id>`: a client registered at `/register` (its JSON), expiring when unused.
//!
//! `<h>` is the HMAC-SHA-256, under the signing key's derived secret, of a code, refresh
//! token or consent handle, in hex: the store never holds one that works, nor a key, nor
//! the signing key. Every instance signs with the same key (its file, distributed like
//! any secret), so all compute the same `<h>`.
//!
//! Invariants: a code or refresh token is spent by one script that checks and marks it in
//! one step: two instances racing for it cannot both win, and the loser's use revokes the
//! family as a reuse does. `/auth` never waits on Redis: each instance keeps the denylist
//! in memory, loaded when it subscribes and kept by the channel; while the subscription is
//! down for longer than `--max-stale`, this issuer's tokens are refused with 503. Values
//! read back are data (JSON, numbers, hex), never code: the scripts are this file's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::Script;
use zeroize::Zeroizing;

use super::store::{self, Family, Grant, GrantError, Pending, Redeemed, Rotated, Store};
use crate::error::{Error, Result};
use crate::fleet::store::{Conn, Store as Redis};
use crate::serve::log::log;

/// How often the subscription is checked when nothing is announced.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to reach an unreachable store.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connections kept for the endpoints' scripts.
const POOL: usize = 8;
/// A registered client never used is dropped after this long, in seconds.
pub const UNUSED_CLIENT_TTL: i64 = 3600;
/// A registered client not used for this long is dropped, in seconds.
pub const IDLE_CLIENT_TTL: i64 = 30 * 24 * 3600;

/// What every script begins with: its prefix and clock, and how to deny and revoke.
/// `ARGV[1]` the prefix `mkm:{NAME}:bridge:`, `ARGV[2]` the instance's time (seconds).
const PRELUDE: &str = r"
local P = ARGV[1]
local now = tonumber(ARGV[2])
local function deny(entry, untl)
  untl = tonumber(untl)
  if untl + @LEEWAY@ <= now then return end
  local d = P .. 'denied'
  redis.call('ZREMRANGEBYSCORE', d, '-inf', now - @LEEWAY@)
  if redis.call('ZCARD', d) >= @MAX_DENIED@ then
    redis.call('DEL', d)
    redis.call('SET', P .. 'epoch', now)
    redis.call('PUBLISH', P .. 'revoked', 'epoch ' .. now)
    return
  end
  redis.call('ZADD', d, untl, entry)
  redis.call('EXPIRE', d, @FAMILY_DENIAL@ + 2 * @LEEWAY@)
  redis.call('PUBLISH', P .. 'revoked', entry .. ' ' .. untl)
end
local function revoke(fam)
  local f = P .. 'family:' .. fam
  local r = redis.call('HMGET', f, 'r', 'o')
  if r[1] then redis.call('DEL', P .. 'refresh:' .. r[1]) end
  if r[2] then
    for h in string.gmatch(r[2], '%S+') do redis.call('DEL', P .. 'refresh:' .. h) end
  end
  redis.call('DEL', f)
  deny('sid:' .. fam, now + @FAMILY_DENIAL@)
end
";

/// Keeps a consent request. `KEYS[1]` its key; `ARGV[3..]`: its JSON, its client's hash,
/// its end, the bound of all, the bound per client, its lifetime, its hash.
const PENDING_ADD: &str = r"
local all = P .. 'pendings'
local mine = P .. 'pendings:' .. ARGV[4]
redis.call('ZREMRANGEBYSCORE', all, '-inf', now)
redis.call('ZREMRANGEBYSCORE', mine, '-inf', now)
if redis.call('ZCARD', all) >= tonumber(ARGV[6]) then return 0 end
local theirs = redis.call('ZRANGE', mine, 0, -1)
for i = 1, #theirs - tonumber(ARGV[7]) + 1 do
  redis.call('DEL', P .. 'pending:' .. theirs[i])
  redis.call('ZREM', mine, theirs[i])
  redis.call('ZREM', all, theirs[i])
end
redis.call('HSET', KEYS[1], 'p', ARGV[3], 'n', 0, 'c', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', all, ARGV[5], ARGV[9])
redis.call('ZADD', mine, ARGV[5], ARGV[9])
redis.call('EXPIRE', all, ARGV[8])
redis.call('EXPIRE', mine, ARGV[8])
return 1
";

/// Ends a consent request: its JSON, or nil. `KEYS[1]` its key; `ARGV[3]` its hash.
const PENDING_TAKE: &str = r"
local v = redis.call('HMGET', KEYS[1], 'p', 'c')
if not v[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', P .. 'pendings', ARGV[3])
if v[2] then redis.call('ZREM', P .. 'pendings:' .. v[2], ARGV[3]) end
return v[1]
";

/// Counts a refused key: 1 while attempts are left, 0 once dropped (or gone). `KEYS[1]`
/// its key; `ARGV[3..]`: the most attempts, its hash.
const PENDING_FAIL: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], 'n', 1) < tonumber(ARGV[3]) then return 1 end
local c = redis.call('HGET', KEYS[1], 'c')
redis.call('DEL', KEYS[1])
redis.call('ZREM', P .. 'pendings', ARGV[4])
if c then redis.call('ZREM', P .. 'pendings:' .. c, ARGV[4]) end
return 0
";

/// Keeps a code. `KEYS[1]` its key; `ARGV[3..]`: the grant's JSON, its lifetime.
const CODE_ISSUE: &str = r"
redis.call('HSET', KEYS[1], 'g', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Reads a code before its checks: `{'OK', grant}`, `{'INVALID'}`, or `{'REUSED'}` (its
/// family revoked). `KEYS[1]` its key.
const CODE_PEEK: &str = r"
local v = redis.call('HMGET', KEYS[1], 'g', 'u')
if v[2] then revoke(v[2]) return {'REUSED'} end
if not v[1] then return {'INVALID'} end
return {'OK', v[1]}
";

/// Spends a code: starts its family with its first refresh token, in one step.
/// `KEYS[1]` its key; `ARGV[3..]`: the refresh token's hash, key id, client id, scopes'
/// JSON, the family's end, the refresh lifetime, how long a used code is kept.
const CODE_CLAIM: &str = r"
local v = redis.call('HMGET', KEYS[1], 'g', 'u')
if v[2] then revoke(v[2]) return {'REUSED'} end
if not v[1] then return {'INVALID'} end
local fam = tostring(redis.call('INCR', P .. 'families'))
local f = P .. 'family:' .. fam
redis.call('HSET', f, 'k', ARGV[4], 'c', ARGV[5], 's', ARGV[6], 'e', ARGV[7], 'r', ARGV[3], 'o', '')
redis.call('EXPIRE', f, ARGV[8])
redis.call('SET', P .. 'refresh:' .. ARGV[3], fam .. ' 1', 'EX', ARGV[8])
redis.call('HSET', KEYS[1], 'u', fam)
redis.call('EXPIRE', KEYS[1], ARGV[9])
return {'OK', fam}
";

/// Reads a refresh token before its checks: `{'OK', family, key id, client id, scopes,
/// end}`, `{'INVALID'}`, or `{'REUSED'}` (a rotated-out token: its family revoked).
/// `KEYS[1]` its key.
const REFRESH_PEEK: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {'INVALID'} end
local fam, cur = string.match(v, '^(%d+) ([01])$')
if not fam then return {'INVALID'} end
if cur == '0' then revoke(fam) return {'REUSED'} end
local f = redis.call('HMGET', P .. 'family:' .. fam, 'k', 'c', 's', 'e')
if not f[1] then return {'INVALID'} end
return {'OK', fam, f[1], f[2], f[3], f[4]}
";

/// Rotates a refresh token, in one step: `{'OK', family}`, `{'INVALID'}`, or
/// `{'REUSED'}`. `KEYS[1]` its key; `ARGV[3..]`: the next token's hash, the refresh
/// lifetime, how many rotated-out tokens are kept, this token's hash.
const REFRESH_COMMIT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {'INVALID'} end
local fam, cur = string.match(v, '^(%d+) ([01])$')
if not fam then return {'INVALID'} end
if cur == '0' then revoke(fam) return {'REUSED'} end
local f = P .. 'family:' .. fam
if redis.call('EXISTS', f) == 0 then return {'INVALID'} end
redis.call('SET', KEYS[1], fam .. ' 0', 'KEEPTTL')
local old = {}
for h in string.gmatch(redis.call('HGET', f, 'o') or '', '%S+') do table.insert(old, h) end
table.insert(old, ARGV[6])
while #old > tonumber(ARGV[5]) do
  redis.call('DEL', P .. 'refresh:' .. table.remove(old, 1))
end
redis.call('SET', P .. 'refresh:' .. ARGV[3], fam .. ' 1', 'EX', ARGV[4])
redis.call('HSET', f, 'r', ARGV[3], 'o', table.concat(old, ' '))
redis.call('EXPIRE', f, ARGV[4])
return {'OK', fam}
";

/// The scopes' JSON of a current refresh token's family, or nil. `KEYS[1]` its key.
const REFRESH_SCOPES: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local fam, cur = string.match(v, '^(%d+) ([01])$')
if cur ~= '1' then return false end
return redis.call('HGET', P .. 'family:' .. fam, 's')
";

/// Revokes a family. `KEYS[1]` its key; `ARGV[3]` its id.
const FAMILY_REVOKE: &str = r"
revoke(ARGV[3])
return 1
";

/// RFC 7009 for a refresh token: revokes its family if it is the client's (`ARGV[3]`,
/// empty: any). `KEYS[1]` its key.
const REFRESH_REVOKE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local fam = string.match(v, '^(%d+) ')
if not fam then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', P .. 'family:' .. fam, 'c') ~= ARGV[3] then
  return 0
end
revoke(fam)
return 1
";

/// Denies an entry. `KEYS[1]` the denylist; `ARGV[3..]`: the entry, until when.
const DENY: &str = r"
deny(ARGV[3], ARGV[4])
return 1
";

/// The scripts, built once (each with the prelude and this build's bounds).
struct Scripts {
    pending_add: Script,
    pending_take: Script,
    pending_fail: Script,
    code_issue: Script,
    code_peek: Script,
    code_claim: Script,
    refresh_peek: Script,
    refresh_commit: Script,
    refresh_scopes: Script,
    family_revoke: Script,
    refresh_revoke: Script,
    deny: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let leeway = mcp_key_verifier::oauth::LEEWAY_SECONDS.to_string();
        let prelude = PRELUDE
            .replace("@LEEWAY@", &leeway)
            .replace("@MAX_DENIED@", &store::MAX_DENIED.to_string())
            .replace("@FAMILY_DENIAL@", &store::MAX_TOKEN_LIFETIME.to_string());
        let s = |body: &str| Script::new(&format!("{prelude}{body}"));
        Scripts {
            pending_add: s(PENDING_ADD),
            pending_take: s(PENDING_TAKE),
            pending_fail: s(PENDING_FAIL),
            code_issue: s(CODE_ISSUE),
            code_peek: s(CODE_PEEK),
            code_claim: s(CODE_CLAIM),
            refresh_peek: s(REFRESH_PEEK),
            refresh_commit: s(REFRESH_COMMIT),
            refresh_scopes: s(REFRESH_SCOPES),
            family_revoke: s(FAMILY_REVOKE),
            refresh_revoke: s(REFRESH_REVOKE),
            deny: s(DENY),
        }
    }
}

/// What the follower thread and the endpoints share.
struct Inner {
    redis: Redis,
    /// `mkm:{NAME}:bridge:`.
    prefix: String,
    /// The hashing secret and the denylist as the store pushes it.
    local: Arc<Store>,
    /// When the subscription was last known to be alive.
    contact: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

/// The bridge's state in a Redis store.
pub struct Shared {
    inner: Arc<Inner>,
    scripts: Scripts,
    pool: Mutex<Vec<Conn>>,
    /// Whether the last call failed (its failure is logged once, and its recovery).
    down: AtomicBool,
    thread: Option<JoinHandle<()>>,
}

fn to_hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a script's `{'OK', …}`, `{'INVALID'}` or `{'REUSED'}` answer means.
fn verdict(v: &[String]) -> std::result::Result<&[String], GrantError> {
    match v.first().map(String::as_str) {
        Some("OK") => Ok(&v[1..]),
        Some("REUSED") => Err(GrantError::Reused),
        _ => Err(GrantError::Invalid),
    }
}

impl Shared {
    /// The state in the store `url` names, hashed with `local`'s secret; its denylist is
    /// loaded into `local` before this returns, then followed by a thread.
    ///
    /// # Errors
    /// As [`Redis::parse`]; [`Error::Usage`] when the store cannot be reached now.
    pub fn start(url: &str, local: Arc<Store>) -> Result<Shared> {
        let redis = Redis::parse(url)?;
        let prefix = redis.key("bridge:");
        let inner = Arc::new(Inner {
            redis,
            prefix,
            local,
            contact: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let mut con = inner.redis.connect().map_err(|e| {
            Error::usage(format!(
                "--authorization-state: the store cannot be reached: {e}"
            ))
        })?;
        inner
            .load(&mut con)
            .map_err(|e| Error::usage(format!("--authorization-state: {e}")))?;
        let looper = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("bridge-denylist".into())
            .spawn(move || looper.run())
            .map_err(|e| Error::Io {
                context: "start the authorization state's follower".into(),
                source: e,
            })?;
        Ok(Shared {
            inner,
            scripts: Scripts::new(),
            pool: Mutex::new(vec![con]),
            down: AtomicBool::new(false),
            thread: Some(thread),
        })
    }

    /// The store's URL (no secret in it).
    pub fn url(&self) -> &str {
        self.inner.redis.url()
    }

    /// How long ago the denylist's subscription was last known alive.
    pub fn age(&self) -> Option<Duration> {
        self.inner.age()
    }

    fn key(&self, what: &str, h: &[u8]) -> String {
        format!("{}{what}:{}", self.inner.prefix, to_hex(h))
    }

    /// Runs `f` on a pooled connection; a failure is logged once (until a call succeeds)
    /// and drops that connection. A pooled connection that fails (the store restarted
    /// since it was last used) is replaced and `f` tried once more: a script that did run
    /// before the connection failed then finds its code or refresh token spent, and
    /// revokes, which fails closed.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> std::result::Result<T, GrantError> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let answer = match pooled.map(|mut c| (f(&mut c), c)) {
            Some((Err(e), _)) if e.is_io_error() || e.is_connection_dropped() => None,
            Some(done) => Some(done),
            None => None,
        };
        let (answer, con) = match answer {
            Some(done) => done,
            None => match self.inner.redis.connect() {
                Ok(mut c) => (f(&mut c), c),
                Err(e) => return Err(self.failed(&e.to_string())),
            },
        };
        match answer {
            Ok(v) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    log(format_args!(
                        "authorization state: the store {} answers again",
                        self.url()
                    ));
                }
                let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
                if pool.len() < POOL {
                    pool.push(con);
                }
                Ok(v)
            }
            Err(e) => Err(self.failed(&self.inner.redis.io("use", e).to_string())),
        }
    }

    fn failed(&self, why: &str) -> GrantError {
        if !self.down.swap(true, Ordering::Relaxed) {
            log(format_args!(
                "authorization state: {why}; the authorization endpoints answer 503 until \
                 it answers"
            ));
        }
        GrantError::Unavailable
    }

    fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        now: i64,
        args: &[&dyn std::fmt::Display],
    ) -> std::result::Result<T, GrantError> {
        self.with(|con| {
            let mut call = script.key(key);
            call.arg(&self.inner.prefix).arg(now);
            for a in args {
                call.arg(a.to_string());
            }
            call.invoke(con)
        })
    }

    /// Keeps a consent request; its handle, or `None` when too many wait.
    pub fn add_pending(
        &self,
        p: &Pending,
        now: i64,
    ) -> std::result::Result<Option<Zeroizing<String>>, GrantError> {
        let handle = store::random_token();
        let h = self.inner.local.digest(&handle);
        let json = serde_json::to_string(p).map_err(|_| GrantError::Invalid)?;
        let client = to_hex(&self.inner.local.digest(&p.client_id));
        let kept: i64 = self.invoke(
            &self.scripts.pending_add,
            &self.key("pending", &h),
            now,
            &[
                &json,
                &client,
                &p.expires,
                &store::MAX_PENDING,
                &store::MAX_PENDING_PER_CLIENT,
                &store::PENDING_LIFETIME,
                &to_hex(&h),
            ],
        )?;
        Ok((kept == 1).then_some(handle))
    }

    /// The consent request `handle` names, while it lasts.
    pub fn pending(
        &self,
        handle: &str,
        now: i64,
    ) -> std::result::Result<Option<Pending>, GrantError> {
        let key = self.key("pending", &self.inner.local.digest(handle));
        let json: Option<String> =
            self.with(|con| redis::cmd("HGET").arg(&key).arg("p").query(con))?;
        Ok(json
            .and_then(|j| serde_json::from_str::<Pending>(&j).ok())
            .filter(|p| p.expires > now))
    }

    /// Counts a refused key; false when the request has had its attempts (it is dropped).
    pub fn failed_attempt(&self, handle: &str, now: i64) -> std::result::Result<bool, GrantError> {
        let h = self.inner.local.digest(handle);
        let left: i64 = self.invoke(
            &self.scripts.pending_fail,
            &self.key("pending", &h),
            now,
            &[&store::MAX_ATTEMPTS, &to_hex(&h)],
        )?;
        Ok(left == 1)
    }

    /// Ends a consent request (approved or denied): it, if it was still there.
    pub fn take_pending(
        &self,
        handle: &str,
        now: i64,
    ) -> std::result::Result<Option<Pending>, GrantError> {
        let h = self.inner.local.digest(handle);
        let json: Option<String> = self.invoke(
            &self.scripts.pending_take,
            &self.key("pending", &h),
            now,
            &[&to_hex(&h)],
        )?;
        Ok(json
            .and_then(|j| serde_json::from_str::<Pending>(&j).ok())
            .filter(|p| p.expires > now))
    }

    /// A code for `grant`, valid [`store::CODE_LIFETIME`] seconds.
    pub fn issue_code(
        &self,
        grant: &Grant,
        now: i64,
    ) -> std::result::Result<Zeroizing<String>, GrantError> {
        let code = store::random_token();
        let json = serde_json::to_string(&Stamped {
            grant,
            expires: now + store::CODE_LIFETIME,
        })
        .map_err(|_| GrantError::Invalid)?;
        let _: i64 = self.invoke(
            &self.scripts.code_issue,
            &self.key("code", &self.inner.local.digest(&code)),
            now,
            &[&json, &store::CODE_LIFETIME],
        )?;
        Ok(code)
    }

    /// Exchanges `code` as [`Store::redeem_code`] does; spent by one script, so that
    /// instances racing for it cannot both win.
    pub fn redeem_code<E>(
        &self,
        code: &str,
        now: i64,
        check: impl FnOnce(&Grant) -> std::result::Result<Vec<String>, E>,
    ) -> std::result::Result<std::result::Result<Redeemed, E>, GrantError> {
        let key = self.key("code", &self.inner.local.digest(code));
        let seen: Vec<String> = self.invoke(&self.scripts.code_peek, &key, now, &[])?;
        let json = verdict(&seen)?.first().ok_or(GrantError::Invalid)?;
        let stamped: Owned = serde_json::from_str(json).map_err(|_| GrantError::Invalid)?;
        if stamped.expires <= now {
            return Err(GrantError::Invalid);
        }
        let grant = stamped.grant;
        let scopes = match check(&grant) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let refresh = store::random_token();
        let scopes_json = serde_json::to_string(&scopes).map_err(|_| GrantError::Invalid)?;
        let claimed: Vec<String> = self.invoke(
            &self.scripts.code_claim,
            &key,
            now,
            &[
                &to_hex(&self.inner.local.digest(&refresh)),
                &grant.key_id,
                &grant.client_id,
                &scopes_json,
                &(now + store::FAMILY_LIFETIME),
                &store::REFRESH_LIFETIME,
                &store::USED_CODE_MEMORY,
            ],
        )?;
        let family = family_id(verdict(&claimed)?)?;
        Ok(Ok(Redeemed {
            grant,
            scopes,
            family,
            refresh,
        }))
    }

    /// Rotates `refresh` as [`Store::rotate`] does; spent by one script.
    pub fn rotate<E>(
        &self,
        refresh: &str,
        now: i64,
        check: impl FnOnce(&Family) -> std::result::Result<(), E>,
    ) -> std::result::Result<std::result::Result<Rotated, E>, GrantError> {
        let h = self.inner.local.digest(refresh);
        let key = self.key("refresh", &h);
        let seen: Vec<String> = self.invoke(&self.scripts.refresh_peek, &key, now, &[])?;
        let [id, key_id, client_id, scopes, end] = verdict(&seen)? else {
            return Err(GrantError::Invalid);
        };
        let id: u64 = id.parse().map_err(|_| GrantError::Invalid)?;
        let end: i64 = end.parse().map_err(|_| GrantError::Invalid)?;
        if end <= now {
            return Err(GrantError::Invalid);
        }
        let scopes: Vec<String> = serde_json::from_str(scopes).map_err(|_| GrantError::Invalid)?;
        let family = Family::new(key_id.clone(), client_id.clone(), scopes, end);
        if let Err(e) = check(&family) {
            let _: i64 = self.invoke(
                &self.scripts.family_revoke,
                &format!("{}family:{id}", self.inner.prefix),
                now,
                &[&id],
            )?;
            return Ok(Err(e));
        }
        let next = store::random_token();
        let done: Vec<String> = self.invoke(
            &self.scripts.refresh_commit,
            &key,
            now,
            &[
                &to_hex(&self.inner.local.digest(&next)),
                &store::REFRESH_LIFETIME,
                &store::OLD_REFRESH_KEPT,
                &to_hex(&h),
            ],
        )?;
        family_id(verdict(&done)?)?;
        Ok(Ok(Rotated {
            family,
            id,
            refresh: next,
        }))
    }

    /// The scopes granted to the family of the current refresh token `refresh`.
    pub fn family_scopes(&self, refresh: &str, now: i64) -> Option<Vec<String>> {
        let key = self.key("refresh", &self.inner.local.digest(refresh));
        let json: Option<String> = self
            .invoke(&self.scripts.refresh_scopes, &key, now, &[])
            .ok()?;
        serde_json::from_str(&json?).ok()
    }

    /// RFC 7009 for a refresh token: its family, if it is `client_id`'s (any: `None`).
    pub fn revoke_refresh(
        &self,
        refresh: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> std::result::Result<(), GrantError> {
        let key = self.key("refresh", &self.inner.local.digest(refresh));
        let _: i64 = self.invoke(
            &self.scripts.refresh_revoke,
            &key,
            now,
            &[&client_id.unwrap_or("")],
        )?;
        Ok(())
    }

    /// Denies an access token's `jti` (or a family entry) until `until`: in the store, on
    /// the channel, and here at once.
    pub fn deny(&self, entry: &str, until: i64, now: i64) -> std::result::Result<(), GrantError> {
        self.inner.local.deny(entry, until, now);
        let key = format!("{}denied", self.inner.prefix);
        let _: i64 = self.invoke(&self.scripts.deny, &key, now, &[&entry, &until])?;
        Ok(())
    }

    /// Keeps a client registered at `/register` (`json`, its document) for
    /// [`UNUSED_CLIENT_TTL`].
    pub fn keep_client(&self, id: &str, json: &str) -> std::result::Result<(), GrantError> {
        let key = format!("{}client:{id}", self.inner.prefix);
        self.with(|con| {
            redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(UNUSED_CLIENT_TTL)
                .query(con)
        })
    }

    /// The document of registered client `id`, if the store still has it.
    pub fn client(&self, id: &str) -> std::result::Result<Option<String>, GrantError> {
        let key = format!("{}client:{id}", self.inner.prefix);
        self.with(|con| redis::cmd("GET").arg(&key).query(con))
    }

    /// Keeps registered client `id` while it is used ([`IDLE_CLIENT_TTL`] from now).
    pub fn client_used(&self, id: &str) {
        let key = format!("{}client:{id}", self.inner.prefix);
        let _ = self.with(|con| {
            redis::cmd("EXPIRE")
                .arg(&key)
                .arg(IDLE_CLIENT_TTL)
                .query::<i64>(con)
        });
    }
}

/// A grant with the end of its code, as a code's value holds it.
#[derive(serde::Serialize)]
struct Stamped<'a> {
    grant: &'a Grant,
    expires: i64,
}

/// [`Stamped`], read back.
#[derive(serde::Deserialize)]
struct Owned {
    grant: Grant,
    expires: i64,
}

fn family_id(rest: &[String]) -> std::result::Result<u64, GrantError> {
    rest.first()
        .and_then(|f| f.parse().ok())
        .ok_or(GrantError::Invalid)
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        // The thread wakes at least every poll interval (or I/O timeout) and sees the flag.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn age(&self) -> Option<Duration> {
        self.contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    fn touch(&self) {
        *self.contact.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// Reads the epoch (setting it when the state is new) and the whole denylist into the
    /// local store.
    fn load(&self, con: &mut Conn) -> Result<()> {
        let now = chrono::Utc::now().timestamp();
        let epoch_key = format!("{}epoch", self.prefix);
        let io = |e| self.redis.io("read the authorization state from", e);
        let _: Option<String> = redis::cmd("SET")
            .arg(&epoch_key)
            .arg(now - 1)
            .arg("NX")
            .query(con)
            .map_err(io)?;
        let epoch: Option<i64> = redis::cmd("GET").arg(&epoch_key).query(con).map_err(io)?;
        let leeway = mcp_key_verifier::oauth::LEEWAY_SECONDS as i64;
        let denied: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(format!("{}denied", self.prefix))
            .arg(now - leeway)
            .arg("+inf")
            .arg("WITHSCORES")
            .query(con)
            .map_err(io)?;
        self.local.deny_before(epoch.unwrap_or(now));
        for (entry, until) in denied {
            self.local.deny(&entry, until as i64, now);
        }
        self.touch();
        Ok(())
    }

    /// Applies one announcement: `<entry> <until>` or `epoch <t>`.
    fn apply(&self, msg: &str) {
        let now = chrono::Utc::now().timestamp();
        match msg.split_once(' ') {
            Some(("epoch", t)) => {
                if let Ok(t) = t.parse() {
                    self.local.deny_before(t);
                }
            }
            Some((entry, until)) => {
                if let Ok(until) = until.parse() {
                    self.local.deny(entry, until, now);
                }
            }
            None => {}
        }
    }

    fn run(&self) {
        let mut backoff = Duration::from_millis(100);
        let mut down = false;
        while !self.stopped() {
            match self.follow_once(&mut down) {
                Ok(()) => return,
                Err(e) => {
                    if !down {
                        log(format_args!(
                            "authorization state: {e}; retrying (this issuer's tokens are \
                             refused once it is out of reach for longer than --max-stale)"
                        ));
                        down = true;
                    }
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stopped() {
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Subscribes, loads, and follows until the connection fails (`Err`) or the bridge
    /// stops (`Ok`).
    fn follow_once(&self, down: &mut bool) -> Result<()> {
        let mut con = self.redis.connect()?;
        let mut sub = self.redis.subscriber()?;
        let mut pubsub = sub.as_pubsub();
        let io = |e| self.redis.io("follow the authorization state in", e);
        pubsub.subscribe(self.channel()).map_err(io)?;
        pubsub.set_read_timeout(Some(POLL)).map_err(io)?;
        // Subscribed first: a denial announced while loading is not missed.
        self.load(&mut con)?;
        if std::mem::take(down) {
            log(format_args!(
                "authorization state: the store {} is reachable again",
                self.redis.url()
            ));
        }
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(m) => {
                    if let Ok(payload) = m.get_payload::<String>() {
                        self.apply(&payload);
                    }
                    self.touch();
                }
                Err(e) if e.is_timeout() => {
                    // Quiet: the store is asked directly whether it is still there (a
                    // command on the state's own key: on a Cluster, its node answers).
                    let _: i64 = redis::cmd("EXISTS")
                        .arg(format!("{}epoch", self.prefix))
                        .query(&mut con)
                        .map_err(io)?;
                    self.touch();
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_answers_are_read_as_the_store_means_them() {
        let ok = vec!["OK".to_string(), "7".to_string()];
        assert_eq!(family_id(verdict(&ok).unwrap()), Ok(7));
        assert_eq!(
            verdict(&["REUSED".to_string()]).err(),
            Some(GrantError::Reused)
        );
        assert_eq!(
            verdict(&["INVALID".to_string()]).err(),
            Some(GrantError::Invalid)
        );
        assert_eq!(verdict(&[]).err(), Some(GrantError::Invalid));
        assert_eq!(family_id(&["x".to_string()]), Err(GrantError::Invalid));
    }

    #[test]
    fn hashes_are_hex() {
        assert_eq!(to_hex(&[0, 15, 255]), "000fff");
    }
}
