//! A minimal HTTP/1.1 responder for `GET /metrics` and `GET /healthz` on tokio.
//!
//! One request per connection (`Connection: close`), request heads capped in size and time,
//! connections capped in number: enough for Prometheus scrapes and health checks, and nothing a
//! slow or hostile client can use to grow the process.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};

/// Request heads larger than this are refused.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head, and to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNS: usize = 32;
/// `/healthz` fails when the event loop has not checked in for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read: the registry and the event loop's heartbeat.
pub struct Shared {
    pub registry: Registry,
    start: Instant,
    /// Milliseconds since `start` at the event loop's last turn.
    heartbeat_ms: AtomicU64,
}

impl Shared {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            start: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
        }
    }

    /// The event loop is alive (called once per turn).
    pub fn beat(&self) {
        self.heartbeat_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn stalled_for(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
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

/// Accepts connections until `shutdown` turns true; then the listener is dropped (closed).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.changed() => break,
        };
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => break,
        };
        let (stream, _) = match conn {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(IO_TIMEOUT * 2, handle(stream, &shared)).await;
            drop(permit);
        });
    }
}

async fn handle(mut s: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find_head_end(&buf) {
            break i;
        }
        if buf.len() >= MAX_HEAD {
            return respond(
                &mut s,
                431,
                "text/plain",
                b"request head too large\n",
                false,
            )
            .await;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(IO_TIMEOUT, s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let req = match Request::parse(&head) {
        Some(r) => r,
        None => return respond(&mut s, 400, "text/plain", b"bad request\n", false).await,
    };
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        return respond(&mut s, 405, "text/plain", b"only GET and HEAD\n", false).await;
    }
    match req.path {
        "/metrics" => {
            let om = req.accept.contains("application/openmetrics-text");
            let body = shared.encode(om);
            let ct = if om { OPENMETRICS } else { PROMETHEUS_TEXT };
            respond(&mut s, 200, ct, body.as_bytes(), head_only).await
        }
        "/healthz" => {
            let stalled = shared.stalled_for();
            if stalled < STALL_AFTER {
                respond(&mut s, 200, "text/plain", b"ok\n", head_only).await
            } else {
                let msg = format!("event loop stalled for {:.1}s\n", stalled.as_secs_f64());
                respond(&mut s, 503, "text/plain", msg.as_bytes(), head_only).await
            }
        }
        "/" => {
            let body = b"wqtrace serve: /metrics (OpenMetrics/Prometheus text), /healthz\n";
            respond(&mut s, 200, "text/plain", body, head_only).await
        }
        _ => respond(&mut s, 404, "text/plain", b"not found\n", head_only).await,
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Tolerate bare LF line ends (nc, hand-typed requests).
        b.windows(2).position(|w| w == b"\n\n")
    })
}

/// The parts of a request head we look at.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    /// The Accept header's value ("" when absent).
    pub accept: String,
}

impl<'a> Request<'a> {
    pub fn parse(head: &'a str) -> Option<Self> {
        let mut lines = head.lines();
        let mut first = lines.next()?.split_whitespace();
        let method = first.next()?;
        let target = first.next()?;
        let version = first.next()?;
        if !version.starts_with("HTTP/1.") || first.next().is_some() {
            return None;
        }
        let path = target.split(['?', '#']).next().unwrap_or(target);
        let accept = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Some(Self {
            method,
            path,
            accept,
        })
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn respond(
    s: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        reason(code),
        body.len(),
        if code == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        },
    );
    let write = async {
        s.write_all(head.as_bytes()).await?;
        if !head_only {
            s.write_all(body).await?;
        }
        s.shutdown().await
    };
    tokio::time::timeout(IO_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
