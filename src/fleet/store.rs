//! A verifier kept in Redis (or Valkey): what a verifier file holds, signed, under one
//! hash-tagged key, written by one atomic server-side script and announced on a channel.
//!
//! Layout, for `redis://host:port/db?key=NAME`:
//! - `mkm:{NAME}:verifier`: a hash with `bytes` (the signed verifier file, byte for byte
//!   what `publish PATH` writes), `revision` and `digest` (its `save_digest`);
//! - `mkm:{NAME}:changed`: the channel a write announces its revision on.
//!
//! The `{NAME}` hash tag keeps everything of one verifier in one Cluster slot. Redis never
//! holds a key, the vault, its key or a passphrase; the password comes from
//! `MCP_REDIS_PASSWORD` or the file `MCP_REDIS_PASSWORD_FILE` names, never from a URL, an
//! argument or the vault.

use std::time::Duration;

use crate::error::{Error, Result};

/// The variable holding the Redis password.
pub const ENV_PASSWORD: &str = "MCP_REDIS_PASSWORD";
/// The variable naming a file that holds the Redis password.
pub const ENV_PASSWORD_FILE: &str = "MCP_REDIS_PASSWORD_FILE";

/// The largest verifier read from a store: as for a verifier file.
pub const MAX_VALUE_BYTES: u64 = mcp_key_verifier::MAX_VERIFIER_BYTES;

/// How long a connection attempt or one command may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a publish target or `--verifier` names a Redis store rather than a file.
pub fn is_store(target: &str) -> bool {
    target.starts_with("redis://") || target.starts_with("rediss://")
}

/// One verifier in a Redis store.
#[derive(Clone)]
pub struct Store {
    /// The URL as given, without anything secret (a password is refused in it).
    url: String,
    name: String,
    info: redis::ConnectionInfo,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What a write found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored, and announced.
    Stored,
    /// The store already held this very save.
    Same,
    /// The store holds a newer revision (nothing written).
    Ahead(u64),
    /// The store holds a save this vault does not come from (nothing written).
    Conflict(u64),
}

/// What the store holds, as its hash says it, without the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The revision.
    pub revision: u64,
    /// The save digest.
    pub digest: String,
}

/// The publish script: compare revision and lineage, store, announce, in one step.
/// `KEYS[1]` the hash; `ARGV`: revision, digest, bytes, force (1/0), channel, then the digests
/// of the saves the vault comes from.
const PUBLISH: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'revision', 'digest')
local rev = tonumber(ARGV[1])
if cur[1] then
  local crev = tonumber(cur[1])
  if crev == rev and cur[2] == ARGV[2] then return {'SAME', cur[1]} end
  if ARGV[4] ~= '1' then
    if crev > rev then return {'AHEAD', cur[1]} end
    if cur[2] ~= ARGV[2] then
      local known = false
      for i = 6, #ARGV do
        if ARGV[i] == cur[2] then known = true end
      end
      if not known then return {'CONFLICT', cur[1]} end
    end
  end
end
redis.call('HSET', KEYS[1], 'bytes', ARGV[3], 'revision', ARGV[1], 'digest', ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[1])
return {'OK', ARGV[1]}
";

impl Store {
    /// Parses `redis[s]://[user@]host[:port][/db]?key=NAME`.
    ///
    /// # Errors
    /// [`Error::Usage`] for anything else, a password in the URL, or a name that is not
    /// 1-64 of `A-Za-z0-9_.-`.
    pub fn parse(url: &str) -> Result<Store> {
        let bad = |why: &str| {
            Error::usage(format!(
                "{why}: a Redis target is redis[s]://[user@]host[:port][/db]?key=NAME (the \
                 password comes from {ENV_PASSWORD} or {ENV_PASSWORD_FILE})"
            ))
        };
        let (base, query) = url.split_once('?').ok_or_else(|| bad("no ?key=NAME"))?;
        let name = query
            .strip_prefix("key=")
            .filter(|n| {
                (1..=64).contains(&n.len())
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            })
            .ok_or_else(|| bad("the key name is missing or not 1-64 of A-Za-z0-9_.-"))?;
        let authority = base
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .unwrap_or("");
        if authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
        {
            return Err(bad(
                "a password in the URL would show in `ps` and in the vault",
            ));
        }
        let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(base)
            .map_err(|_| bad("not a Redis URL"))?;
        if let Some(p) = password()? {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        Ok(Store {
            url: url.to_owned(),
            name: name.to_owned(),
            info,
        })
    }

    /// The URL as given (it holds no secret).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn hash_key(&self) -> String {
        format!("mkm:{{{}}}:verifier", self.name)
    }

    /// The hash the instances add their usage to (see `usage.rs`).
    pub fn usage_key(&self) -> String {
        format!("mkm:{{{}}}:usage", self.name)
    }

    /// The string holding key `id`'s rate-limit state (see `limits.rs`).
    pub fn limit_key(&self, id: &str) -> String {
        format!("mkm:{{{}}}:limit:{id}", self.name)
    }

    /// The channel a write announces on.
    pub fn channel(&self) -> String {
        format!("mkm:{{{}}}:changed", self.name)
    }

    /// A connection with bounded connect, read and write times.
    ///
    /// # Errors
    /// [`Error::Io`] naming the store (never the password).
    pub fn connect(&self) -> Result<redis::Connection> {
        let client =
            redis::Client::open(self.info.clone()).map_err(|e| self.io("connect to", e))?;
        let con = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(|e| self.io("connect to", e))?;
        con.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| self.io("connect to", e))?;
        Ok(con)
    }

    pub(crate) fn io(&self, what: &str, e: redis::RedisError) -> Error {
        // The crate's messages name the command and the server's answer, never the
        // password (it is not echoed by AUTH's error).
        Error::Io {
            context: format!("{what} the Redis store {}", self.url),
            // The server's words, with anything that could drive a terminal escaped.
            source: std::io::Error::other(mcp_key_vault::display::sanitize(&e.to_string())),
        }
    }

    /// Stores `bytes` (a signed verifier of `revision`, from the save `digest`) unless
    /// the store holds a newer revision or a save outside `lineage`, and announces it.
    ///
    /// # Errors
    /// [`Error::Io`] when the store cannot be reached or refuses.
    pub fn publish(
        &self,
        bytes: &[u8],
        revision: u64,
        digest: &str,
        lineage: &[String],
        force: bool,
    ) -> Result<Written> {
        let mut con = self.connect()?;
        let script = redis::Script::new(PUBLISH);
        let mut call = script.key(self.hash_key());
        call.arg(revision)
            .arg(digest)
            .arg(bytes)
            .arg(if force { "1" } else { "0" })
            .arg(self.channel());
        for d in lineage {
            call.arg(d);
        }
        let (what, rev): (String, u64) =
            call.invoke(&mut con).map_err(|e| self.io("write to", e))?;
        Ok(match what.as_str() {
            "OK" => Written::Stored,
            "SAME" => Written::Same,
            "AHEAD" => Written::Ahead(rev),
            _ => Written::Conflict(rev),
        })
    }

    /// The revision and digest the store holds; `None` when it holds nothing.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be reached.
    pub fn held(&self, con: &mut redis::Connection) -> Result<Option<Held>> {
        let (rev, digest): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.hash_key())
            .arg("revision")
            .arg("digest")
            .query(con)
            .map_err(|e| self.io("read from", e))?;
        Ok(rev.map(|revision| Held {
            revision,
            digest: digest.unwrap_or_default(),
        }))
    }

    /// The verifier bytes the store holds; `None` when it holds nothing. A value larger
    /// than `max` bytes is refused before it is read (a store writer must not make every
    /// reader allocate hundreds of megabytes).
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be reached; [`Error::Corrupt`] for a value too large.
    pub fn fetch(&self, con: &mut redis::Connection, max: u64) -> Result<Option<Vec<u8>>> {
        let len: u64 = redis::cmd("HSTRLEN")
            .arg(self.hash_key())
            .arg("bytes")
            .query(con)
            .map_err(|e| self.io("read from", e))?;
        if len > max {
            return Err(Error::corrupt(format!(
                "the Redis store {} holds a verifier of {len} bytes, more than the {max} a \
                 verifier may have; not read",
                self.url
            )));
        }
        redis::cmd("HGET")
            .arg(self.hash_key())
            .arg("bytes")
            .query(con)
            .map_err(|e| self.io("read from", e))
    }
}

/// The password: the variable, else the file the other variable names (one trailing
/// newline ignored); `None` when neither is set.
fn password() -> Result<Option<String>> {
    if let Some(p) = std::env::var_os(ENV_PASSWORD) {
        return p
            .into_string()
            .map(Some)
            .map_err(|_| Error::usage(format!("{ENV_PASSWORD} is not UTF-8")));
    }
    let Some(file) = std::env::var_os(ENV_PASSWORD_FILE) else {
        return Ok(None);
    };
    let path = std::path::PathBuf::from(file);
    let bytes =
        mcp_key_vault::fsio::read_bounded(&path, 4096, "password file")?.ok_or_else(|| {
            Error::io(
                "read",
                &path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::usage(format!(
            "{ENV_PASSWORD_FILE} names a file that is not UTF-8"
        ))
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_passwords_refused() {
        let s = Store::parse("redis://127.0.0.1:6390/2?key=prod").unwrap();
        assert_eq!(s.hash_key(), "mkm:{prod}:verifier");
        assert_eq!(s.channel(), "mkm:{prod}:changed");
        assert!(Store::parse("redis://127.0.0.1:6390/2").is_err());
        assert!(Store::parse("redis://127.0.0.1/0?key=a b").is_err());
        let e = Store::parse("redis://user:secret@127.0.0.1/0?key=prod").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(Store::parse("redis://user@127.0.0.1/0?key=prod").is_ok());
        assert!(is_store("rediss://h?key=x") && !is_store("/etc/v.json"));
    }
}
