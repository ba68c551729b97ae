//! Running the server: store, driver, Socket.IO front, HTTP routes, and
//! graceful shutdown.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lockstep_core::server::{PrivateChannels, ServerConfig, SharedTail};
use lockstep_core::store::{MemStore, MemStoreConfig};
use lockstep_socketioxide::handshake::admit_session;
use lockstep_socketioxide::report::ReportLimits;
use lockstep_socketioxide::{SocketIoFrontConfig, attach};
use lockstep_sqlite::{Durability, SqliteConfig, SqliteStore};
use lockstep_tokio::server::{
    Admission, AdmissionConfig, Authenticator, DevAuthenticator, Peers, ServerDriverConfig,
    ServerHandle, SharedMemStore, Store, TokioClock, spawn_server, spawn_shared_server,
};
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;
use tracing::{info, warn};

use crate::cli::{ServeArgs, Transport};
use crate::health::{Mode, Probe};
use crate::jwt::{JwtAuthenticator, JwtChecks, Secret, SecretError};
use crate::listen::{Listen, accept_loop};
use crate::metered::Metered;
use crate::web::{Page, allowed_origins};

/// The path Socket.IO is served on (socketioxide's default, set explicitly
/// so the handshake gate watches the same path).
const SOCKET_IO_PATH: &str = "/socket.io";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No usable JWT secret (missing, unreadable or too short) and no `--dev`.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// `--dev` on an address other machines can reach, without
    /// `--dev-allow-remote`.
    #[error(
        "--dev accepts anyone as anyone: refusing to listen on the non-loopback address {0} \
         (use 127.0.0.1 or ::1, or pass --dev-allow-remote if you really mean it)"
    )]
    DevNotLoopback(SocketAddr),
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
    /// The PostgreSQL store could not start.
    #[error("cannot start the postgres store: {0}")]
    Postgres(lockstep_postgres::ConnectError),
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
    if let Some(line) = bound.page.announce(bound.local_addr()) {
        // Scripts that read only the first line may have closed stdout.
        let _ = writeln!(std::io::stdout(), "{line}");
    }
    if let Some(addr) = bound.metrics_addr() {
        println!("metrics on {addr}");
    }
    bound.run(stop).await
}

/// Opens the configured store (SQLite file, PostgreSQL with `--postgres`,
/// or memory with `--memory`) and binds the address.
///
/// # Errors
///
/// [`StartError`] when a setting is unusable, the database cannot be
/// opened or the address cannot be bound.
pub async fn bind(args: ServeArgs) -> Result<Bound, StartError> {
    // Refuse unusable settings before touching the database.
    check_auth(&args)?;
    if args.memory {
        warn!("in-memory store: every message is lost when the server stops");
        let store = MemStore::new(MemStoreConfig {
            retain: usize::try_from(args.retain_count).unwrap_or(usize::MAX),
            retain_age: retain_age(&args),
            ..MemStoreConfig::default()
        });
        bind_with_store(args, SharedMemStore::new(store)).await
    } else if let Some(url) = &args.postgres {
        let config = lockstep_postgres::PgConfig {
            schema: args.postgres_schema.clone(),
            writers: usize::try_from(args.postgres_writers).unwrap_or(1),
            readers: usize::try_from(args.postgres_readers).unwrap_or(1),
            retain: args.retain_count,
            retain_age: retain_age(&args),
            ..lockstep_postgres::PgConfig::default()
        };
        let store = lockstep_postgres::PgStore::connect(url, config.clone())
            .await
            .map_err(StartError::Postgres)?;
        let hints = lockstep_postgres::HintConfig {
            node: args.node_id.unwrap_or_else(lockstep_postgres::random_node),
            resync_every: Duration::from_millis(args.postgres_resync_ms),
            tail: SharedTail {
                gap_wait: Duration::from_millis(args.tail_gap_ms),
                ..SharedTail::default()
            },
            presence_lease: (args.presence_lease_ms > 0)
                .then(|| Duration::from_millis(args.presence_lease_ms)),
            ..lockstep_postgres::HintConfig::default()
        };
        let node = hints.node;
        let peers =
            lockstep_postgres::hint_link(url, &config, hints).map_err(StartError::Postgres)?;
        info!(schema = %args.postgres_schema, node, "postgres store open, shared with other servers");
        bind_inner(args, store, Some(peers)).await
    } else {
        let durability = match args.sqlite_sync {
            crate::cli::Sync::Full => Durability::Full,
            crate::cli::Sync::Normal => Durability::Normal,
        };
        let config = SqliteConfig {
            durability,
            readers: args.sqlite_readers,
            read_queue: args.sqlite_read_queue,
            retain: args.retain_count,
            retain_age: retain_age(&args),
            wal_limit: args.sqlite_wal_limit_mb.saturating_mul(1 << 20),
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
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    /// The separate `/metrics` listener, with `--metrics-addr`.
    metrics: Option<(TcpListener, SocketAddr, Router)>,
    header_read_timeout: Duration,
    admission: Arc<Admission>,
    server: ServerHandle,
    io: SocketIo,
    /// What is served at `/`.
    page: Page,
}

/// Binds with the given store (tests inject failing or shared stores);
/// `args.db`, `args.memory` and `args.postgres` are ignored.
///
/// # Errors
///
/// [`StartError`] when a setting is unusable or the address cannot be bound.
pub async fn bind_with_store<S: Store>(args: ServeArgs, store: S) -> Result<Bound, StartError> {
    bind_inner(args, store, None).await
}

/// Binds with the given store, shared with other servers through `peers`
/// when given.
async fn bind_inner<S: Store>(
    args: ServeArgs,
    store: S,
    peers: Option<Peers>,
) -> Result<Bound, StartError> {
    let auth = authenticator(&args)?;
    let cors = cors(&args.cors_origins, args.dev)?;
    let page = Page::choose(args.web_root.as_deref(), args.dev);
    crate::metered::register();
    let driver = ServerDriverConfig {
        machine: machine_config(&args),
        conn_queue: args.conn_queue,
        conn_queue_bytes: args.conn_queue_bytes,
        user_queue_bytes: args.user_queue_bytes,
        total_queue_bytes: args.total_queue_bytes,
        ..ServerDriverConfig::default()
    };
    let builder = SocketIo::builder()
        .req_path(SOCKET_IO_PATH)
        .ping_interval(Duration::from_millis(args.ping_interval_ms))
        .ping_timeout(Duration::from_millis(args.ping_timeout_ms))
        // A session that has not authenticated by then is closed.
        .connect_timeout(Duration::from_millis(args.handshake_timeout_ms))
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
    let listener = listen(args.addr).await?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let metrics_listener = match args.metrics_addr {
        Some(at) => {
            let listener = listen(at).await?;
            let bound = listener.local_addr().map_err(StartError::Serve)?;
            Some((listener, bound))
        }
        None => None,
    };
    let (layer, io) = builder.build_layer();
    let metered = Metered::new(store);
    let (liveness, outcomes) = (metered.liveness(), metered.health());
    let server = match peers {
        Some(peers) => {
            spawn_shared_server(driver, PrivateChannels, metered, TokioClock::new(), peers)
        }
        None => spawn_server(driver, PrivateChannels, metered, TokioClock::new()),
    };
    let mode = if args.dev {
        Mode::Dev
    } else {
        Mode::Production
    };
    let probe = Probe::new(server.frontdoor(), liveness, outcomes, mode);
    let admission = Admission::new(AdmissionConfig {
        per_user: args.max_connections_per_user,
        per_address: args.max_connections_per_address,
        pending: args.max_pending_handshakes,
        pending_per_address: args.max_pending_handshakes_per_address,
    });
    attach(
        &io,
        "/",
        server.frontdoor(),
        auth,
        SocketIoFrontConfig {
            request_queue: args.request_queue,
            pending_max: args.pending_requests,
            admission: Some(Arc::clone(&admission)),
            client_reports: ReportLimits {
                every: Duration::from_millis(args.client_report_every_ms),
                ..ReportLimits::default()
            },
        },
    );
    let metrics_route = {
        let mode = probe.mode();
        get(move || async move { metrics_body(mode) })
    };
    let mut app = health_routes(Router::new(), &probe);
    if metrics_listener.is_none() {
        app = app.route("/metrics", metrics_route.clone());
    }
    if let Some(dir) = page.dir() {
        app = app.fallback_service(ServeDir::new(dir));
    }
    let app = app
        .layer(layer)
        // Outside socketioxide: a new session is counted (or refused)
        // before socketioxide allocates anything for it.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&admission),
            handshake_gate,
        ))
        .layer(cors);
    let metrics = metrics_listener
        .map(|(listener, at)| (listener, at, Router::new().route("/metrics", metrics_route)));
    Ok(Bound {
        listener,
        addr,
        app,
        metrics,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        admission,
        server,
        io,
        page,
    })
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// `/health/live`, `/health/ready` and `/health` (the same as ready).
fn health_routes(app: Router, probe: &Probe) -> Router {
    let live = {
        let probe = probe.clone();
        move || async move { json(StatusCode::OK, probe.live_body()) }
    };
    let ready = {
        let probe = probe.clone();
        move || async move {
            let readiness = probe.readiness();
            let status = if readiness.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, probe.ready_body(&readiness))
        }
    };
    app.route("/health/live", get(live))
        .route("/health/ready", get(ready.clone()))
        .route("/health", get(ready))
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The Prometheus exposition, plus `lockstep_dev_mode` (1 under `--dev`),
/// which is this server's own setting rather than a process-wide metric.
fn metrics_body(mode: Mode) -> String {
    let mut body = crate::metered::prometheus().render();
    body.push_str(
        "# HELP lockstep_dev_mode 1 when the server runs with --dev (insecure tokens)\n\
         # TYPE lockstep_dev_mode gauge\n",
    );
    body.push_str(match mode {
        Mode::Dev => "lockstep_dev_mode 1\n",
        Mode::Production => "lockstep_dev_mode 0\n",
    });
    body
}

/// Counts a request that opens a new Engine.IO session as a handshake in
/// progress, or answers 503 with the refusal when a cap is reached.
async fn handshake_gate(
    State(admission): State<Arc<Admission>>,
    mut request: Request,
    next: Next,
) -> Response {
    match admit_session(&admission, &mut request, SOCKET_IO_PATH) {
        Ok(()) => next.run(request).await,
        Err(refusal) => (StatusCode::SERVICE_UNAVAILABLE, refusal.label()).into_response(),
    }
}

impl Bound {
    /// The address actually bound (the port, when 0 was asked).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on, with `--metrics-addr`.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr, _)| *addr)
    }

    /// The connection caps (tests read their counts).
    #[must_use]
    pub fn admission(&self) -> Arc<Admission> {
        Arc::clone(&self.admission)
    }

    /// The driver's frontdoor (tests count the server's tasks through its
    /// tracker: one per open connection, plus the driver).
    #[must_use]
    pub fn frontdoor(&self) -> lockstep_tokio::server::Frontdoor {
        self.server.frontdoor()
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
            metrics,
            header_read_timeout,
            admission,
            server,
            io,
            page: _,
        } = self;
        info!(%addr, "listening");
        tokio::spawn(upkeep(stop.clone(), Arc::clone(&admission)));
        let listen = Listen {
            app,
            admission,
            header_read_timeout,
            connections: TaskTracker::new(),
            closing: CancellationToken::new(),
        };
        let main = accept_loop(listener, listen.clone(), stop.clone());
        let metrics = async {
            if let Some((listener, at, app)) = metrics {
                info!(addr = %at, "serving /metrics");
                let listen = Listen {
                    app,
                    ..listen.clone()
                };
                accept_loop(listener, listen, stop.clone()).await;
            }
        };
        // Both loops return once `stop` is cancelled.
        tokio::join!(main, metrics);
        info!("shutting down: closing connections and finishing store writes");
        let graceful = async {
            server.shutdown().await;
            io.close().await;
            // Requests in flight finish; idle connections close.
            listen.closing.cancel();
            listen.connections.close();
            listen.connections.wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful)
            .await
            .is_err()
        {
            warn!("shutdown timed out");
        }
        info!("stopped");
        Ok(())
    }
}

/// How often the Prometheus recorder folds recorded histogram samples into
/// its buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Keeps the recorder's memory bounded: histogram samples pile up inside it
/// until folded into buckets, which otherwise happens only when `/metrics`
/// is scraped (never, on a server nobody scrapes). Also logs the refusal
/// summary once a burst of refusals is over.
async fn upkeep(stop: CancellationToken, admission: Arc<Admission>) {
    let handle = crate::metered::prometheus();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(UPKEEP_EVERY) => {
                handle.run_upkeep();
                admission.report();
            }
        }
    }
}

/// Refuses settings that would make the server unsafe: no usable secret
/// without `--dev`, or `--dev` reachable from other machines.
fn check_auth(args: &ServeArgs) -> Result<(), StartError> {
    if args.dev {
        if !args.addr.ip().is_loopback() && !args.dev_allow_remote {
            return Err(StartError::DevNotLoopback(args.addr));
        }
        return Ok(());
    }
    secret(args).map(drop)
}

fn secret(args: &ServeArgs) -> Result<Secret, StartError> {
    Ok(Secret::load(
        args.jwt_secret.as_deref(),
        args.jwt_secret_file.as_deref(),
    )?)
}

fn authenticator(args: &ServeArgs) -> Result<Arc<dyn Authenticator>, StartError> {
    check_auth(args)?;
    if args.dev {
        warn!(
            "INSECURE --dev MODE: any `dev:<userId>` token is accepted as that user; \
             never expose this server"
        );
        return Ok(Arc::new(DevAuthenticator::new()));
    }
    let checks = JwtChecks {
        issuer: args.jwt_issuer.clone(),
        audience: args.jwt_audience.clone(),
        leeway_secs: args.jwt_leeway_secs,
    };
    Ok(Arc::new(JwtAuthenticator::new(&secret(args)?, &checks)))
}

/// `--retain-days` as a duration; `None` for 0 (no age limit).
fn retain_age(args: &ServeArgs) -> Option<Duration> {
    (args.retain_days > 0).then(|| Duration::from_secs(args.retain_days.saturating_mul(86_400)))
}

fn machine_config(args: &ServeArgs) -> ServerConfig {
    ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_connections: args.max_connections,
        max_channels_per_conn: args.max_channels_per_conn,
        messages_per_sec: args.messages_per_sec,
        messages_burst: args.messages_burst,
        typing_per_sec: args.typing_per_sec,
        typing_burst: args.typing_burst,
        joins_per_sec: args.joins_per_sec,
        joins_burst: args.joins_burst,
        leaves_per_sec: args.leaves_per_sec,
        leaves_burst: args.leaves_burst,
        history_per_sec: args.history_per_sec,
        history_burst: args.history_burst,
        receipts_per_sec: args.receipts_per_sec,
        receipts_burst: args.receipts_burst,
        user_budget_factor: args.user_budget_factor,
        reply_bytes_max: args.reply_bytes_max,
        reads_in_flight_per_user: args.reads_in_flight_per_user,
        reads_in_flight_max: args.reads_in_flight_max,
        user_reply_bytes_per_sec: args.user_reply_bytes_per_sec,
        user_reply_bytes_burst: args.user_reply_bytes_burst,
        max_append_batch: usize::try_from(args.append_batch).unwrap_or(1),
        appends_in_flight: usize::try_from(args.appends_in_flight).unwrap_or(1),
        presence_grace: Duration::from_millis(args.presence_grace_ms),
        typing_ttl: Duration::from_millis(args.typing_ttl_ms),
        ..ServerConfig::default()
    }
}

fn cors(origins: &[String], dev: bool) -> Result<CorsLayer, StartError> {
    let allowed = allowed_origins(origins, dev).ok_or_else(|| {
        let bad = origins
            .iter()
            .find(|o| o.parse::<axum::http::HeaderValue>().is_err());
        StartError::Origin(bad.cloned().unwrap_or_default())
    })?;
    Ok(CorsLayer::new()
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_credentials(false)
        .allow_origin(allowed))
}
