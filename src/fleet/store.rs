//! A verifier kept in Redis (or Valkey): what a verifier file holds, signed, under one
//! hash-tagged key, written by one atomic server-side script and announced on a channel.
//!
//! Layout, for `redis://host:port/db?key=NAME`:
//! - `mkm:{NAME}:verifier`: a hash with `bytes` (the signed verifier file, byte for byte
//!   what `publish PATH` writes), `revision` and `digest` (its `save_digest`);
//! - `mkm:{NAME}:changed`: the channel a write announces its revision on.
//!
//! The `{NAME}` hash tag keeps everything of one verifier in one Cluster slot, so the same
//! scripts run on one server or a Cluster (`?key=NAME&cluster=1`): [`Conn`] is either, and
//! callers send commands and scripts to it without caring which. Redis never holds a key,
//! the vault, its key or a passphrase; the password comes from `MCP_REDIS_PASSWORD` or the
//! file `MCP_REDIS_PASSWORD_FILE` names, never from a URL, an argument or the vault.
//! `rediss://` is TLS (rustls): the system's roots, or the CA file `MCP_REDIS_CA_FILE`
//! names; a client certificate from `MCP_REDIS_CLIENT_CERT`/`MCP_REDIS_CLIENT_KEY`.

use std::path::PathBuf;
use std::time::Duration;

use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{ConnectionLike, RedisResult, TlsCertificates};

use crate::error::{Error, Result};

/// The variable holding the Redis password.
pub const ENV_PASSWORD: &str = "MCP_REDIS_PASSWORD";
/// The variable naming a file that holds the Redis password.
pub const ENV_PASSWORD_FILE: &str = "MCP_REDIS_PASSWORD_FILE";
/// The variable naming a PEM file of the CAs a `rediss://` server's certificate must chain
/// to (instead of the system's roots).
pub const ENV_CA_FILE: &str = "MCP_REDIS_CA_FILE";
/// The variable naming a PEM client certificate (chain) for `rediss://` (mutual TLS).
pub const ENV_CLIENT_CERT: &str = "MCP_REDIS_CLIENT_CERT";
/// The variable naming the PEM private key of that client certificate.
pub const ENV_CLIENT_KEY: &str = "MCP_REDIS_CLIENT_KEY";

/// The largest verifier read from a store: as for a verifier file.
pub const MAX_VALUE_BYTES: u64 = mcp_key_verifier::MAX_VERIFIER_BYTES;

/// How long a connection attempt or one command may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest CA or certificate file read, and the largest key file.
const MAX_PEM_BYTES: u64 = 1 << 20;
const MAX_KEY_BYTES: u64 = 64 << 10;

/// Whether a publish target or `--verifier` names a Redis store rather than a file.
pub fn is_store(target: &str) -> bool {
    target.starts_with("redis://") || target.starts_with("rediss://")
}

/// One verifier in a Redis store: one server, or a Cluster reached through its seeds.
#[derive(Clone)]
pub struct Store {
    /// The URL as given, without anything secret (a password is refused in it).
    url: String,
    name: String,
    /// The one server, or the Cluster's seeds (each with the password, if any).
    seeds: Vec<redis::ConnectionInfo>,
    cluster: bool,
    /// For `rediss://`: the roots (`None`: the system's) and the client certificate.
    tls: Option<TlsCertificates>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A connection to the store: one server's, or a Cluster's (which routes each command and
/// script by its key's slot). Both are a [`redis::ConnectionLike`], so a caller runs
/// `redis::cmd(…).query(&mut conn)`, `script.key(k).arg(a).invoke(&mut conn)` and a
/// `redis::pipe()` of the store's own keys ([`Store::key`]) on either. Its commands time
/// out after [`IO_TIMEOUT`] ([`Conn::set_timeouts`] to change it).
pub enum Conn {
    /// A standalone server (or a Cluster node, for a subscription).
    Single(redis::Connection),
    /// A Redis Cluster.
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    /// Sets how long one command (or pipeline) may wait for its answer and for its write,
    /// on every node connection (instead of [`IO_TIMEOUT`]).
    ///
    /// # Errors
    /// A zero duration.
    pub fn set_timeouts(&self, timeout: Duration) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c
                .set_read_timeout(Some(timeout))
                .and_then(|()| c.set_write_timeout(Some(timeout))),
            Conn::Cluster(c) => c
                .set_read_timeout(Some(timeout))
                .and_then(|()| c.set_write_timeout(Some(timeout))),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    // The Cluster routes a command by its parsed keys: passed on whole, not packed here.
    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<redis::Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    // The Cluster connection refuses pipelines, since their commands could belong to
    // several nodes; it sends one to the node of its first command's slot. Every key of a
    // store carries the `{NAME}` tag, so a pipeline of one store's commands belongs to one
    // node, and a command of another slot is refused there (MOVED), never run elsewhere.
    fn supports_pipelining(&self) -> bool {
        true
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
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

/// The parts of a store URL, before anything is read from the environment.
struct Parts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    hosts: Vec<&'a str>,
    db: &'a str,
    name: &'a str,
    cluster: bool,
}

fn parse_parts(url: &str) -> std::result::Result<Parts<'_>, &'static str> {
    // The redis crate reads `#insecure` as "do not check the certificate": never that.
    if url.contains('#') {
        return Err("a fragment (#…) is not part of a Redis target");
    }
    let (base, query) = url.split_once('?').ok_or("no ?key=NAME")?;
    let (mut name, mut cluster) = (None, false);
    for param in query.split('&') {
        match param.split_once('=') {
            Some(("key", n)) if name.is_none() => name = Some(n),
            Some(("cluster", "1")) => cluster = true,
            _ => return Err("the query is key=NAME, and &cluster=1 for a Cluster"),
        }
    }
    let name = name
        .filter(|n| {
            (1..=64).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        })
        .ok_or("the key name is missing or not 1-64 of A-Za-z0-9_.-")?;
    let (scheme, rest) = base
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "redis" | "rediss"))
        .ok_or("not a Redis URL")?;
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            return Err("a password in the URL would show in `ps` and in the vault")
        }
        Some((user, hosts)) => (Some(user), hosts),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err("a host is missing");
    }
    if hosts.len() > 1 && !cluster {
        return Err("several hosts are the seeds of a Cluster: add &cluster=1");
    }
    if cluster && !matches!(db, "" | "0") {
        return Err("a Cluster has only database 0");
    }
    Ok(Parts {
        scheme,
        user,
        hosts,
        db,
        name,
        cluster,
    })
}

impl Store {
    /// Parses `redis[s]://[user@]host[:port][/db]?key=NAME`, or for a Cluster
    /// `redis[s]://[user@]host[:port][,host[:port]…][/0]?key=NAME&cluster=1` (the hosts are
    /// seeds: any one reachable finds the others). Reads the password and, for
    /// `rediss://`, the CA and client certificate files the environment names.
    ///
    /// # Errors
    /// [`Error::Usage`] for anything else, a password in the URL, a name that is not 1-64
    /// of `A-Za-z0-9_.-`, or TLS files named for a `redis://` URL; [`Error::Io`] for a
    /// file that cannot be read.
    pub fn parse(url: &str) -> Result<Store> {
        let bad = |why: &str| {
            Error::usage(format!(
                "{why}: a Redis target is redis[s]://[user@]host[:port][/db]?key=NAME, or \
                 redis[s]://[user@]host[:port],host[:port]…?key=NAME&cluster=1 for a Cluster \
                 (the password comes from {ENV_PASSWORD} or {ENV_PASSWORD_FILE})"
            ))
        };
        let parts = parse_parts(url).map_err(bad)?;
        let password = password()?;
        let user = parts.user.map(|u| format!("{u}@")).unwrap_or_default();
        let mut seeds = Vec::with_capacity(parts.hosts.len());
        for host in &parts.hosts {
            let one = format!("{}://{user}{host}/{}", parts.scheme, parts.db);
            let mut info: redis::ConnectionInfo =
                redis::IntoConnectionInfo::into_connection_info(one.as_str())
                    .map_err(|_| bad("not a Redis URL"))?;
            if let Some(p) = &password {
                let settings = info.redis_settings().clone().set_password(p.as_str());
                info = info.set_redis_settings(settings);
            }
            seeds.push(info);
        }
        let tls = tls_certificates(parts.scheme == "rediss")?;
        Ok(Store {
            url: url.to_owned(),
            name: parts.name.to_owned(),
            seeds,
            cluster: parts.cluster,
            tls,
        })
    }

    /// The URL as given (it holds no secret).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Redis key `mkm:{NAME}:<what>`: every key of one store carries the same hash
    /// tag, so that one script may touch several of them on a Cluster (one slot).
    pub fn key(&self, what: &str) -> String {
        format!("mkm:{{{}}}:{what}", self.name)
    }

    fn hash_key(&self) -> String {
        self.key("verifier")
    }

    /// The hash the instances add their usage to (see `usage.rs`).
    pub fn usage_key(&self) -> String {
        self.key("usage")
    }

    /// The string holding key `id`'s rate-limit state (see `limits.rs`).
    pub fn limit_key(&self, id: &str) -> String {
        format!("mkm:{{{}}}:limit:{id}", self.name)
    }

    /// The channel a write announces on.
    pub fn channel(&self) -> String {
        self.key("changed")
    }

    /// A connection with bounded connect, read and write times: to the server, or to the
    /// Cluster (through the first seed that answers).
    ///
    /// # Errors
    /// [`Error::Io`] naming the store (never the password).
    pub fn connect(&self) -> Result<Conn> {
        if !self.cluster {
            return self.connect_node(&self.seeds[0]).map(Conn::Single);
        }
        let mut builder = ClusterClientBuilder::new(self.seeds.clone())
            .connection_timeout(IO_TIMEOUT)
            .response_timeout(IO_TIMEOUT)
            // The crate's default retries a failed command 16 times for minutes; the
            // callers retry on their own schedule (the follower's backoff, the next flush).
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(certs) = &self.tls {
            builder = builder.certs(certs.clone());
        }
        let con = builder
            .build()
            .and_then(|client| client.get_connection())
            .map_err(|e| self.io("connect to", e))?;
        let con = Conn::Cluster(Box::new(con));
        con.set_timeouts(IO_TIMEOUT)
            .map_err(|e| self.io("connect to", e))?;
        Ok(con)
    }

    /// A plain connection to one server for a subscription: the server, or the first
    /// Cluster seed that answers (a Cluster node forwards every `PUBLISH` to all others,
    /// so any node hears every notice).
    ///
    /// # Errors
    /// [`Error::Io`] naming the store when no seed answers.
    pub fn subscriber(&self) -> Result<redis::Connection> {
        let mut last = None;
        for seed in &self.seeds {
            match self.connect_node(seed) {
                Ok(con) => return Ok(con),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::usage("a Redis target without a host")))
    }

    fn connect_node(&self, info: &redis::ConnectionInfo) -> Result<redis::Connection> {
        let client = match &self.tls {
            Some(certs) => redis::Client::build_with_tls(info.clone(), certs.clone()),
            None => redis::Client::open(info.clone()),
        }
        .map_err(|e| self.io("connect to", e))?;
        let con = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(|e| self.io("connect to", e))?;
        con.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| self.io("connect to", e))?;
        Ok(con)
    }

    pub(crate) fn io(&self, what: &str, e: redis::RedisError) -> Error {
        // The crate's messages name the command, the server's answer and node addresses,
        // never the password (it is not echoed by AUTH's error).
        let mut why = e.to_string();
        if self.tls.is_some() && why.contains("certificate") {
            why.push_str(&format!(
                " (the server's certificate must chain to the system's roots, or to a CA in \
                 the file {ENV_CA_FILE} names, and name the host of the URL)"
            ));
        }
        Error::Io {
            context: format!("{what} the Redis store {}", self.url),
            // The server's words, with anything that could drive a terminal escaped.
            source: std::io::Error::other(mcp_key_vault::display::sanitize(&why)),
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
    pub fn held(&self, con: &mut Conn) -> Result<Option<Held>> {
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
    pub fn fetch(&self, con: &mut Conn, max: u64) -> Result<Option<Vec<u8>>> {
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
    let Some(bytes) = env_file(ENV_PASSWORD_FILE, 4096, "password file")? else {
        return Ok(None);
    };
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

/// The contents of the file the variable `var` names (at most `max` bytes); `None` when
/// the variable is not set.
fn env_file(var: &str, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let Some(file) = std::env::var_os(var) else {
        return Ok(None);
    };
    let path = PathBuf::from(file);
    let bytes = mcp_key_vault::fsio::read_bounded(&path, max, what)?.ok_or_else(|| {
        Error::io(
            "read",
            &path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    Ok(Some(bytes))
}

/// For `rediss://` (`tls`): the CA file and client certificate the environment names
/// (rustls checks them when it connects). For `redis://`, those variables are refused:
/// whoever sets them expects TLS, and must not get plain text silently.
fn tls_certificates(tls: bool) -> Result<Option<TlsCertificates>> {
    let named = [ENV_CA_FILE, ENV_CLIENT_CERT, ENV_CLIENT_KEY]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some());
    if !tls {
        return match named {
            Some(var) => Err(Error::usage(format!(
                "{var} is set, but the Redis URL is redis:// (no TLS); use rediss://"
            ))),
            None => Ok(None),
        };
    }
    // ring, not whichever provider another crate's features might also switch on; a
    // provider installed before (by this process) is kept. rustls 0.23.48 deprecates ring
    // for its lack of post-quantum key exchange; aws-lc-rs has it, at a larger build
    // (BENCHMARKS.md, build costs) and Redis servers do not offer it yet.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root_cert = env_file(ENV_CA_FILE, MAX_PEM_BYTES, "CA file")?;
    let cert = env_file(ENV_CLIENT_CERT, MAX_PEM_BYTES, "client certificate")?;
    let key = env_file(ENV_CLIENT_KEY, MAX_KEY_BYTES, "client key")?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::usage(format!(
                "a client certificate needs both {ENV_CLIENT_CERT} and {ENV_CLIENT_KEY}"
            )))
        }
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
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

    #[test]
    fn cluster_urls_name_their_seeds_and_refuse_what_a_cluster_cannot_be() {
        let p = parse_parts("redis://u@10.0.0.1:7000,10.0.0.2:7001/0?key=prod&cluster=1").unwrap();
        assert_eq!(p.hosts, ["10.0.0.1:7000", "10.0.0.2:7001"]);
        assert_eq!((p.user, p.name, p.cluster), (Some("u"), "prod", true));
        let one = Store::parse("redis://10.0.0.1:7000?key=prod&cluster=1").unwrap();
        assert!(one.cluster && one.seeds.len() == 1);
        assert_eq!(one.key("limit:ab12"), "mkm:{prod}:limit:ab12");
        let two = Store::parse("redis://h1:7000,h2:7001?cluster=1&key=prod").unwrap();
        assert_eq!(two.seeds.len(), 2);
        for (url, why) in [
            ("redis://h1:7000,h2:7001?key=p", "add &cluster=1"),
            (
                "redis://h1:7000,h2:7001/3?key=p&cluster=1",
                "only database 0",
            ),
            ("redis://h1:7000,,h2?key=p&cluster=1", "a host is missing"),
            ("redis://h1?key=p&cluster=yes", "&cluster=1"),
            ("redis://h1?key=p&key=q", "&cluster=1"),
            ("rediss://h1/#insecure?key=p", "fragment"),
            ("rediss://h1?key=p#insecure", "fragment"),
            ("http://h1?key=p", "not a Redis URL"),
            ("redis://u:pw@h1,h2?key=p&cluster=1", "password in the URL"),
        ] {
            let e = Store::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn a_connection_can_be_kept_by_another_thread() {
        fn send<T: Send>() {}
        send::<Conn>();
        send::<Store>();
    }
}
