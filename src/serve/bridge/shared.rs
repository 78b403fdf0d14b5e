//! The bridge's state in Redis, for a fleet of `serve --authorization-server` instances
//! behind one issuer (`--authorization-state redis://…?key=NAME`): any instance may show
//! the consent page, take the person's answer, exchange the code or rotate the refresh
//! token, whichever the load balancer picks.
//!
//! Layout, every key under `mkm:{NAME}:bridge:` (one hash tag: one Cluster slot, so each
//! script below runs whole on one node):
//! - `pending:<h>`: a consent request (hash: `p` its sealed JSON, `n` refused keys, `c` its
//!   client's zset), expiring with it; `pendings` and `pendings:<client h>`: zsets of the
//!   waiting requests by expiry, which bound them (all, and per client);
//! - `code:<h>`: a code (hash: `g` the sealed grant, `u` the family it started once used),
//!   60 s, then kept an hour once used so that a second use revokes;
//! - `family:<id>`: a refresh family, `<id>` random (hash: `k` key id, `c` client id, `s`
//!   scopes' JSON, `e` its end, `t` its start, `m` their seal, `r` the current refresh
//!   token's `h`, `o` the rotated-out ones kept);
//! - `refresh:<h>`: `<family id> 1 <seal>` for the current token, `<family id> 0 <seal>` for
//!   one rotated out, expiring with it;
//! - `denied`: a zset of revoked access tokens' `jti` and revoked families' `sid:<id>`, by
//!   the time until which a token they name can be valid; `revoked`: the channel each
//!   denial is announced on, as `<entry> <until>` (or `epoch <t>`, or an instance's
//!   heartbeat `hb <nonce> <n>`);
//! - `epoch`: tokens, codes and families issued at or before it are refused; `server`: the
//!   `run_id` of the Redis server the state was last seen on. A state seen for the first
//!   time, on another server (restarted, failed over: it may have lost recent writes, such
//!   as a spent code or a rotated refresh token), or emptied, moves the epoch to now;
//! - `client:<id>`: a client registered at `/register` (sealed JSON), expiring when unused;
//!   `registrations:<minute>`: the fleet's registrations that minute.
//!
//! `<h>` is the HMAC-SHA-256, under the signing key's derived secret, of a code, refresh
//! token or consent handle, in hex: the store never holds one that works, nor a key, nor
//! the signing key. A seal is an HMAC under the same secret over a value and what it is
//! bound to: whoever can write the store but lacks the signing key cannot make a refresh
//! token stand for another key, widen a grant, or change a client's redirect URIs. Every
//! instance signs with the same key (its file, distributed like any secret).
//!
//! Invariants: a code or refresh token is spent by one script that checks and marks it in
//! one step: two instances racing for it cannot both win, and the loser's use revokes the
//! family as a reuse does. `/auth` never waits on Redis: each instance keeps the denylist
//! in memory, loaded when it subscribes and kept by the channel; the subscription is
//! proven alive by the instance's own heartbeat coming back through it, and while it is
//! not, for longer than `--max-stale`, this issuer's tokens are refused with 503. Times in
//! the store are the store's (`TIME`); an instance whose clock is more than [`MAX_SKEW`]
//! away from it is refused. Values read back are data (sealed JSON, numbers, hex), never
//! code: the scripts are this file's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use redis::Script;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::store::{self, Family, Grant, GrantError, Pending, Redeemed, Rotated, Store};
use crate::error::{Error, Result};
use crate::fleet::store::{Conn, Store as Redis};
use crate::serve::log::log;

/// How often the subscription is proven alive (a heartbeat sent through it when quiet).
const POLL: Duration = Duration::from_secs(1);
/// A heartbeat not back after this long: the subscription is taken for dead.
const HEARTBEAT_LOST: Duration = Duration::from_secs(3);
/// The longest wait between two attempts to reach an unreachable store.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connections to the store in use at once (a request beyond waits for one).
const POOL: usize = 32;
/// How long a request waits for a connection before it is answered 503.
const POOL_WAIT: Duration = Duration::from_secs(1);
/// The farthest this machine's clock may be from the store's, in seconds.
pub const MAX_SKEW: i64 = 30;
/// How long a revoked family is denied: its longest token, and the leeway a token is
/// judged with, so that a token minted on a clock up to that far ahead is covered.
const FAMILY_DENIAL: i64 =
    store::MAX_TOKEN_LIFETIME + mcp_key_verifier::oauth::LEEWAY_SECONDS as i64;
/// How long past its `until` (store time) a denial is kept: the leeway a token is judged
/// with, on a clock up to [`MAX_SKEW`] away.
const KEEP: i64 = mcp_key_verifier::oauth::LEEWAY_SECONDS as i64 + MAX_SKEW;
/// A registered client never used is dropped after this long, in seconds.
pub const UNUSED_CLIENT_TTL: i64 = 3600;
/// A registered client not used for this long is dropped, in seconds.
pub const IDLE_CLIENT_TTL: i64 = 30 * 24 * 3600;

/// What every script but the heartbeat begins with: its prefix and the store's clock, and
/// how to deny and revoke (denied first: a script stopped half-way, by memory, leaves a
/// family denied rather than its tokens deleted but not denied). `ARGV[1]` is the prefix
/// `mkm:{NAME}:bridge:`.
const PRELUDE: &str = r"
local P = ARGV[1]
local now = tonumber(redis.call('TIME')[1])
local function deny(entry, untl)
  untl = tonumber(untl)
  if not untl or untl + @KEEP@ <= now then return end
  local d = P .. 'denied'
  redis.call('ZREMRANGEBYSCORE', d, '-inf', now - @KEEP@)
  if redis.call('ZCARD', d) >= @MAX_DENIED@ then
    redis.call('DEL', d)
    if now > (tonumber(redis.call('GET', P .. 'epoch')) or 0) then
      redis.call('SET', P .. 'epoch', now)
    end
    redis.call('PUBLISH', P .. 'revoked', 'epoch ' .. now)
    return
  end
  redis.call('ZADD', d, untl, entry)
  redis.call('PUBLISH', P .. 'revoked', entry .. ' ' .. untl)
end
local function revoke(fam)
  deny('sid:' .. fam, now + @FAMILY_DENIAL@)
  local f = P .. 'family:' .. fam
  local r = redis.call('HMGET', f, 'r', 'o')
  if r[1] then redis.call('DEL', P .. 'refresh:' .. r[1]) end
  if r[2] then
    for h in string.gmatch(r[2], '%S+') do redis.call('DEL', P .. 'refresh:' .. h) end
  end
  redis.call('DEL', f)
end
local function moved()
  local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  return not id or id ~= redis.call('GET', P .. 'server')
end
";

/// Checks in with the store: moves the epoch to now when the state is new, emptied, or
/// on another server than the one it was last seen on (restarted, failed over: it may
/// have lost writes), and publishes an instance's heartbeat (`ARGV[2]`, unless empty)
/// from the state's own node. `KEYS`: epoch, server. Returns `{epoch, now,
/// redis_version, run_id}`.
const CHECK_IN: &str = r"
local info = redis.call('INFO', 'server')
local id = string.match(info, 'run_id:(%x+)') or ''
local version = string.match(info, 'redis_version:([%d.]+)') or '0'
local epoch = tonumber(redis.call('GET', KEYS[1]))
if id ~= '' and (redis.call('GET', KEYS[2]) ~= id or not epoch) then
  local e = now - 1
  if not epoch or e > epoch then
    epoch = e
    redis.call('SET', KEYS[1], e)
    redis.call('PUBLISH', P .. 'revoked', 'epoch ' .. e)
  end
  redis.call('SET', KEYS[2], id)
end
if ARGV[2] ~= '' then redis.call('PUBLISH', P .. 'revoked', ARGV[2]) end
return {tostring(epoch or 0), tostring(now), version, id}
";

/// Keeps a consent request. `KEYS`: it, all waiting, its client's waiting; `ARGV[2..]`:
/// its sealed JSON, its hash, the bound of all, the bound per client, its lifetime.
const PENDING_ADD: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
local theirs = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #theirs - tonumber(ARGV[5]) + 1 do
  redis.call('DEL', P .. 'pending:' .. theirs[i])
  redis.call('ZREM', KEYS[3], theirs[i])
  redis.call('ZREM', KEYS[2], theirs[i])
end
redis.call('HSET', KEYS[1], 'p', ARGV[2], 'n', 0, 'c', KEYS[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], now + ARGV[6], ARGV[3])
redis.call('ZADD', KEYS[3], now + ARGV[6], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
";

/// Ends a consent request: its sealed JSON, or nil. `KEYS`: it, all waiting; `ARGV[2]`
/// its hash.
const PENDING_TAKE: &str = r"
local v = redis.call('HMGET', KEYS[1], 'p', 'c')
if not v[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if v[2] then redis.call('ZREM', v[2], ARGV[2]) end
return v[1]
";

/// Counts a refused key: 1 while attempts are left, 0 once dropped (or gone). `KEYS`: it,
/// all waiting; `ARGV[2..]`: the most attempts, its hash.
const PENDING_FAIL: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], 'n', 1) < tonumber(ARGV[2]) then return 1 end
local c = redis.call('HGET', KEYS[1], 'c')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
if c then redis.call('ZREM', c, ARGV[3]) end
return 0
";

/// Keeps a code. `KEYS[1]` it; `ARGV[2..]`: the sealed grant, its lifetime.
const CODE_ISSUE: &str = r"
redis.call('HSET', KEYS[1], 'g', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Reads a code before its checks: `{'OK', grant}`, `{'INVALID'}`, or `{'REUSED', family}`
/// (its family revoked). `KEYS[1]` it.
const CODE_PEEK: &str = r"
local v = redis.call('HMGET', KEYS[1], 'g', 'u')
if v[2] then revoke(v[2]) return {'REUSED', v[2]} end
if not v[1] then return {'INVALID'} end
return {'OK', v[1]}
";

/// Spends a code, in one step: starts its family with its first refresh token. Sent again
/// (a reply lost, the client library retrying), it finds its own family and answers OK;
/// on a store that is not the server the state was last seen on, `{'MOVED'}`.
/// `KEYS`: the code, the family, the refresh token; `ARGV[2..]`: the grant as read (it
/// must be unchanged), the family id, key id, client id, scopes' JSON, end, start, seal,
/// the refresh token's hash and value, the refresh lifetime, how long a used code is kept,
/// when the code was issued (not after the store's epoch). `{'OK', the store's time}`.
const CODE_CLAIM: &str = r"
if moved() then return {'MOVED'} end
local v = redis.call('HMGET', KEYS[1], 'g', 'u')
if v[2] == ARGV[3] then return {'OK', tostring(now)} end
if v[2] then revoke(v[2]) return {'REUSED', v[2]} end
if v[1] ~= ARGV[2] or redis.call('EXISTS', KEYS[2]) == 1 then return {'INVALID'} end
if tonumber(ARGV[14]) <= (tonumber(redis.call('GET', P .. 'epoch')) or 0) then
  return {'INVALID'}
end
redis.call('HSET', KEYS[2], 'k', ARGV[4], 'c', ARGV[5], 's', ARGV[6], 'e', ARGV[7],
  't', ARGV[8], 'm', ARGV[9], 'r', ARGV[10], 'o', '')
redis.call('EXPIRE', KEYS[2], ARGV[12])
redis.call('SET', KEYS[3], ARGV[11], 'EX', ARGV[12])
redis.call('HSET', KEYS[1], 'u', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[13])
return {'OK', tostring(now)}
";

/// Reads a refresh token before its checks: `{'OK', value, key id, client id, scopes,
/// end, start, seal}`, `{'INVALID'}`, or `{'REUSED', family}` (a rotated-out token: its
/// family revoked). `KEYS[1]` it.
const REFRESH_PEEK: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {'INVALID'} end
local fam, cur = string.match(v, '^(%d+) ([01]) %x+$')
if not fam then return {'INVALID'} end
if cur == '0' then revoke(fam) return {'REUSED', fam} end
local f = redis.call('HMGET', P .. 'family:' .. fam, 'k', 'c', 's', 'e', 't', 'm')
if not f[1] then return {'INVALID'} end
return {'OK', v, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or ''}
";

/// Rotates a refresh token, in one step: `{'OK', the store's time}`, `{'INVALID'}` (also
/// for a family started before the store's epoch), `{'REUSED', family}`, or `{'MOVED'}`;
/// sent again after it was done, it finds its own rotation and answers OK.
/// `KEYS`: the token, its family, the next token; `ARGV[2..]`: the token's value as read
/// (it must be unchanged), its rotated-out value, the next token's value, the refresh
/// lifetime, how many rotated-out tokens are kept, this token's hash, the next one's.
const REFRESH_COMMIT: &str = r"
if moved() then return {'MOVED'} end
local v = redis.call('GET', KEYS[1])
if not v then return {'INVALID'} end
local fam, cur = string.match(v, '^(%d+) ([01]) %x+$')
if not fam then return {'INVALID'} end
if v == ARGV[3] and redis.call('HGET', KEYS[2], 'r') == ARGV[8] then
  return {'OK', tostring(now)}
end
if cur == '0' then revoke(fam) return {'REUSED', fam} end
if v ~= ARGV[2] or redis.call('EXISTS', KEYS[2]) == 0 then return {'INVALID'} end
local start = tonumber(redis.call('HGET', KEYS[2], 't')) or 0
if start <= (tonumber(redis.call('GET', P .. 'epoch')) or 0) then return {'INVALID'} end
redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
local old = {}
for h in string.gmatch(redis.call('HGET', KEYS[2], 'o') or '', '%S+') do
  table.insert(old, h)
end
table.insert(old, ARGV[7])
while #old > tonumber(ARGV[6]) do
  redis.call('DEL', P .. 'refresh:' .. table.remove(old, 1))
end
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
redis.call('HSET', KEYS[2], 'r', ARGV[8], 'o', table.concat(old, ' '))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {'OK', tostring(now)}
";

/// The scopes' JSON of a current refresh token's family, or nil. `KEYS[1]` the token.
const REFRESH_SCOPES: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local fam, cur = string.match(v, '^(%d+) ([01]) %x+$')
if cur ~= '1' then return false end
return redis.call('HGET', P .. 'family:' .. fam, 's')
";

/// Revokes a family. `KEYS[1]` it; `ARGV[2]` its id.
const FAMILY_REVOKE: &str = r"
revoke(ARGV[2])
return 1
";

/// RFC 7009 for a refresh token: revokes its family if it is the client's (`ARGV[2]`,
/// empty: any); the family id, or nil. `KEYS[1]` the token.
const REFRESH_REVOKE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local fam = string.match(v, '^(%d+) ')
if not fam then return false end
if ARGV[2] ~= '' and redis.call('HGET', P .. 'family:' .. fam, 'c') ~= ARGV[2] then
  return false
end
revoke(fam)
return fam
";

/// Keeps a registered client unless the fleet registered its share this minute: 1 kept,
/// 0 refused. `KEYS[1]` it; `ARGV[2..]`: its sealed JSON, its lifetime, the share.
const REGISTER: &str = r"
local count = P .. 'registrations:' .. math.floor(now / 60)
if redis.call('INCR', count) > tonumber(ARGV[4]) then return 0 end
redis.call('EXPIRE', count, 120)
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
";

/// The scripts, built once (each with the prelude and this build's bounds).
struct Scripts {
    check_in: Script,
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
    register: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let prelude = PRELUDE
            .replace("@KEEP@", &KEEP.to_string())
            .replace("@MAX_DENIED@", &store::MAX_DENIED.to_string())
            .replace("@FAMILY_DENIAL@", &FAMILY_DENIAL.to_string());
        let s = |body: &str| Script::new(&format!("{prelude}{body}"));
        Scripts {
            check_in: s(CHECK_IN),
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
            register: s(REGISTER),
        }
    }
}

/// Connections to the store, at most [`POOL`] in use at once.
struct Pool<C> {
    /// Idle connections, and how many are in use (or being opened).
    state: Mutex<(Vec<C>, usize)>,
    freed: Condvar,
}

impl<C> Pool<C> {
    /// An idle connection (`Some`), or leave to open one (`None`); `Err` when none frees
    /// within [`POOL_WAIT`].
    fn take(&self) -> std::result::Result<Option<C>, ()> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(c) = s.0.pop() {
                s.1 += 1;
                return Ok(Some(c));
            }
            if s.1 < POOL {
                s.1 += 1;
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(());
            }
            s = self
                .freed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Gives a taken slot back, with its connection if it is still good.
    fn give(&self, con: Option<C>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1 -= 1;
        if let Some(c) = con {
            s.0.push(c);
        }
        drop(s);
        self.freed.notify_one();
    }
}

/// What the follower thread and the endpoints share.
struct Inner {
    redis: Redis,
    /// `mkm:{NAME}:bridge:`.
    prefix: String,
    /// The hashing secret and the denylist as the store pushes it.
    local: Store,
    scripts: Scripts,
    /// When the subscription was last proven alive, in milliseconds after `started`, plus
    /// one (0: never). An atomic: every `/auth` with this issuer's token reads it.
    contact: AtomicU64,
    started: Instant,
    /// Whether this machine's clock was last found more than [`MAX_SKEW`] off the
    /// store's: the endpoints then decide nothing.
    skewed: AtomicBool,
    stop: AtomicBool,
}

/// The bridge's state in a Redis store.
pub struct Shared {
    inner: Arc<Inner>,
    pool: Pool<Conn>,
    /// The key of the seals: derived from the hashing secret, apart from the key that
    /// names records (a record's name, seen by whoever watches the store, is no seal).
    seal_key: Zeroizing<[u8; 32]>,
    /// Whether the last call failed (its failure is logged once, and its recovery).
    down: AtomicBool,
    /// Records refused for their seal since it was last logged, and when it was.
    unsealed: Mutex<(u64, Option<Instant>)>,
    thread: Option<JoinHandle<()>>,
}

/// A slot of the pool taken: given back when dropped, so that a panic frees it too.
struct Lease<'p, C> {
    pool: &'p Pool<C>,
    given: bool,
}

impl<C> Lease<'_, C> {
    fn give(mut self, con: Option<C>) {
        self.given = true;
        self.pool.give(con);
    }
}

impl<C> Drop for Lease<'_, C> {
    fn drop(&mut self) {
        if !self.given {
            self.pool.give(None);
        }
    }
}

fn to_hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a script's `{'OK', …}`, `{'INVALID'}`, `{'REUSED', family}` or `{'MOVED'}`
/// answer means.
enum Verdict<'a> {
    Ok(&'a [String]),
    Invalid,
    Reused(u64),
    /// The store is not the server the state was last seen on: nothing was done.
    Moved,
}

fn verdict(v: &[String]) -> Verdict<'_> {
    match v.first().map(String::as_str) {
        Some("OK") => Verdict::Ok(&v[1..]),
        Some("MOVED") => Verdict::Moved,
        Some("REUSED") => v
            .get(1)
            .and_then(|f| f.parse().ok())
            .map_or(Verdict::Invalid, Verdict::Reused),
        _ => Verdict::Invalid,
    }
}

/// A random family id (never 0).
fn family_id() -> u64 {
    let mut b = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    u64::from_le_bytes(b).max(1)
}

/// A code as its peek read it: its key, its sealed value, and when it was issued.
#[derive(Clone, Copy)]
struct CodeRead<'a> {
    key: &'a str,
    value: &'a str,
    issued: i64,
}

/// What a code's value holds: its grant, and when it was issued and ends.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stamped {
    grant: Grant,
    issued: i64,
    expires: i64,
}

impl Shared {
    /// The state in the store `url` names, hashed and sealed with `local`'s secret; its
    /// denylist is loaded into `local` before this returns, then followed by a thread.
    ///
    /// # Errors
    /// As [`Redis::parse`]; [`Error::Usage`] when the store cannot be reached now, is
    /// older than Redis 6, or keeps a clock more than [`MAX_SKEW`] away from this one.
    pub fn start(url: &str, local: Store) -> Result<Shared> {
        let redis = Redis::parse(url)?;
        let prefix = redis.key("bridge:");
        let inner = Arc::new(Inner {
            redis,
            prefix,
            local,
            scripts: Scripts::new(),
            contact: AtomicU64::new(0),
            started: Instant::now(),
            skewed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let seal_key = Zeroizing::new(inner.local.digest("mcp-key-manager bridge seals v1"));
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
            pool: Pool {
                state: Mutex::new((vec![con], 0)),
                freed: Condvar::new(),
            },
            seal_key,
            down: AtomicBool::new(false),
            unsealed: Mutex::new((0, None)),
            thread: Some(thread),
        })
    }

    /// The store's URL (no secret in it).
    pub fn url(&self) -> &str {
        self.inner.redis.url()
    }

    /// The hashing secret, and the denylist as the store pushes it.
    pub fn local(&self) -> &Store {
        &self.inner.local
    }

    /// How long ago the denylist's subscription was last proven alive.
    pub fn age(&self) -> Option<Duration> {
        self.inner.age()
    }

    /// The name a code, refresh token or consent handle is kept under: its keyed hash, hex.
    fn hashed(&self, secret: &str) -> String {
        to_hex(&self.inner.local.digest(secret))
    }

    fn named(&self, what: &str) -> String {
        self.inner.named(what)
    }

    /// The seal of `input` (HMAC-SHA-256 under the seal key).
    fn mac(&self, input: &str) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.seal_key[..])
            .expect("HMAC takes a key of any length");
        m.update(input.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Whether `hex` is the seal of `input` (compared in constant time); a refusal is
    /// logged, at most once a minute with how many there were.
    fn sealed(&self, what: &str, input: &str, hex: &str) -> bool {
        let ok =
            from_hex(hex).is_some_and(|m| mcp_key_verifier::hashes_equal(&self.mac(input), &m));
        if !ok {
            let mut u = self.unsealed.lock().unwrap_or_else(PoisonError::into_inner);
            u.0 += 1;
            if u.1.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                log(format_args!(
                    "authorization state: {} record(s) refused for their seal, the last a \
                     {what} (written by a bridge with another signing key, or by someone \
                     without it)",
                    u.0
                ));
                *u = (0, Some(Instant::now()));
            }
        }
        ok
    }

    /// `body` sealed: `<hex seal of (what, bound, body)> <body>`.
    fn seal(&self, what: &str, bound: &str, body: &str) -> String {
        let mac = self.mac(&format!("{what}\0{bound}\0{body}"));
        format!("{} {body}", to_hex(&mac))
    }

    /// The body of a value sealed by [`Shared::seal`] for (`what`, `bound`); `None` when
    /// the seal does not match.
    fn open<'v>(&self, what: &str, bound: &str, value: &'v str) -> Option<&'v str> {
        let (mac, body) = value.split_once(' ')?;
        self.sealed(what, &format!("{what}\0{bound}\0{body}"), mac)
            .then_some(body)
    }

    /// A refresh token's value under its hash `h`: `<family> <flag> <seal>`.
    fn refresh_value(&self, h: &str, family: u64, current: bool) -> String {
        let body = format!("{family} {}", u8::from(current));
        let mac = self.mac(&format!("refresh\0{h}\0{body}"));
        format!("{body} {}", to_hex(&mac))
    }

    /// The family of a current refresh token's value under its hash `h`, if it carries
    /// this bridge's seal.
    fn current_family(&self, h: &str, value: &str) -> Option<u64> {
        let (body, mac) = value.rsplit_once(' ')?;
        let (family, flag) = body.split_once(' ')?;
        (flag == "1" && self.sealed("refresh token", &format!("refresh\0{h}\0{body}"), mac))
            .then(|| family.parse().ok())
            .flatten()
    }

    /// What a family's seal covers.
    fn family_input(
        id: u64,
        key_id: &str,
        client_id: &str,
        scopes: &str,
        end: i64,
        start: i64,
    ) -> String {
        format!("family\0{id}\0{key_id}\0{client_id}\0{scopes}\0{end}\0{start}")
    }

    /// Runs `f` on a pooled connection; a failure is logged once (until a call succeeds)
    /// and drops that connection. A pooled connection found dropped or refused (the store
    /// restarted since it was last used) is replaced and `f` tried once more; a timeout
    /// is not retried (the script may have run).
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> std::result::Result<T, GrantError> {
        if self.inner.skewed.load(Ordering::Relaxed) {
            return Err(self.failed(&format!(
                "this machine's clock is more than {MAX_SKEW} s off the store's"
            )));
        }
        let Ok(pooled) = self.pool.take() else {
            return Err(self.failed("every connection to the store is busy"));
        };
        let lease = Lease {
            pool: &self.pool,
            given: false,
        };
        let mut answer = pooled.map(|mut c| (f(&mut c), c));
        if let Some((Err(e), _)) = &answer {
            if !e.is_timeout() && (e.is_connection_dropped() || e.is_connection_refusal()) {
                answer = None;
            }
        }
        let (answer, con) = match answer {
            Some(done) => done,
            None => match self.inner.redis.connect() {
                Ok(mut c) => (f(&mut c), c),
                Err(e) => {
                    lease.give(None);
                    return Err(self.failed(&e.to_string()));
                }
            },
        };
        match answer {
            Ok(v) => {
                lease.give(Some(con));
                if self.down.swap(false, Ordering::Relaxed) {
                    log(format_args!(
                        "authorization state: the store {} answers again",
                        self.url()
                    ));
                }
                Ok(v)
            }
            Err(e) => {
                lease.give(None);
                Err(self.failed(&self.inner.redis.io("use", e).to_string()))
            }
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
        keys: &[&str],
        args: &[&dyn std::fmt::Display],
    ) -> std::result::Result<T, GrantError> {
        self.with(|con| {
            let mut call = script.prepare_invoke();
            for k in keys {
                call.key(*k);
            }
            call.arg(&self.inner.prefix);
            for a in args {
                call.arg(a.to_string());
            }
            call.invoke(con)
        })
    }

    /// Denies family `id` here at once (the store announced it too).
    fn revoked_here(&self, id: u64) {
        let now = chrono::Utc::now().timestamp();
        self.inner
            .local
            .deny(&store::family_entry(id), now + FAMILY_DENIAL, now);
    }

    /// Keeps a consent request; its handle, or `None` when too many wait.
    pub fn add_pending(
        &self,
        p: &Pending,
    ) -> std::result::Result<Option<Zeroizing<String>>, GrantError> {
        let handle = store::random_token();
        let h = self.hashed(&handle);
        let json = serde_json::to_string(p).map_err(|_| GrantError::Invalid)?;
        let client = self.hashed(&p.client_id);
        let kept: i64 = self.invoke(
            &self.scripts().pending_add,
            &[
                &self.named(&format!("pending:{h}")),
                &self.named("pendings"),
                &self.named(&format!("pendings:{client}")),
            ],
            &[
                &self.seal("consent request", &h, &json),
                &h,
                &store::MAX_PENDING,
                &store::MAX_PENDING_PER_CLIENT,
                &store::PENDING_LIFETIME,
            ],
        )?;
        Ok((kept == 1).then_some(handle))
    }

    fn scripts(&self) -> &Scripts {
        &self.inner.scripts
    }

    fn read_pending(&self, h: &str, value: Option<String>, now: i64) -> Option<Pending> {
        let value = value?;
        let json = self.open("consent request", h, &value)?;
        serde_json::from_str::<Pending>(json)
            .ok()
            .filter(|p| p.expires > now)
    }

    /// The consent request `handle` names, while it lasts.
    pub fn pending(
        &self,
        handle: &str,
        now: i64,
    ) -> std::result::Result<Option<Pending>, GrantError> {
        let h = self.hashed(handle);
        let key = self.named(&format!("pending:{h}"));
        let value: Option<String> =
            self.with(|con| redis::cmd("HGET").arg(&key).arg("p").query(con))?;
        Ok(self.read_pending(&h, value, now))
    }

    /// Counts a refused key; false when the request has had its attempts (it is dropped).
    pub fn failed_attempt(&self, handle: &str) -> std::result::Result<bool, GrantError> {
        let h = self.hashed(handle);
        let left: i64 = self.invoke(
            &self.scripts().pending_fail,
            &[
                &self.named(&format!("pending:{h}")),
                &self.named("pendings"),
            ],
            &[&store::MAX_ATTEMPTS, &h],
        )?;
        Ok(left == 1)
    }

    /// Ends a consent request (approved or denied): it, if it was still there.
    pub fn take_pending(
        &self,
        handle: &str,
        now: i64,
    ) -> std::result::Result<Option<Pending>, GrantError> {
        let h = self.hashed(handle);
        let value: Option<String> = self.invoke(
            &self.scripts().pending_take,
            &[
                &self.named(&format!("pending:{h}")),
                &self.named("pendings"),
            ],
            &[&h],
        )?;
        Ok(self.read_pending(&h, value, now))
    }

    /// A code for `grant`, valid [`store::CODE_LIFETIME`] seconds.
    pub fn issue_code(
        &self,
        grant: &Grant,
        now: i64,
    ) -> std::result::Result<Zeroizing<String>, GrantError> {
        let code = store::random_token();
        let h = self.hashed(&code);
        let json = serde_json::to_string(&Stamped {
            grant: grant.clone(),
            issued: now,
            expires: now + store::CODE_LIFETIME,
        })
        .map_err(|_| GrantError::Invalid)?;
        let _: i64 = self.invoke(
            &self.scripts().code_issue,
            &[&self.named(&format!("code:{h}"))],
            &[&self.seal("code", &h, &json), &store::CODE_LIFETIME],
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
        let h = self.hashed(code);
        let key = self.named(&format!("code:{h}"));
        let seen: Vec<String> = self.invoke(&self.scripts().code_peek, &[&key], &[])?;
        let value = match verdict(&seen) {
            Verdict::Ok([value]) => value,
            Verdict::Reused(f) => {
                self.revoked_here(f);
                return Err(GrantError::Reused);
            }
            _ => return Err(GrantError::Invalid),
        };
        let stamped: Stamped = self
            .open("code", &h, value)
            .and_then(|j| serde_json::from_str(j).ok())
            .ok_or(GrantError::Invalid)?;
        if stamped.expires <= now || stamped.issued <= self.inner.local.denied_before() {
            return Err(GrantError::Invalid);
        }
        let grant = stamped.grant;
        let scopes = match check(&grant) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let id = family_id();
        let family = Family::new(
            grant.key_id.clone(),
            grant.client_id.clone(),
            scopes.clone(),
            now + store::FAMILY_LIFETIME,
        );
        let refresh = store::random_token();
        let rh = self.hashed(&refresh);
        let read = CodeRead {
            key: &key,
            value,
            issued: stamped.issued,
        };
        let claimed = self.claim(&read, id, &family, &rh, now)?;
        match verdict(&claimed) {
            Verdict::Ok(rest) => self.in_step(rest, now).map(|()| {
                Ok(Redeemed {
                    grant,
                    scopes,
                    family: id,
                    refresh,
                })
            }),
            Verdict::Reused(f) => {
                self.revoked_here(f);
                Err(GrantError::Reused)
            }
            Verdict::Invalid => Err(GrantError::Invalid),
            Verdict::Moved => Err(self.moved()),
        }
    }

    /// Spends the code under `key` (whose sealed grant read `value`): starts family `id`
    /// with the refresh token whose hash is `rh`, in one script.
    fn claim(
        &self,
        code: &CodeRead<'_>,
        id: u64,
        family: &Family,
        rh: &str,
        now: i64,
    ) -> std::result::Result<Vec<String>, GrantError> {
        let CodeRead { key, value, issued } = *code;
        let scopes_json = serde_json::to_string(&family.scopes).map_err(|_| GrantError::Invalid)?;
        let seal = self.mac(&Shared::family_input(
            id,
            &family.key_id,
            &family.client_id,
            &scopes_json,
            family.expires,
            now,
        ));
        self.invoke(
            &self.scripts().code_claim,
            &[
                key,
                &self.named(&format!("family:{id}")),
                &self.named(&format!("refresh:{rh}")),
            ],
            &[
                &value,
                &id,
                &family.key_id,
                &family.client_id,
                &scopes_json,
                &family.expires,
                &now,
                &to_hex(&seal),
                &rh,
                &self.refresh_value(rh, id, true),
                &store::REFRESH_LIFETIME,
                &store::USED_CODE_MEMORY,
                &issued,
            ],
        )
    }

    /// A spend done: the store's time it answered with must be within [`MAX_SKEW`] of
    /// this clock, which is about to stamp the tokens (a clock stepped since the last
    /// heartbeat would mint tokens that outlive their denials): 503 otherwise, the spend
    /// lost (the client authorizes again), nothing minted.
    fn in_step(&self, rest: &[String], now: i64) -> std::result::Result<(), GrantError> {
        let then = rest.first().and_then(|t| t.parse::<i64>().ok());
        if then.is_some_and(|t| (now - t).abs() <= MAX_SKEW) {
            return Ok(());
        }
        self.inner.skewed.store(true, Ordering::Relaxed);
        Err(self.failed(&format!(
            "this machine's clock is more than {MAX_SKEW} s off the store's"
        )))
    }

    /// A spending script found the store on another server than the state was last seen
    /// on (restarted, failed over): nothing is decided until the follower has moved the
    /// epoch (within a second or two).
    fn moved(&self) -> GrantError {
        self.failed("the store is on another server than before (restarted or failed over)")
    }

    /// Rotates `refresh` as [`Store::rotate`] does; spent by one script.
    pub fn rotate<E>(
        &self,
        refresh: &str,
        now: i64,
        check: impl FnOnce(&Family) -> std::result::Result<(), E>,
    ) -> std::result::Result<std::result::Result<Rotated, E>, GrantError> {
        let h = self.hashed(refresh);
        let key = self.named(&format!("refresh:{h}"));
        let seen: Vec<String> = self.invoke(&self.scripts().refresh_peek, &[&key], &[])?;
        let (value, key_id, client_id, scopes_json, end, start, seal) = match verdict(&seen) {
            Verdict::Ok([v, k, c, s, e, t, m]) => (v, k, c, s, e, t, m),
            Verdict::Reused(f) => {
                self.revoked_here(f);
                return Err(GrantError::Reused);
            }
            _ => return Err(GrantError::Invalid),
        };
        // The value must be this bridge's, for this token; the family's fields too.
        let id = self.current_family(&h, value).ok_or(GrantError::Invalid)?;
        let (Ok(end), Ok(start), Ok(scopes)) = (
            end.parse::<i64>(),
            start.parse::<i64>(),
            serde_json::from_str::<Vec<String>>(scopes_json),
        ) else {
            return Err(GrantError::Invalid);
        };
        let family = Family::new(key_id.clone(), client_id.clone(), scopes, end);
        let input = Shared::family_input(id, key_id, client_id, scopes_json, end, start);
        if !self.sealed("refresh family", &input, seal) {
            return Err(GrantError::Invalid);
        }
        if end <= now || start <= self.inner.local.denied_before() {
            return Err(GrantError::Invalid);
        }
        let family_key = self.named(&format!("family:{id}"));
        if let Err(e) = check(&family) {
            let _: i64 = self.invoke(&self.scripts().family_revoke, &[&family_key], &[&id])?;
            self.revoked_here(id);
            return Ok(Err(e));
        }
        let next = store::random_token();
        let nh = self.hashed(&next);
        let done = self.commit(&h, value, id, &nh)?;
        match verdict(&done) {
            Verdict::Ok(rest) => self.in_step(rest, now).map(|()| {
                Ok(Rotated {
                    family,
                    id,
                    refresh: next,
                })
            }),
            Verdict::Reused(f) => {
                self.revoked_here(f);
                Err(GrantError::Reused)
            }
            Verdict::Invalid => Err(GrantError::Invalid),
            Verdict::Moved => Err(self.moved()),
        }
    }

    /// Rotates the refresh token whose hash is `h` (its value read as `value`) of family
    /// `id` out, for the one whose hash is `nh`, in one script.
    fn commit(
        &self,
        h: &str,
        value: &str,
        id: u64,
        nh: &str,
    ) -> std::result::Result<Vec<String>, GrantError> {
        self.invoke(
            &self.scripts().refresh_commit,
            &[
                &self.named(&format!("refresh:{h}")),
                &self.named(&format!("family:{id}")),
                &self.named(&format!("refresh:{nh}")),
            ],
            &[
                &value,
                &self.refresh_value(h, id, false),
                &self.refresh_value(nh, id, true),
                &store::REFRESH_LIFETIME,
                &store::OLD_REFRESH_KEPT,
                &h,
                &nh,
            ],
        )
    }

    /// The scopes granted to the family of the current refresh token `refresh`.
    pub fn family_scopes(&self, refresh: &str) -> Option<Vec<String>> {
        let key = self.named(&format!("refresh:{}", self.hashed(refresh)));
        let json: Option<String> = self
            .invoke(&self.scripts().refresh_scopes, &[&key], &[])
            .ok()?;
        serde_json::from_str(&json?).ok()
    }

    /// RFC 7009 for a refresh token: its family, if it is `client_id`'s (any: `None`).
    pub fn revoke_refresh(
        &self,
        refresh: &str,
        client_id: Option<&str>,
    ) -> std::result::Result<(), GrantError> {
        let key = self.named(&format!("refresh:{}", self.hashed(refresh)));
        let family: Option<String> = self.invoke(
            &self.scripts().refresh_revoke,
            &[&key],
            &[&client_id.unwrap_or("")],
        )?;
        if let Some(f) = family.and_then(|f| f.parse().ok()) {
            self.revoked_here(f);
        }
        Ok(())
    }

    /// Revokes family `id` (RFC 7009 for one of its access tokens): here at once, in the
    /// store, and on the channel.
    pub fn revoke_family(&self, id: u64) -> std::result::Result<(), GrantError> {
        self.revoked_here(id);
        let key = self.named(&format!("family:{id}"));
        let _: i64 = self.invoke(&self.scripts().family_revoke, &[&key], &[&id])?;
        Ok(())
    }

    /// Keeps a client registered at `/register` (`json`, its metadata) for
    /// [`UNUSED_CLIENT_TTL`]; `Ok(false)` when the fleet has registered `per_minute`
    /// clients this minute.
    pub fn register_client(
        &self,
        id: &str,
        json: &str,
        per_minute: u32,
    ) -> std::result::Result<bool, GrantError> {
        let kept: i64 = self.invoke(
            &self.scripts().register,
            &[&self.named(&format!("client:{id}"))],
            &[
                &self.seal("client", id, json),
                &UNUSED_CLIENT_TTL,
                &per_minute,
            ],
        )?;
        Ok(kept == 1)
    }

    /// The metadata of registered client `id`, if the store still has it (sealed).
    pub fn client(&self, id: &str) -> std::result::Result<Option<String>, GrantError> {
        let key = self.named(&format!("client:{id}"));
        let value: Option<String> = self.with(|con| redis::cmd("GET").arg(&key).query(con))?;
        Ok(value.and_then(|v| self.open("client", id, &v).map(str::to_owned)))
    }

    /// Keeps registered client `id` while it is used ([`IDLE_CLIENT_TTL`] from now).
    pub fn client_used(&self, id: &str) {
        let key = self.named(&format!("client:{id}"));
        let _ = self.with(|con| {
            redis::cmd("EXPIRE")
                .arg(&key)
                .arg(IDLE_CLIENT_TTL)
                .query::<i64>(con)
        });
    }
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

/// Whether a `redis_version` is 6.0 or later (`SET … KEEPTTL`).
fn version_ok(v: &str) -> bool {
    v.split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= 6)
}

impl Inner {
    /// The Redis key `mkm:{NAME}:bridge:<what>`.
    fn named(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    fn age(&self) -> Option<Duration> {
        match self.contact.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }

    fn touch(&self) {
        let at = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.contact.store(at + 1, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn channel(&self) -> String {
        self.named("revoked")
    }

    /// Reads the epoch (moving it when the state is new, emptied or on another server),
    /// checks the store's version and clock, and reads the whole denylist into the local
    /// store.
    fn load(&self, con: &mut Conn) -> Result<()> {
        self.check_in(con, "")?;
        let now = chrono::Utc::now().timestamp();
        let denied: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.named("denied"))
            .arg(now - KEEP)
            .arg("+inf")
            .arg("WITHSCORES")
            .query(con)
            .map_err(|e| self.redis.io("read the authorization state from", e))?;
        for (entry, until) in denied {
            self.local.deny(&entry, until as i64, now);
        }
        Ok(())
    }

    /// Checks in with the store (its epoch moved if it is on another server, `heartbeat`
    /// published unless empty), applies the epoch, and checks the store's version, its
    /// `run_id` and the two clocks: a clock too far off marks this instance skewed (its
    /// endpoints then decide nothing) and fails.
    fn check_in(&self, con: &mut Conn, heartbeat: &str) -> Result<()> {
        let (epoch, then, version, id): (String, String, String, String) = self
            .scripts
            .check_in
            .key(self.named("epoch"))
            .key(self.named("server"))
            .arg(&self.prefix)
            .arg(heartbeat)
            .invoke(con)
            .map_err(|e| self.redis.io("check in with", e))?;
        if !version_ok(&version) {
            return Err(Error::usage(format!(
                "the store runs Redis {version}; the authorization state needs 6.0 or later"
            )));
        }
        if id.is_empty() {
            return Err(Error::usage(
                "the store does not show its run_id (INFO server): a restarted or failed-over \
                 store could not be told from the one the state was written to",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let skew = then.parse::<i64>().map_or(i64::MAX, |t| (now - t).abs());
        let skewed = skew > MAX_SKEW;
        if self.skewed.swap(skewed, Ordering::Relaxed) != skewed && skewed {
            log(format_args!(
                "authorization state: this machine's clock is {skew} s off the store's; the \
                 authorization endpoints answer 503 until it is set (NTP)"
            ));
        }
        if skewed {
            return Err(Error::usage(format!(
                "this machine's clock is {skew} s away from the store's (at most {MAX_SKEW} \
                 allowed): instances would judge tokens by different clocks; set the time \
                 (NTP)"
            )));
        }
        self.local.deny_before(epoch.parse().unwrap_or(now));
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
            let mut followed = false;
            let r = self.follow_once(&mut down, &mut followed);
            if followed {
                // It was following until now: the next attempt comes at once.
                backoff = Duration::from_millis(100);
            }
            match r {
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

    /// Subscribes, loads, and follows until the subscription fails or stops delivering
    /// (`Err`) or the bridge stops (`Ok`). The subscription counts as alive only while this
    /// instance's own heartbeats, published from the state's node, come back through it:
    /// a half-open socket, or a node cut off from the Cluster bus, is found out.
    fn follow_once(&self, down: &mut bool, followed: &mut bool) -> Result<()> {
        let mut con = self.redis.connect()?;
        let mut sub = self.redis.subscriber()?;
        let mut pubsub = sub.as_pubsub();
        let io = |e| self.redis.io("follow the authorization state in", e);
        pubsub.subscribe(self.channel()).map_err(io)?;
        pubsub.set_read_timeout(Some(POLL)).map_err(io)?;
        // Subscribed first: a denial announced while loading is not missed.
        self.load(&mut con)?;
        self.touch();
        let nonce = to_hex(&store::random_token().as_bytes()[..8]);
        let mut beat: u64 = 0;
        // The heartbeat awaited, and when it was sent.
        let mut waiting: Option<(String, Instant)> = None;
        let mut heard = Instant::now();
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(m) => {
                    let payload: String = m.get_payload().unwrap_or_default();
                    if let Some(rest) = payload.strip_prefix("hb ") {
                        if waiting.as_ref().is_some_and(|(w, _)| w == rest) {
                            waiting = None;
                            heard = Instant::now();
                            self.touch();
                            // Following for real only once a heartbeat came back.
                            *followed = true;
                            if std::mem::take(down) {
                                log(format_args!(
                                    "authorization state: the store {} is reachable again",
                                    self.redis.url()
                                ));
                            }
                        }
                    } else {
                        self.apply(&payload);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(io(e)),
            }
            if let Some((_, sent)) = &waiting {
                if sent.elapsed() > HEARTBEAT_LOST {
                    return Err(Error::Io {
                        context: format!("follow the authorization state in {}", self.redis.url()),
                        source: std::io::Error::other(
                            "the subscription stopped delivering (a heartbeat did not come back)",
                        ),
                    });
                }
            } else if heard.elapsed() >= POLL {
                // Each heartbeat also checks the store's server and the clocks.
                beat += 1;
                let hb = format!("{nonce} {beat}");
                self.check_in(&mut con, &format!("hb {hb}"))?;
                waiting = Some((hb, Instant::now()));
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
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches!(verdict(&s(&["OK", "x"])), Verdict::Ok([x]) if x == "x"));
        assert!(matches!(verdict(&s(&["REUSED", "7"])), Verdict::Reused(7)));
        assert!(matches!(verdict(&s(&["REUSED", "x"])), Verdict::Invalid));
        assert!(matches!(verdict(&s(&["INVALID"])), Verdict::Invalid));
        assert!(matches!(verdict(&[]), Verdict::Invalid));
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_a_hash() {
        let h = [0xabu8; 32];
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(to_hex(&[0, 15, 255]), "000fff");
        assert_eq!(from_hex("ab"), None);
        assert_eq!(from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn the_pool_lends_a_bounded_number_of_connections_and_waits_for_one() {
        let pool: Pool<u32> = Pool {
            state: Mutex::new((vec![7], 0)),
            freed: Condvar::new(),
        };
        assert_eq!(pool.take(), Ok(Some(7)), "an idle one first");
        for _ in 1..POOL {
            assert_eq!(pool.take(), Ok(None), "then leave to open one");
        }
        let t0 = Instant::now();
        assert_eq!(pool.take(), Err(()), "all in use");
        assert!(t0.elapsed() >= POOL_WAIT);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.take());
            std::thread::sleep(Duration::from_millis(50));
            pool.give(Some(9));
            assert_eq!(
                waiter.join().unwrap(),
                Ok(Some(9)),
                "a freed one is handed on"
            );
        });
        pool.give(None);
        assert_eq!(pool.take(), Ok(None));
    }

    /// A redis-server of this test's own on 127.0.0.1 (no persistence), stopped on drop;
    /// `None` where none is installed (a failure with `CI=true`, which installs one).
    struct TestRedis(
        std::process::Child,
        u16,
        #[allow(dead_code)] tempfile::TempDir,
    );

    impl TestRedis {
        fn start() -> Option<TestRedis> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let dir = tempfile::tempdir().ok()?;
            let child = std::process::Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .spawn();
            let Ok(child) = child else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true and redis-server is not installed"
                );
                eprintln!("SKIPPED: redis-server is not installed");
                return None;
            };
            let r = TestRedis(child, port, dir);
            let t0 = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(r)
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0?key=unit", self.1)
        }
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A spending script sent twice with the same arguments (its reply lost, the Redis
    /// client sending it again) answers OK both times and is done once; another spend of
    /// the same code or refresh token is a reuse; a code or family from before the store's
    /// epoch is not spent, whatever the instance has heard.
    #[test]
    fn a_spend_is_done_once_and_never_before_the_epoch() {
        let Some(r) = TestRedis::start() else {
            return;
        };
        let shared = Shared::start(&r.url(), Store::new(Zeroizing::new([9u8; 32]), 0)).unwrap();
        let local = shared.local();
        let now = chrono::Utc::now().timestamp();
        let grant = Grant {
            client_id: "https://client.example/meta".into(),
            redirect_uri: "https://client.example/cb".into(),
            challenge: "c".repeat(43),
            scopes: vec!["tools:call".into()],
            key_id: "0123456789abcdef".into(),
        };
        let family = Family::new(
            grant.key_id.clone(),
            grant.client_id.clone(),
            grant.scopes.clone(),
            now + store::FAMILY_LIFETIME,
        );
        // A new code, its key and its sealed value as the peek reads it.
        let issue = || {
            let code = shared.issue_code(&grant, now).unwrap();
            let key = shared.named(&format!("code:{}", shared.hashed(&code)));
            let seen: Vec<String> = shared
                .invoke(&shared.scripts().code_peek, &[&key], &[])
                .unwrap();
            let Verdict::Ok([value]) = verdict(&seen) else {
                panic!("{seen:?}")
            };
            (key, value.clone())
        };
        let spend = |(key, value): &(String, String), id: u64, rh: &str| {
            let read = CodeRead {
                key,
                value,
                issued: now,
            };
            shared.claim(&read, id, &family, rh, now).unwrap()
        };
        let (r1, r2) = ("a1".repeat(32), "a2".repeat(32));
        let code = issue();
        for _ in 0..2 {
            let v = spend(&code, 7, &r1);
            assert!(matches!(verdict(&v), Verdict::Ok(_)), "{v:?}");
        }
        let v = spend(&code, 8, &r2);
        assert!(matches!(verdict(&v), Verdict::Reused(7)), "{v:?}");

        let v = spend(&issue(), 9, &r2);
        assert!(matches!(verdict(&v), Verdict::Ok(_)), "{v:?}");
        let current = shared.refresh_value(&r2, 9, true);
        let (n1, n2) = ("b1".repeat(32), "b2".repeat(32));
        for _ in 0..2 {
            let v = shared.commit(&r2, &current, 9, &n1).unwrap();
            assert!(matches!(verdict(&v), Verdict::Ok(_)), "{v:?}");
        }
        let v = shared.commit(&r2, &current, 9, &n2).unwrap();
        assert!(matches!(verdict(&v), Verdict::Reused(9)), "{v:?}");

        // A code or family from before the store's epoch is not spent, whatever this
        // instance has heard of the epoch yet (a failover it has not noticed).
        let v = spend(&issue(), 10, &n2);
        assert!(matches!(verdict(&v), Verdict::Ok(_)), "{v:?}");
        let later = issue();
        let epoch = shared.named("epoch");
        let _: () = shared
            .with(|con| redis::cmd("SET").arg(&epoch).arg(now + 5).query(con))
            .unwrap();
        let current = shared.refresh_value(&n2, 10, true);
        let v = shared.commit(&n2, &current, 10, &"c1".repeat(32)).unwrap();
        assert!(matches!(verdict(&v), Verdict::Invalid), "{v:?}");
        let v = spend(&later, 11, &"c2".repeat(32));
        assert!(matches!(verdict(&v), Verdict::Invalid), "{v:?}");

        // The revocation reaches this instance through the channel.
        let t0 = Instant::now();
        while !local.is_denied("j", &store::family_entry(9), now, now) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the family's denial never came"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn redis_6_or_later() {
        assert!(version_ok("7.0.15") && version_ok("6.0.0") && version_ok("10.1"));
        assert!(!version_ok("5.0.14") && !version_ok("") && !version_ok("x"));
    }
}
