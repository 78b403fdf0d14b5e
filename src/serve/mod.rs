//! `serve`: a forward-auth service for nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth` and Envoy `ext_authz`. It answers from a published verifier file that it
//! follows ([`mcp_key_vault::verify::Watched`]), counts each key's use, and needs no vault.
//!
//! Invariants:
//! - No presented key reaches a log line, a response, the usage file or the metrics.
//! - Hostile clients are bounded (header size, body size, read time, connection count) so
//!   that none of them stops the service from answering well-behaved ones.
//! - Usage counted before a SIGTERM/SIGINT is on disk before the process exits 0.

pub mod bridge;
pub mod http;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod oauth;
pub mod state;
pub mod tools;
pub mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use mcp_key_vault::display::sanitize;
use mcp_key_vault::verify::{ReloadEvent, Watched};

use log::log;
use metrics::Metrics;
use state::{Log, Source, State, MAX_BODIES_IN_FLIGHT, MAX_HEAD_BYTES};
use usage::Tracker;

/// How often usage is written while serving.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a shutdown waits for requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What `serve` is told at start-up (the command layer builds it from the arguments).
#[derive(Debug, Clone)]
pub struct Config {
    /// The verifier file to follow.
    pub verifier: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Permissions every request needs.
    pub require: Vec<String>,
    /// Per-tool permissions from the body (or trusted routing headers).
    pub tool_permissions: bool,
    /// Decide a request without a body from its `Mcp-Method`/`Mcp-Name` headers.
    pub trust_routing_headers: bool,
    /// Where usage is written; beside the verifier when `None`.
    pub usage: Option<PathBuf>,
    /// Connections served at once.
    pub max_connections: u32,
    /// How long a request head or body may take to arrive.
    pub read_timeout: Duration,
    /// `--trust`: the fingerprint every verifier file must be signed by.
    pub trust: Option<String>,
    /// `--max-stale`: how long a shared store may be out of reach before /auth answers 503.
    pub max_stale: Duration,
    /// `--limits redis://…`: rate limits decided across the fleet; per instance when `None`.
    pub limits: Option<String>,
    /// Access tokens beside keys (`--resource` with `--issuer`), when on.
    pub oauth: Option<oauth::Settings>,
}

/// Runs `serve` until SIGTERM or SIGINT.
///
/// # Errors
/// [`Error::Usage`] (exit 2) when the verifier cannot be read or an option is not
/// acceptable; [`Error::Io`] when the address cannot be bound or the runtime not started.
pub fn run(args: Config) -> Result<()> {
    check_required(&args.require)?;
    let metrics = Arc::new(Metrics::default());
    let reload_error: Arc<Mutex<Option<String>>> = Arc::default();
    let from_store = args
        .verifier
        .to_str()
        .is_some_and(crate::fleet::store::is_store);
    let source = if from_store {
        follow_store(&args, &metrics, &reload_error)?
    } else {
        Source::File(follow_verifier(
            &args.verifier,
            args.trust.as_deref(),
            &metrics,
            &reload_error,
        )?)
    };
    let usage_path = match (&args.usage, from_store) {
        (Some(p), _) => p.clone(),
        // A store names no file to put usage beside: this instance's own, here.
        (None, true) => std::path::PathBuf::from("mcp-key-serve.usage.json"),
        (None, false) => usage::default_path(&args.verifier),
    };
    if !from_store {
        warn_if_writable_by_others(&args.verifier, "verifier");
    }
    let (tracker, usage_lock) = match usage_path.to_str() {
        // Usage across the fleet: every instance adds to one hash; no file, no lock.
        Some(url) if crate::fleet::store::is_store(url) => (Tracker::for_store(url)?, None),
        _ => {
            let lock = lock_usage_file(&usage_path)?;
            warn_if_writable_by_others(&usage_path, "usage file");
            let tracker = match Tracker::open(&usage_path) {
                Ok(t) => t,
                Err(e) => {
                    log(format_args!(
                        "usage file unreadable, starting counts afresh: {e}"
                    ));
                    Tracker::empty(&usage_path)
                }
            };
            (tracker, Some(lock))
        }
    };
    let limits = match &args.limits {
        None => limits::Limits::Local(mcp_key_verifier::limit::Limiter::new()),
        Some(url) if crate::fleet::store::is_store(url) => {
            limits::Limits::Store(Arc::new(crate::fleet::limits::StoreLimits::new(url)?))
        }
        Some(_) => {
            return Err(Error::usage(
                "--limits takes a Redis store (redis://host:port/db?key=NAME); without it, \
                 limits hold per instance",
            ))
        }
    };
    let tokens = match &args.oauth {
        Some(o) => Some(oauth::Tokens::start(o.clone())?),
        None => None,
    };
    let bridge = match &args.oauth {
        Some(o) => match &o.bridge {
            Some(b) => Some(Arc::new(bridge::Bridge::start(b, &o.resource, &o.scopes)?)),
            None => None,
        },
        None => None,
    };
    let state = Arc::new(State {
        source,
        tokens,
        bridge,
        limits,
        limit_refusals: limits::Refusals::default(),
        max_stale: args.max_stale,
        require: args.require.clone(),
        tool_permissions: args.tool_permissions,
        trust_routing_headers: args.trust_routing_headers,
        usage: tracker,
        metrics,
        read_timeout: args.read_timeout,
        log: Arc::new(Log::new()),
        draining: AtomicBool::new(false),
        body_permits: tokio::sync::Semaphore::new(MAX_BODIES_IN_FLIGHT),
        reload_error,
    });
    // One single-threaded runtime per core (this one, and `Workers` for the others), each
    // serving its own connections from start to end, as nginx's workers do: a request never
    // wakes another thread, which a work-stealing runtime does for most of them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            context: "start the serve runtime".into(),
            source: e,
        })?;
    let r = runtime.block_on(serve(args.listen, args.max_connections as usize, &state));
    // Whatever ended the loop, what was counted goes to disk.
    match state.usage.flush(Utc::now()) {
        Ok(_) => {}
        Err(e) => log(format_args!("usage not written: {e}")),
    }
    drop(usage_lock);
    r
}

/// Logs at start-up that a file `serve` trusts can be rewritten by other users: whoever can
/// write the verifier decides which keys are accepted, and a forged usage file hides a
/// key's last use. (Their directory is the other half: `check` reports both.)
fn warn_if_writable_by_others(path: &std::path::Path, what: &str) {
    if mcp_key_vault::fsio::writable_by_others(path) {
        log(format_args!(
            "warning: the {what} {} is writable by other users, who can then decide what \
             serve accepts; run `chmod go-w` on it",
            mcp_key_vault::display::path(path)
        ));
    }
}

/// Refuses a `--require` that is not a valid permission.
fn check_required(require: &[String]) -> Result<()> {
    for p in require {
        if p.parse::<mcp_key_vault::Permission>().is_err() {
            return Err(Error::usage(format!(
                "--require {:?} is not a valid permission; use 1-64 characters of a-z 0-9 _ . : -",
                sanitize(p)
            )));
        }
    }
    Ok(())
}

/// Opens the verifier file and follows it; each reload is counted in `metrics`, logged,
/// and its error (if any) kept in `reload_error` for `/healthz`.
fn follow_verifier(
    path: &std::path::Path,
    trust: Option<&str>,
    metrics: &Arc<Metrics>,
    reload_error: &Arc<Mutex<Option<String>>>,
) -> Result<Watched> {
    let (metrics, reload_error) = (Arc::clone(metrics), Arc::clone(reload_error));
    let on_event = move |event: ReloadEvent| {
        let mut err = reload_error.lock().unwrap_or_else(PoisonError::into_inner);
        match &event {
            ReloadEvent::Reloaded { .. } => {
                metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *err = None;
            }
            ReloadEvent::Older { .. } => {
                metrics.reloads_older.fetch_add(1, Ordering::Relaxed);
                *err = Some(event.to_string());
            }
            _ => {
                metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                *err = Some(event.to_string());
            }
        }
        log(format_args!("{event}"));
    };
    let interval = mcp_key_verifier::DEFAULT_INTERVAL;
    match trust {
        Some(pin) => Watched::open_trusted(path, pin, interval, on_event),
        None => Watched::open_with_interval(path, interval, on_event),
    }
    .map_err(|e| {
        Error::usage(format!(
            "serve cannot start without a verifier: {e}; write one with `mcp-key-manager \
             publish PATH` or `export-verifier --out PATH`"
        ))
    })
}

/// Follows a verifier in a Redis store (`--verifier redis://…`): a trust pin is required
/// (whoever can write the store must not decide which keys pass), and the first verifier
/// must be there to start from.
fn follow_store(
    args: &Config,
    metrics: &Arc<Metrics>,
    reload_error: &Arc<Mutex<Option<String>>>,
) -> Result<Source> {
    let url = args.verifier.to_str().unwrap_or_default();
    let Some(pin) = args.trust.as_deref() else {
        return Err(Error::usage(
            "a verifier in a shared store needs --trust FPR (the vault's fingerprint, from \
             `mcp-key-manager slot list`): whoever can write the store must not decide which \
             keys are accepted",
        ));
    };
    let store = crate::fleet::store::Store::parse(url)?;
    let (metrics, reload_error) = (Arc::clone(metrics), Arc::clone(reload_error));
    let follower = crate::fleet::follower::Follower::start(
        store,
        pin,
        crate::fleet::follower::POLL,
        true,
        move |event| {
            use crate::fleet::follower::Event;
            let mut err = reload_error.lock().unwrap_or_else(PoisonError::into_inner);
            match &event {
                Event::Loaded { .. } => {
                    metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                    *err = None;
                }
                Event::Reached => *err = None,
                _ => {
                    metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                    *err = Some(event.to_string());
                }
            }
            log(format_args!("{event}"));
        },
    )
    .map_err(|e| Error::usage(format!("serve cannot start: {e}")))?;
    Ok(Source::Store(follower))
}

/// Takes the usage file's lock. One writer per usage file: a second serve on the same
/// file would lose counts.
fn lock_usage_file(usage_path: &std::path::Path) -> Result<mcp_key_vault::fsio::Lock> {
    mcp_key_vault::fsio::Lock::acquire(usage_path, Duration::ZERO, || {}).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::TimedOut {
            "another serve is writing it".to_string()
        } else {
            e.to_string()
        };
        Error::usage(format!(
            "cannot use the usage file {}: {why}; give each serve process its own \
             --usage PATH (e.g. <verifier>.usage.<host>.json, which list/view/check merge)",
            usage_path.display()
        ))
    })
}

async fn serve(listen: SocketAddr, max_connections: usize, state: &Arc<State>) -> Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| Error::Io {
        context: format!("listen on {listen}"),
        source: e,
    })?;
    let local = listener.local_addr().unwrap_or(listen);
    // Signals are caught from here on, before anyone can know the address.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    log_listening(state, local);

    let builder = connection_builder(state.read_timeout);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(max_connections));
    let flusher = spawn_flusher(state, stop_rx.clone());
    let mut workers = Workers::start(state, &builder, &stop_rx)?;

    let signal = loop {
        // A slot is taken before accepting: past the cap, new connections wait in the
        // kernel's backlog instead of costing memory here.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break "closed",
            },
            s = &mut shutdown => break s,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    log(format_args!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            s = &mut shutdown => break s,
        };
        let _ = stream.set_nodelay(true);
        if let Some((stream, permit)) = workers.hand_over(stream, permit) {
            spawn_connection(stream, permit, state, builder.clone(), stop_rx.clone());
        }
    };

    log(format_args!(
        "{signal}: finishing requests in flight, then writing usage"
    ));
    state.draining.store(true, Ordering::Relaxed);
    drop(listener);
    let _ = stop_tx.send(true);
    wait_for_connections(&slots, max_connections, state).await;
    // Every connection is closed (or past the drain limit): the workers may stop.
    drop(workers);
    let _ = flusher.await;
    write_usage_at_exit(state).await;
    log(format_args!("stopped"));
    Ok(())
}

/// The start-up lines: how tool permissions are decided (when they are) and what is served.
fn log_listening(state: &State, local: SocketAddr) {
    if state.tool_permissions {
        log(format_args!(
            "{}",
            tools::decides_from(state.trust_routing_headers)
        ));
    }
    match state.source.trust() {
        Some(pin) => log(format_args!(
            "verifier files must be signed by {pin}: an unsigned, foreign or altered file is \
             refused"
        )),
        None => log(format_args!(
            "warning: the verifier file is not authenticated (no --trust): whoever can write \
             it decides which keys are accepted; pin the vault with --trust FPR"
        )),
    }
    if let Some(t) = &state.tokens {
        let issuers = t.issuers();
        if issuers.is_empty() {
            log(format_args!("resource metadata at {}", t.metadata_url));
        } else {
            log(format_args!(
                "access tokens of {} accepted beside keys; resource metadata at {}",
                issuers.join(", "),
                t.metadata_url
            ));
        }
    }
    if let Some(b) = &state.bridge {
        log(format_args!(
            "authorization server {}: metadata at /.well-known/oauth-authorization-server; \
             keys of this vault become access tokens at its consent page",
            b.issuer
        ));
    }
    let v = state.source.current();
    log(format_args!(
        "listening on http://{local} verifier={} revision={} keys={} usage={} limits={} \
         tool_permissions={} require={:?}",
        state.source.describe(),
        v.revision(),
        v.len(),
        state.usage.path().display(),
        state.limits.describe(),
        state.tool_permissions,
        state.require
    ));
}

/// HTTP/1 settings shared by every connection: the head's size and arrival time are
/// bounded so that a slow or oversized client cannot hold a connection slot for long.
fn connection_builder(read_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    builder
}

/// Writes usage every [`FLUSH_INTERVAL`] until `stop` changes, off the async threads
/// (the write is blocking file I/O).
fn spawn_flusher(
    state: &Arc<State>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        // A shared store takes each instance's counts at least every second: `list` then
        // sees the fleet's use, and an instance that dies loses at most a second of it.
        let every = if state.usage.is_store() {
            Duration::from_secs(1)
        } else {
            FLUSH_INTERVAL
        };
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let st = Arc::clone(&state);
            let r = tokio::task::spawn_blocking(move || st.usage.flush(Utc::now())).await;
            if let Ok(Err(e)) = r {
                log(format_args!("usage not written, will retry: {e}"));
            }
        }
    })
}

/// The threads beside the main one, each with a single-threaded runtime that serves the
/// connections handed to it. Connections are dealt in turn to each thread and to the main
/// one.
struct Workers {
    to: Vec<tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, OwnedSemaphorePermit)>>,
    next: usize,
}

impl Workers {
    /// One thread per core beyond the first (the cores this process may run on).
    fn start(
        state: &Arc<State>,
        builder: &http1::Builder,
        stop: &watch::Receiver<bool>,
    ) -> Result<Workers> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut to = Vec::new();
        for i in 1..cores.min(64) {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
                std::net::TcpStream,
                OwnedSemaphorePermit,
            )>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Io {
                    context: "start a serve worker runtime".into(),
                    source: e,
                })?;
            let (state, builder, stop) = (Arc::clone(state), builder.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some((stream, permit)) = rx.recv().await {
                            match tokio::net::TcpStream::from_std(stream) {
                                Ok(s) => spawn_connection(
                                    s,
                                    permit,
                                    &state,
                                    builder.clone(),
                                    stop.clone(),
                                ),
                                Err(e) => log(format_args!("connection dropped: {e}")),
                            }
                        }
                    });
                })
                .map_err(|e| Error::Io {
                    context: "start a serve worker thread".into(),
                    source: e,
                })?;
            to.push(tx);
        }
        Ok(Workers { to, next: 0 })
    }

    /// Gives the connection to the next thread in turn; returns it when that thread is
    /// this one (or a worker is gone).
    fn hand_over(
        &mut self,
        stream: tokio::net::TcpStream,
        permit: OwnedSemaphorePermit,
    ) -> Option<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
        let turn = self.next;
        self.next = (self.next + 1) % (self.to.len() + 1);
        let Some(tx) = self.to.get(turn) else {
            return Some((stream, permit));
        };
        // Still non-blocking: the worker's runtime takes it over as it is.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                log(format_args!("connection dropped: {e}"));
                return None;
            }
        };
        match tx.send((std_stream, permit)) {
            Ok(()) => None,
            Err(back) => {
                let (s, permit) = back.0;
                tokio::net::TcpStream::from_std(s).ok().map(|s| (s, permit))
            }
        }
    }
}

/// Serves one connection on its own task; the connection slot (`permit`) is given back
/// when it closes. When `stop` changes, the request in flight is finished first.
fn spawn_connection(
    stream: tokio::net::TcpStream,
    permit: tokio::sync::OwnedSemaphorePermit,
    state: &Arc<State>,
    builder: http1::Builder,
    mut stop: watch::Receiver<bool>,
) {
    let st = Arc::clone(state);
    tokio::spawn(async move {
        st.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        st.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        let svc_state = Arc::clone(&st);
        let svc = service_fn(move |req| http::handle(req, Arc::clone(&svc_state)));
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.changed() => {
                // Finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
        }
        st.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// Waits until every connection slot is back, i.e. every connection closed, but no
/// longer than [`DRAIN_LIMIT`]: a client that never finishes must not block the exit.
async fn wait_for_connections(slots: &Semaphore, max_connections: usize, state: &State) {
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_LIMIT, slots.acquire_many(all))
        .await
        .is_err()
    {
        log(format_args!(
            "{} connections still open after {DRAIN_LIMIT:?}; closing them",
            state.metrics.connections_open.load(Ordering::Relaxed)
        ));
    }
}

/// The last write of usage once serving has stopped, so that no count is lost.
async fn write_usage_at_exit(state: &Arc<State>) {
    let st = Arc::clone(state);
    match tokio::task::spawn_blocking(move || st.usage.flush(Utc::now())).await {
        Ok(Ok(true)) => log(format_args!(
            "usage written to {}",
            state.usage.path().display()
        )),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => log(format_args!("usage not written: {e}")),
        Err(_) => {}
    }
}

/// A future that resolves with the name of the first SIGTERM or SIGINT; the handlers are
/// installed when this returns.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| {
        signal(kind).map_err(|e| Error::Io {
            context: "install the SIGTERM/SIGINT handlers".into(),
            source: e,
        })
    };
    let mut term = install(SignalKind::terminate())?;
    let mut int = install(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
