//! The HTTP accept loop, written on hyper directly (axum's `serve` exposes
//! neither hyper's header-read deadline nor the peer's connection before
//! the first request): every TCP connection is counted against its peer
//! address at accept, has `TCP_NODELAY`, must send its request headers
//! within a deadline, carries its peer address into every request, and is
//! shut down gracefully on stop.
//!
//! HTTP/1.1 only, as before (WebSocket and long-polling need nothing more,
//! and HTTP/2 would bring its own denial-of-service surface).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use lockstep_socketioxide::handshake::{PeerAddr, refused};
use lockstep_tokio::server::{Admission, Permit, Refusal};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Largest request head (request line and headers), in bytes; a larger one
/// is answered 431 and the connection closed. Browsers send a few KiB; the
/// token travels in the Socket.IO handshake, not in a header.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;

/// hyper's read buffer per connection, in bytes (its default is ~400 KiB):
/// bounds what one connection may make the server hold before a request
/// is even parsed.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The settings of one accept loop.
#[derive(Debug, Clone)]
pub(crate) struct Listen {
    /// The routes served.
    pub(crate) app: Router,
    /// Per-address caps (and the refusal summary).
    pub(crate) admission: Arc<Admission>,
    /// Longest wait for a request's headers, from the connection's start
    /// or the end of its previous request.
    pub(crate) header_read_timeout: Duration,
    /// Where connection tasks run, so shutdown can wait for them.
    pub(crate) connections: TaskTracker,
    /// Cancelled when connections must finish their request in flight and
    /// close.
    pub(crate) closing: CancellationToken,
}

/// Accepts connections until `stop` is cancelled.
pub(crate) async fn accept_loop(listener: TcpListener, listen: Listen, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let permit = match listen.admission.admit_address(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                refuse(&tcp, &listen.admission, refusal, peer);
                continue;
            }
        };
        // Small frames must leave at once: without TCP_NODELAY, Nagle's
        // algorithm meets delayed ACKs and p95 latency jumps to ~40 ms
        // (measured in docs/BENCHMARKS.md, end-to-end load comparison).
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(%e, "could not set TCP_NODELAY");
        }
        let io = Counted {
            tcp,
            _permit: permit,
        };
        let conn = serve_connection(io, peer, listen.clone());
        listen.connections.spawn(conn);
    }
    debug!("stopped accepting");
}

/// Answers a refused TCP connection with a 503 naming the refusal, if its
/// send buffer takes it at once (it does, on a fresh connection), and
/// closes it.
fn refuse(tcp: &TcpStream, admission: &Admission, refusal: Refusal, peer: SocketAddr) {
    refused(Some(admission), refusal, Some(peer), &"tcp connection");
    let body = refusal.label();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(response.as_bytes());
}

/// One HTTP connection until it closes, is upgraded (the WebSocket then
/// keeps the socket, and its permit, for itself), or is shut down.
async fn serve_connection(io: Counted, peer: SocketAddr, listen: Listen) {
    let app = listen.app;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(PeerAddr(peer));
        app.clone().oneshot(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(READ_BUFFER_BYTES);
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = listen.closing.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A header-read timeout lands here: a slow or silent client.
        debug!(%peer, error = %e, "http connection ended");
    }
}

/// A TCP connection that holds its address permit for its whole life,
/// through an upgrade to WebSocket too: the count is released when the
/// socket is closed, exactly once.
#[derive(Debug)]
struct Counted {
    tcp: TcpStream,
    _permit: Permit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
