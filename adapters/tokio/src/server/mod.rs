//! The tokio server driver: one task owns the core
//! [`Server`] machine and executes its store
//! commands; fronts (the framed-TCP front here, the Socket.IO front in
//! `lockstep-socketioxide`)
//! only turn their connections into inputs through the [`Frontdoor`].
//!
//! ```text
//!  framed TCP front ─┐                     ┌─> Store (async trait)
//!  Socket.IO front  ─┼─> Frontdoor ─> driver loop (Server machine)
//!                    └── per-connection bounded queues <─┘
//! ```

mod admission;
mod auth;
mod clock;
#[cfg(any(test, feature = "store-contract"))]
pub mod contract;
mod driver;
mod framed_front;
mod front;
mod peers;
mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use lockstep_core::server::{AccessPolicy, Server, ServerConfig, Writers};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admission::{Admission, AdmissionConfig, Permit, Refusal, SUMMARY_EVERY};
pub use auth::{
    AuthError, Authenticator, DevAuthenticator, Identity, MAX_TOKEN_BYTES, SESSION_EXPIRED,
};
pub use clock::{Clock, TokioClock};
pub use framed_front::{FramedFrontConfig, serve_framed};
pub use front::{ConnInbound, ConnOutbound, Frontdoor, OutFrame, OutboundEnd, ServerStopped};
pub use peers::{PeerEvent, PeerNote, Peers};
pub use store::{SharedMemStore, Store};

use driver::Driver;

/// The server driver's settings.
#[derive(Debug, Clone)]
pub struct ServerDriverConfig {
    /// The machine's limits and timers.
    pub machine: ServerConfig,
    /// Frames queued for one connection; a client that falls this far
    /// behind is disconnected with a logged reason.
    pub conn_queue: usize,
    /// Bytes (by [`ServerFrame::weight`](lockstep_core::wire::ServerFrame::weight))
    /// queued for one connection; past it, the same. A frame count bounds
    /// nothing when one frame can be a 1 MiB reply. Default 16 MiB.
    pub conn_queue_bytes: usize,
    /// Bytes queued for all connections of one user together; past it, the
    /// user's connections more than 1 MiB behind are cut off as frames
    /// reach them, so opening more connections does not multiply what one
    /// user can make the server hold. Default 64 MiB.
    pub user_queue_bytes: usize,
    /// Bytes queued for every connection together; past it, connections
    /// more than 1 MiB behind are cut off as frames reach them. Default
    /// 1 GiB.
    pub total_queue_bytes: usize,
    /// Inputs (from every front) queued for the driver; readers wait while
    /// it is full.
    pub inputs_capacity: usize,
}

impl Default for ServerDriverConfig {
    fn default() -> Self {
        ServerDriverConfig {
            machine: ServerConfig::default(),
            conn_queue: 1_024,
            conn_queue_bytes: 16 << 20,
            user_queue_bytes: 64 << 20,
            total_queue_bytes: 1 << 30,
            inputs_capacity: 4_096,
        }
    }
}

/// A running server: its frontdoor for fronts, and graceful shutdown.
#[derive(Debug)]
pub struct ServerHandle {
    frontdoor: Frontdoor,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Starts the driver loop with an access policy, a store and a clock.
/// Attach fronts with [`ServerHandle::serve_tcp`] or
/// [`ServerHandle::frontdoor`].
pub fn spawn_server<P, S, K>(
    config: ServerDriverConfig,
    policy: P,
    store: S,
    clock: K,
) -> ServerHandle
where
    P: AccessPolicy + Send + 'static,
    S: Store,
    K: Clock,
{
    spawn(config, policy, store, clock, None, |_| {})
}

/// Like [`spawn_server`], with the machine handed to `prepare` before the
/// driver starts (in tests: to switch the core's deliberate bugs on).
pub fn spawn_server_with<P, S, K>(
    config: ServerDriverConfig,
    policy: P,
    store: S,
    clock: K,
    prepare: impl FnOnce(&mut Server<P>),
) -> ServerHandle
where
    P: AccessPolicy + Send + 'static,
    S: Store,
    K: Clock,
{
    spawn(config, policy, store, clock, None, prepare)
}

/// Starts the driver loop on a store other processes append to as well
/// (N `lockstep-server` processes on one PostgreSQL): the machine delivers
/// every channel from one cursor ([`Writers::Shared`] with `peers.tail`),
/// its commits are announced on `peers.hints`, and the others' hints and
/// resync requests come in on `peers.events`.
pub fn spawn_shared_server<P, S, K>(
    mut config: ServerDriverConfig,
    policy: P,
    store: S,
    clock: K,
    peers: Peers,
) -> ServerHandle
where
    P: AccessPolicy + Send + 'static,
    S: Store,
    K: Clock,
{
    config.machine.writers = Writers::Shared(peers.tail.clone());
    spawn(config, policy, store, clock, Some(peers), |_| {})
}

fn spawn<P, S, K>(
    config: ServerDriverConfig,
    policy: P,
    store: S,
    clock: K,
    peers: Option<Peers>,
    prepare: impl FnOnce(&mut Server<P>),
) -> ServerHandle
where
    P: AccessPolicy + Send + 'static,
    S: Store,
    K: Clock,
{
    let mut machine = Server::with_policy(config.machine, policy);
    prepare(&mut machine);
    let (inputs_tx, inputs_rx) = mpsc::channel(config.inputs_capacity.max(1));
    let (closed_tx, closed_rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let budgets = driver::QueueBudgets {
        conn: config.conn_queue_bytes,
        user: config.user_queue_bytes,
        total: config.total_queue_bytes,
    };
    let driver = Driver::new(
        machine,
        Arc::new(store),
        clock,
        inputs_rx,
        closed_rx,
        shutdown.clone(),
        budgets,
    )
    .with_peers(peers);
    tracker.spawn(driver.run());
    let frontdoor = Frontdoor {
        inputs: inputs_tx,
        closed: closed_tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        queue_capacity: config.conn_queue,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    ServerHandle {
        frontdoor,
        shutdown,
        tracker,
    }
}

impl ServerHandle {
    /// The way in for a front.
    #[must_use]
    pub fn frontdoor(&self) -> Frontdoor {
        self.frontdoor.clone()
    }

    /// Serves the framed-TCP front on `listener` until shutdown.
    pub fn serve_tcp(&self, listener: tokio::net::TcpListener, auth: Arc<dyn Authenticator>) {
        let incoming = Box::pin(futures_util::stream::unfold(listener, |l| async move {
            let next = l.accept().await.map(|(stream, peer)| {
                tracing::debug!(%peer, "accepted");
                let _ = stream.set_nodelay(true);
                stream
            });
            Some((next, l))
        }));
        self.serve(incoming, auth, FramedFrontConfig::default());
    }

    /// Serves the framed front on any stream of byte streams (e.g. turmoil's
    /// listener) until shutdown.
    pub fn serve<I, T>(&self, incoming: I, auth: Arc<dyn Authenticator>, config: FramedFrontConfig)
    where
        I: futures_util::Stream<Item = std::io::Result<T>> + Send + Unpin + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        self.tracker
            .spawn(serve_framed(incoming, self.frontdoor(), auth, config));
    }

    /// Stops accepting, finishes the store work in flight (its requests
    /// are answered), closes every connection and waits until every task of
    /// the server has ended.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Whether the driver task is still running: false once it has ended
    /// (shut down, or stopped by a panic), when no request can be served.
    /// Readiness probes ask this.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.frontdoor.is_running()
    }

    /// Tasks still running (driver, fronts, connections): a leak check.
    #[must_use]
    pub fn tasks(&self) -> usize {
        self.tracker.len()
    }
}
