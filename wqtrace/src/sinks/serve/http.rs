//! The HTTP side of `serve`: hyper's HTTP/1.1 server on tokio, answering `GET`/`HEAD` on
//! `/metrics`, `/healthz` and `/`.
//!
//! Any local user can connect, so nobody can hold the endpoint: a client gets
//! [`HEADER_TIMEOUT`] to send a complete request head (idle keep-alive connections too, then
//! they are closed), heads are capped at [`MAX_HEAD`] bytes (431), a connection lives at most
//! [`MAX_LIFETIME`] and serves at most [`MAX_REQUESTS`]. No connection waits for another: each
//! is its own task, up to [`MAX_CONNS`] at once; past that the oldest connection is closed to
//! make room, so the process's descriptors stay bounded while a fresh scrape is still answered.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

/// Time a client gets to send a complete request head, counted from when the server starts
/// waiting for it (a fresh connection, or an idle keep-alive one).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Request heads larger than this get 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header lines in a request at most.
const MAX_HEADERS: usize = 64;
/// A keep-alive connection is closed after this long, or after this many requests.
pub const MAX_LIFETIME: Duration = Duration::from_secs(60);
pub const MAX_REQUESTS: u64 = 100;
/// Connections open at once; a new one beyond this closes the oldest. `serve` raises its
/// descriptor limit to hold them (see [`fit_connection_limit`]).
pub const MAX_CONNS: usize = 1024;
/// Descriptors kept for everything else (BPF maps and links, the ring, stdio).
const OTHER_FDS: u64 = 128;
/// `/healthz` fails when the event loop has not turned for this long, or when the programs
/// keep submitting events nobody reads for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read: the registry and the event loop's progress.
pub struct Shared {
    pub registry: Registry,
    start: Instant,
    /// Milliseconds since `start` at the event loop's last turn.
    heartbeat_ms: AtomicU64,
    /// Events the programs submitted, and events the loop received, at its last turn.
    submitted: AtomicU64,
    received: AtomicU64,
    /// Milliseconds since `start` when the loop last had nothing left to receive, or received
    /// something.
    flowing_ms: AtomicU64,
    /// The probes are being detached: the end of the session.
    detaching: AtomicBool,
}

/// Why `/healthz` is not ok.
#[derive(Debug, PartialEq)]
pub enum Unhealthy {
    Stalled(Duration),
    NotFlowing { backlog: u64, for_: Duration },
    Detaching,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::Stalled(d) => write!(f, "event loop stalled for {:.1}s", d.as_secs_f64()),
            Unhealthy::NotFlowing { backlog, for_ } => write!(
                f,
                "events not flowing: {backlog} submitted by the probes but not received for {:.1}s",
                for_.as_secs_f64()
            ),
            Unhealthy::Detaching => f.write_str("probes detaching: the session is ending"),
        }
    }
}

impl Shared {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            start: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            received: AtomicU64::new(0),
            flowing_ms: AtomicU64::new(0),
            detaching: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The event loop is alive (called once per turn).
    pub fn beat(&self) {
        self.heartbeat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Once per turn: the programs' submitted count and the events received so far (the
    /// counters only grow).
    pub fn progress(&self, submitted: u64, received: u64) {
        let before = self.received.swap(received, Ordering::Relaxed);
        self.submitted.store(submitted, Ordering::Relaxed);
        if received > before || received >= submitted {
            self.flowing_ms.store(self.now_ms(), Ordering::Relaxed);
        }
        self.beat();
    }

    pub fn detaching(&self) {
        self.detaching.store(true, Ordering::Relaxed);
    }

    /// Ok while the loop turns and what the probes submit reaches it (or nothing is waiting).
    pub fn health(&self) -> Result<(), Unhealthy> {
        if self.detaching.load(Ordering::Relaxed) {
            return Err(Unhealthy::Detaching);
        }
        let now = self.now_ms();
        let since =
            |ms: &AtomicU64| Duration::from_millis(now.saturating_sub(ms.load(Ordering::Relaxed)));
        let stalled = since(&self.heartbeat_ms);
        if stalled >= STALL_AFTER {
            return Err(Unhealthy::Stalled(stalled));
        }
        let received = self.received.load(Ordering::Relaxed);
        let backlog = self
            .submitted
            .load(Ordering::Relaxed)
            .saturating_sub(received);
        let dry = since(&self.flowing_ms);
        if backlog > 0 && dry >= STALL_AFTER {
            return Err(Unhealthy::NotFlowing { backlog, for_: dry });
        }
        Ok(())
    }

    /// The exposition: OpenMetrics 1.0 text, or the Prometheus text format 0.0.4 (what
    /// clients that do not ask for OpenMetrics get).
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut s = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = if openmetrics {
            prometheus_client::encoding::text::encode(&mut s, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry)
        };
        s
    }
}

/// Raises this process's soft descriptor limit so [`MAX_CONNS`] connections fit beside
/// everything else; returns how many connections fit (fewer when the hard limit is lower).
pub fn fit_connection_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 64;
    }
    let want = MAX_CONNS as u64 + OTHER_FDS;
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    (lim.rlim_cur.saturating_sub(OTHER_FDS) as usize).clamp(16, MAX_CONNS)
}

/// Open connections by age (accept order): closing the oldest makes room for a new one.
#[derive(Default)]
struct Conns {
    next: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Accepts connections until `shutdown` turns true; then the listener is dropped (closed) and
/// open connections are closed with the runtime.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_conns: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let conns = Arc::new(Mutex::new(Conns::default()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let http = Arc::new(http);
    let mut accept_errors = Throttle::default();
    loop {
        let accepted = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: say so (not 20 times a second), and back off instead
                // of spinning.
                if let Some(more) = accept_errors.tick() {
                    log::warn!("serve: accept: {e}{more}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (id, closed) = {
            let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
            while c.open.len() >= max_conns {
                // Dropping its sender tells the oldest connection to close.
                c.open.pop_first();
            }
            let id = c.next;
            c.next += 1;
            let (tx, rx) = oneshot::channel();
            c.open.insert(id, tx);
            (id, rx)
        };
        let (shared, conns, http) = (shared.clone(), conns.clone(), http.clone());
        tokio::spawn(async move {
            let requests = AtomicU64::new(0);
            let service = service_fn(|req| {
                let n = requests.fetch_add(1, Ordering::Relaxed) + 1;
                // Answered at once (no body to read): a ready future, no Arc clone per request.
                std::future::ready(Ok::<_, Infallible>(respond(
                    &shared,
                    &req,
                    n >= MAX_REQUESTS,
                )))
            });
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let lifetime = tokio::time::sleep(MAX_LIFETIME);
            tokio::pin!(lifetime);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Evicted to make room: close now.
                _ = closed => {}
                // Old: finish the request in flight, then close.
                _ = &mut lifetime => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEADER_TIMEOUT, conn.as_mut()).await;
                }
            }
            conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open
                .remove(&id);
        });
    }
}

/// At most one message per [`Throttle::EVERY`], saying how many were held back.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(10);

    /// `Some(suffix)` when a message may go out now.
    fn tick(&mut self) -> Option<String> {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.held += 1;
            return None;
        }
        self.last = Some(Instant::now());
        let more = std::mem::take(&mut self.held);
        Some(if more > 0 {
            format!(" (and {more} more since the last report)")
        } else {
            String::new()
        })
    }
}

/// One response. `last`: the connection's last request (it is closed after the response).
fn respond(shared: &Shared, req: &Request<Incoming>, last: bool) -> Response<Full<Bytes>> {
    let mut resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        match req.uri().path() {
            "/metrics" => {
                let om = req
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| {
                        v.to_ascii_lowercase()
                            .contains("application/openmetrics-text")
                    });
                let body = shared.encode(om);
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(if om { OPENMETRICS } else { PROMETHEUS_TEXT }),
                );
                r
            }
            "/healthz" => match shared.health() {
                Ok(_) => text(StatusCode::OK, "ok\n".into()),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            },
            "/" => text(
                StatusCode::OK,
                "wqtrace serve: /metrics (OpenMetrics/Prometheus text), /healthz\n".into(),
            ),
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if last {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // HEAD: hyper sends the head a GET would get (Content-Length included), not the body.
    resp
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
