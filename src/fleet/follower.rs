//! Following a verifier in a Redis store: one thread that subscribes to the store's change
//! notices, looks at the store's revision at every notice and at least every poll interval
//! (a notice lost while disconnected is caught by the next look), fetches the bytes only
//! when the revision or save changed, and swaps in the new verifier when it is signed by
//! the pinned vault and newer. An unreachable store is retried with backoff while the last
//! good verifier keeps answering; how long ago the store was last reached is
//! [`Follower::age`], which `serve --max-stale` turns into 503.
//!
//! Invariants (as for a watched file): what [`Follower::current`] returns was parsed whole
//! and verified against the trust pin; its revision never goes down, and a value of the
//! same revision from another save (a rolled-back writer) never replaces it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcp_key_vault::verify::Verifier;

use super::store::{Conn, Held, Store};
use crate::error::{Error, Result};

/// How often the store is looked at when no notice comes.
pub const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to reach an unreachable store.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the follower saw.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new verifier is answering.
    Loaded {
        /// Its revision.
        revision: u64,
        /// Its keys.
        keys: usize,
        /// The signed verifier file, byte for byte (what `follow` writes).
        bytes: Arc<Vec<u8>>,
    },
    /// The store holds something that is not used: unsigned, signed by another vault,
    /// altered, older, or another save of the same revision. The last good one stays.
    Refused {
        /// Why (no key, no secret).
        reason: String,
    },
    /// The store could not be reached; retrying.
    Unreachable {
        /// Why.
        reason: String,
    },
    /// The store is reachable again.
    Reached,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Loaded { revision, keys, .. } => {
                write!(
                    f,
                    "verifier loaded from the store: revision={revision} keys={keys}"
                )
            }
            Event::Refused { reason } => write!(f, "verifier from the store refused: {reason}"),
            Event::Unreachable { reason } => {
                write!(f, "store unreachable, keeping the last verifier: {reason}")
            }
            Event::Reached => f.write_str("store reachable again"),
        }
    }
}

type Callback = Box<dyn Fn(Event) + Send + Sync>;

struct Inner {
    store: Store,
    trust: String,
    current: RwLock<Option<(Arc<Verifier>, Held)>>,
    last_contact: Mutex<Option<Instant>>,
    /// The last value refused, so a refusal is reported once, not at every look.
    refused: Mutex<Option<Held>>,
    stop: AtomicBool,
    on_event: Callback,
    poll: Duration,
}

/// A verifier that follows a Redis store.
pub struct Follower {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following `store`, accepting only values signed by the vault `trust` names.
    /// With `wait_first`, returns only once a verifier was loaded (or fails at once when the
    /// store cannot be reached or holds nothing usable); otherwise it keeps trying in the
    /// background.
    ///
    /// # Errors
    /// With `wait_first`: [`Error::Usage`] naming why there is no verifier to start with.
    pub fn start(
        store: Store,
        trust: &str,
        poll: Duration,
        wait_first: bool,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> Result<Follower> {
        let trust = mcp_key_verifier::signature::parse_pin(trust)
            .map_err(|e| Error::usage(format!("--trust: {e}")))?;
        let inner = Arc::new(Inner {
            store,
            trust,
            current: RwLock::new(None),
            last_contact: Mutex::new(None),
            refused: Mutex::new(None),
            stop: AtomicBool::new(false),
            on_event: Box::new(on_event),
            poll,
        });
        if wait_first {
            let mut con = inner
                .store
                .connect()
                .map_err(|e| Error::usage(format!("there is no verifier to start with: {e}")))?;
            inner
                .refresh(&mut con)
                .map_err(|e| Error::usage(e.to_string()))?;
            if inner.current().is_none() {
                return Err(Error::usage(format!(
                    "the Redis store {} holds no verifier signed by {}; publish one with \
                     `mcp-key-manager publish {}`",
                    inner.store.url(),
                    inner.trust,
                    inner.store.url()
                )));
            }
        }
        let looper = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("store-follow".into())
            .spawn(move || looper.run())
            .map_err(|e| Error::Io {
                context: "start the store follower".into(),
                source: e,
            })?;
        Ok(Follower {
            inner,
            thread: Some(thread),
        })
    }

    /// The verifier answering now; `None` until one was loaded.
    pub fn current(&self) -> Option<Arc<Verifier>> {
        self.inner.current()
    }

    /// How long ago the store was last reached (`None`: never).
    pub fn age(&self) -> Option<Duration> {
        self.inner
            .last_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// The store's URL (no secret in it).
    pub fn url(&self) -> &str {
        self.inner.store.url()
    }

    /// The pinned fingerprint.
    pub fn trust(&self) -> &str {
        &self.inner.trust
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        // The thread wakes at least every poll interval (or IO timeout) and sees the flag.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Verifier>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(v, _)| Arc::clone(v))
    }

    fn held_now(&self) -> Option<Held> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, h)| h.clone())
    }

    fn contact(&self) {
        *self
            .last_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(&self) {
        let mut backoff = Duration::from_millis(100);
        let mut down = false;
        while !self.stopped() {
            match self.follow_once() {
                Ok(()) => return,
                Err(e) => {
                    if !down {
                        (self.on_event)(Event::Unreachable {
                            reason: e.to_string(),
                        });
                        down = true;
                    }
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stopped() {
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if let Ok(mut con) = self.store.connect() {
                if self.refresh(&mut con).is_ok() {
                    if down {
                        (self.on_event)(Event::Reached);
                    }
                    down = false;
                    backoff = Duration::from_millis(100);
                }
            }
        }
    }

    /// Subscribes and follows until the connection fails (`Err`) or the follower stops
    /// (`Ok`).
    fn follow_once(&self) -> Result<()> {
        let mut con = self.store.connect()?;
        // On a Cluster, one node's plain connection: every node hears every notice. When
        // it drops, the next attempt takes the first seed that answers.
        let mut sub = self.store.subscriber()?;
        let mut pubsub = sub.as_pubsub();
        pubsub
            .subscribe(self.store.channel())
            .map_err(|e| self.store.io("subscribe to", e))?;
        pubsub
            .set_read_timeout(Some(self.poll))
            .map_err(|e| self.store.io("subscribe to", e))?;
        // A notice sent before the subscription is caught by this look.
        self.refresh(&mut con)?;
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(_) => self.refresh(&mut con)?,
                Err(e) if e.is_timeout() => self.refresh(&mut con)?,
                Err(e) => return Err(self.store.io("follow", e)),
            }
        }
        Ok(())
    }

    /// Looks at the store; fetches and installs when it holds another save. The store
    /// counts as reached (for `--max-stale`) only when it holds the state loaded here or a
    /// newer one that was accepted: a store emptied, or holding a value that is refused
    /// (unsigned, older, another save), cannot tell this instance about a revocation.
    fn refresh(&self, con: &mut Conn) -> Result<()> {
        let Some(held) = self.store.held(con)? else {
            return Ok(());
        };
        if self.held_now().as_ref() == Some(&held) {
            self.contact();
            return Ok(());
        }
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if refused.as_ref() == Some(&held) {
            return Ok(());
        }
        let bytes = match self.store.fetch(con, super::store::MAX_VALUE_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(Error::Corrupt(reason)) => {
                *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
                (self.on_event)(Event::Refused { reason });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.install(held, bytes) {
            self.contact();
        }
        Ok(())
    }

    /// Installs `bytes` when they are signed by the pinned vault, say what the store's
    /// fields say, and are newer; `true` when they now answer.
    fn install(&self, held: Held, bytes: Vec<u8>) -> bool {
        let refuse = |reason: String| {
            *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(held.clone());
            (self.on_event)(Event::Refused { reason });
            false
        };
        let v = match Verifier::from_json_trusted(&bytes, &self.trust) {
            Ok(v) => v,
            Err(e) => return refuse(e.to_string()),
        };
        // Only the signed bytes count: the hash's own `revision` and `digest` fields are
        // written by whoever can write the store, and must say what the signed value says.
        let signed = Held {
            revision: v.revision(),
            digest: v.save_digest().unwrap_or_default().to_owned(),
        };
        if signed != held {
            return refuse(format!(
                "the store's revision and digest fields do not match the signed value \
                 (revision {} signed, {} claimed)",
                signed.revision, held.revision
            ));
        }
        if let Some(cur) = self.current() {
            if v.revision() < cur.revision() {
                return refuse(format!(
                    "revision {} is older than the loaded {}",
                    v.revision(),
                    cur.revision()
                ));
            }
            if v.revision() == cur.revision() && v.save_digest() != cur.save_digest() {
                return refuse(format!(
                    "revision {} from another vault save than the loaded one (a rollback?)",
                    v.revision()
                ));
            }
        }
        let (revision, keys) = (v.revision(), v.len());
        let old = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((Arc::new(v), held));
        // The old verifier is freed outside the lock every request takes (100,000 keys take
        // tens of milliseconds to free), unless a reader still holds it, and the memory is
        // handed back: without it an instance grew from 83 to 511 MiB over 50 reloads of a
        // 100,000-key verifier (benches/fleet/revocation_100k.py).
        drop(old);
        crate::sys::release_freed_memory();
        (self.on_event)(Event::Loaded {
            revision,
            keys,
            bytes: Arc::new(bytes),
        });
        true
    }
}
