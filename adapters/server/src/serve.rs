//! Running the server: store, driver, Socket.IO front, HTTP routes, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use lockstep_core::server::{PrivateChannels, ServerConfig};
use lockstep_socketioxide::{SocketIoFrontConfig, attach};
use lockstep_sqlite::{Durability, SqliteConfig, SqliteStore};
use lockstep_tokio::server::{
    Authenticator, DevAuthenticator, ServerDriverConfig, ServerHandle, SharedMemStore, Store,
    TokioClock, spawn_server,
};
use socketioxide::{SocketIo, TransportType};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};

use crate::cli::{ServeArgs, Transport};
use crate::jwt::JwtAuthenticator;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Neither a JWT secret nor `--dev` was given.
    #[error(
        "no authentication configured: pass --jwt-secret (or LOCKSTEP_JWT_SECRET), \
         or --dev for insecure development tokens"
    )]
    NoAuth,
    /// The JWT secret is too short to be safe.
    #[error("the JWT secret must be at least 16 bytes")]
    WeakSecret,
    /// The transport list is empty.
    #[error("at least one transport (websocket, polling) must be allowed")]
    NoTransport,
    /// A CORS origin is not a valid header value.
    #[error("invalid CORS origin {0:?}")]
    Origin(String),
    /// The database could not be opened.
    #[error("cannot open the database {path}: {source}")]
    Db {
        /// The file.
        path: String,
        /// Why.
        source: lockstep_sqlite::OpenError,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// How long shutdown may take to close connections and finish store
/// writes before the process exits anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is cancelled (a signal), then shuts down gracefully.
/// Prints `listening on <addr>` on stdout once bound (scripts read it to
/// find an ephemeral port).
///
/// # Errors
///
/// [`StartError`] when a setting is unusable or the address cannot be bound.
pub async fn serve(args: ServeArgs, stop: CancellationToken) -> Result<(), StartError> {
    let bound = bind(args).await?;
    println!("listening on {}", bound.local_addr());
    bound.run(stop).await
}

/// Opens the configured store (SQLite file, or memory with `--memory`)
/// and binds the address.
///
/// # Errors
///
/// [`StartError`] when a setting is unusable, the database cannot be
/// opened or the address cannot be bound.
pub async fn bind(args: ServeArgs) -> Result<Bound, StartError> {
    // Refuse a missing or weak secret before touching the database.
    if !args.dev {
        match &args.jwt_secret {
            None => return Err(StartError::NoAuth),
            Some(secret) if secret.len() < 16 => return Err(StartError::WeakSecret),
            Some(_) => {}
        }
    }
    if args.memory {
        warn!("in-memory store: every message is lost when the server stops");
        bind_with_store(args, SharedMemStore::default()).await
    } else {
        let durability = match args.sqlite_sync {
            crate::cli::Sync::Full => Durability::Full,
            crate::cli::Sync::Normal => Durability::Normal,
        };
        let config = SqliteConfig {
            durability,
            ..SqliteConfig::default()
        };
        let store = SqliteStore::open_with(&args.db, config).map_err(|source| StartError::Db {
            path: args.db.display().to_string(),
            source,
        })?;
        info!(db = %args.db.display(), sync = ?args.sqlite_sync, "sqlite store open");
        bind_with_store(args, store).await
    }
}

/// A server bound to its address, ready to [`run`](Bound::run).
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Router,
    server: ServerHandle,
    io: SocketIo,
}

/// Binds with the given store (tests inject failing or shared stores);
/// `args.db` and `args.memory` are ignored.
///
/// # Errors
///
/// [`StartError`] when a setting is unusable or the address cannot be bound.
pub async fn bind_with_store<S: Store>(args: ServeArgs, store: S) -> Result<Bound, StartError> {
    let auth = authenticator(&args)?;
    let cors = cors(&args.cors_origins)?;
    let driver = ServerDriverConfig {
        machine: machine_config(&args),
        conn_queue: args.conn_queue,
        ..ServerDriverConfig::default()
    };
    let builder = SocketIo::builder()
        .ping_interval(Duration::from_millis(args.ping_interval_ms))
        .ping_timeout(Duration::from_millis(args.ping_timeout_ms))
        .max_payload(args.max_payload)
        // Engine.IO applies `max_payload` to polling only; the WebSocket
        // limits enforce it on the other transport.
        .ws_max_message_size(usize::try_from(args.max_payload).unwrap_or(usize::MAX))
        .ws_max_frame_size(usize::try_from(args.max_payload).unwrap_or(usize::MAX))
        .max_buffer_size(args.socket_buffer);
    let websocket = args.transports.contains(&Transport::Websocket);
    let polling = args.transports.contains(&Transport::Polling);
    let builder = match (websocket, polling) {
        (true, true) => builder.transports([TransportType::Websocket, TransportType::Polling]),
        (true, false) => builder.transports([TransportType::Websocket]),
        (false, true) => builder.transports([TransportType::Polling]),
        (false, false) => return Err(StartError::NoTransport),
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let (layer, io) = builder.build_layer();
    let metrics = crate::metered::prometheus();
    let server = spawn_server(
        driver,
        PrivateChannels,
        crate::metered::Metered(store),
        TokioClock::new(),
    );
    attach(
        &io,
        "/",
        server.frontdoor(),
        auth,
        SocketIoFrontConfig {
            request_queue: args.request_queue,
            pending_max: args.pending_requests,
        },
    );
    let app = Router::new()
        .route("/health", get(|| async { r#"{"status":"ok"}"# }))
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(layer)
        .layer(cors);
    Ok(Bound {
        listener,
        addr,
        app,
        server,
        io,
    })
}

impl Bound {
    /// The address actually bound (the port, when 0 was asked).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is cancelled, then shuts down gracefully: stops
    /// accepting, finishes the store writes in flight (answering them),
    /// closes every connection.
    ///
    /// # Errors
    ///
    /// [`StartError::Serve`] when the listener fails.
    pub async fn run(self, stop: CancellationToken) -> Result<(), StartError> {
        let Bound {
            listener,
            addr,
            app,
            server,
            io,
        } = self;
        info!(%addr, "listening");
        tokio::spawn(upkeep(stop.clone()));
        let shutdown = async move {
            stop.cancelled().await;
            info!("shutting down: closing connections and finishing store writes");
            let graceful = async {
                server.shutdown().await;
                io.close().await;
            };
            if tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful)
                .await
                .is_err()
            {
                warn!("shutdown timed out");
            }
        };
        // Small frames must leave at once: without TCP_NODELAY, Nagle's
        // algorithm meets delayed ACKs and p95 latency jumps to ~40 ms
        // (measured in docs/BENCHMARKS.md, end-to-end load comparison).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                warn!(%e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartError::Serve)?;
        info!("stopped");
        Ok(())
    }
}

/// How often the Prometheus recorder folds recorded histogram samples into
/// its buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Keeps the recorder's memory bounded: histogram samples pile up inside it
/// until folded into buckets, which otherwise happens only when `/metrics`
/// is scraped (never, on a server nobody scrapes).
async fn upkeep(stop: CancellationToken) {
    let handle = crate::metered::prometheus();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
        }
    }
}

fn authenticator(args: &ServeArgs) -> Result<Arc<dyn Authenticator>, StartError> {
    if args.dev {
        warn!(
            "INSECURE --dev MODE: any `dev:<userId>` token is accepted as that user; \
             never expose this server"
        );
        return Ok(Arc::new(DevAuthenticator::new()));
    }
    let Some(secret) = &args.jwt_secret else {
        return Err(StartError::NoAuth);
    };
    if secret.len() < 16 {
        return Err(StartError::WeakSecret);
    }
    Ok(Arc::new(JwtAuthenticator::new(secret.as_bytes())))
}

fn machine_config(args: &ServeArgs) -> ServerConfig {
    ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_connections: args.max_connections,
        max_channels_per_conn: args.max_channels_per_conn,
        messages_per_sec: args.messages_per_sec,
        messages_burst: args.messages_burst,
        max_append_batch: usize::try_from(args.append_batch).unwrap_or(1),
        presence_grace: Duration::from_millis(args.presence_grace_ms),
        typing_ttl: Duration::from_millis(args.typing_ttl_ms),
        ..ServerConfig::default()
    }
}

fn cors(origins: &[String]) -> Result<CorsLayer, StartError> {
    let layer = CorsLayer::new()
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_credentials(false);
    if origins.iter().any(|o| o == "*") {
        return Ok(layer.allow_origin(AllowOrigin::any()));
    }
    let list = origins
        .iter()
        .map(|o| o.parse().map_err(|_| StartError::Origin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(layer.allow_origin(AllowOrigin::list(list)))
}
