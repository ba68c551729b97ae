//! Command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The lockstep chat server: Socket.IO (the event contract of
/// docs/PROTOCOL.md) with SQLite durability.
#[derive(Debug, Parser)]
#[command(
    name = "lockstep-server",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; without one, the server serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a JWT (HS256) for a user, signed with the server's secret.
    Token(TokenArgs),
}

/// `token`: mints a JWT.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (the token's `sub`).
    pub user: String,
    /// The HS256 secret the server verifies with (prefer
    /// `--jwt-secret-file`: a flag shows in `ps`).
    #[arg(long, env = "LOCKSTEP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A file holding the HS256 secret (trailing whitespace ignored).
    #[arg(long, env = "LOCKSTEP_JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime in seconds (the token's `exp`).
    #[arg(long, env = "LOCKSTEP_TOKEN_TTL_SECS", default_value_t = 3_600)]
    pub ttl_secs: u64,
    /// Not valid for this many seconds from now (the token's `nbf`).
    #[arg(long)]
    pub not_before_secs: Option<u64>,
    /// The token's issuer (`iss`).
    #[arg(long, env = "LOCKSTEP_JWT_ISSUER")]
    pub issuer: Option<String>,
    /// The token's audience (`aud`).
    #[arg(long, env = "LOCKSTEP_JWT_AUDIENCE")]
    pub audience: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How hard SQLite pushes each commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sync {
    /// `synchronous = FULL`: an acknowledged message survives a power loss.
    Full,
    /// `synchronous = NORMAL`: survives a process crash (SIGKILL), may lose
    /// the last commits on a power loss; faster when commits are small
    /// (few senders), since no commit waits for the disk.
    Normal,
}

/// Engine.IO transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebSocket.
    Websocket,
    /// HTTP long-polling.
    Polling,
}

/// `serve`: every setting of the running server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the bound address is
    /// printed as `listening on <addr>`).
    #[arg(long, env = "LOCKSTEP_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Serve `/metrics` on this address instead of the main one (e.g. a
    /// private interface; the bound address is printed as
    /// `metrics on <addr>`).
    #[arg(long, env = "LOCKSTEP_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// SQLite database file (created if missing).
    #[arg(long, env = "LOCKSTEP_DB", default_value = "./lockstep.db")]
    pub db: PathBuf,
    /// SQLite durability of each commit.
    #[arg(long, env = "LOCKSTEP_SQLITE_SYNC", value_enum, default_value_t = Sync::Full)]
    pub sqlite_sync: Sync,
    /// Events kept per channel; older ones are dropped, and a recovery
    /// from before them is reported as truncated (`recovered: false`).
    #[arg(long, env = "LOCKSTEP_RETAIN_COUNT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_count: u64,
    /// Days an event is kept (0: no age limit).
    #[arg(long, env = "LOCKSTEP_RETAIN_DAYS", default_value_t = 90)]
    pub retain_days: u64,
    /// SQLite reader threads: joins and history are read beside the
    /// writer, so reads never queue behind commits.
    #[arg(long, env = "LOCKSTEP_SQLITE_READERS", default_value_t = 2)]
    pub sqlite_readers: usize,
    /// Reads queued for the SQLite readers; callers wait while it is full.
    #[arg(long, env = "LOCKSTEP_SQLITE_READ_QUEUE", default_value_t = 1_024)]
    pub sqlite_read_queue: usize,
    /// Size in MiB past which the SQLite WAL is checkpointed and cut back.
    #[arg(long, env = "LOCKSTEP_SQLITE_WAL_LIMIT_MB", default_value_t = 64)]
    pub sqlite_wal_limit_mb: u64,
    /// Keep everything in memory instead (lost on exit).
    #[arg(long, env = "LOCKSTEP_MEMORY")]
    pub memory: bool,
    /// Store everything in PostgreSQL instead of the SQLite file:
    /// `postgres://user:password@host:port/database` (or `host=… user=…`).
    /// Several servers may share one database.
    #[arg(
        long,
        env = "LOCKSTEP_POSTGRES_URL",
        hide_env_values = true,
        conflicts_with = "memory"
    )]
    pub postgres: Option<String>,
    /// The PostgreSQL schema of the store's tables (created if missing);
    /// servers sharing a store name the same one.
    #[arg(long, env = "LOCKSTEP_POSTGRES_SCHEMA", default_value = "lockstep")]
    pub postgres_schema: String,
    /// PostgreSQL connections that commit, each one batch of appends at a
    /// time (group commit).
    #[arg(long, env = "LOCKSTEP_POSTGRES_WRITERS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub postgres_writers: u64,
    /// PostgreSQL connections for reads (joins, history), beside the
    /// writers.
    #[arg(long, env = "LOCKSTEP_POSTGRES_READERS", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub postgres_readers: u64,
    /// This process's id among the servers sharing one PostgreSQL store
    /// (its own commit hints are skipped when PostgreSQL delivers them
    /// back). Random when unset; set it to tell processes apart in logs.
    #[arg(long, env = "LOCKSTEP_NODE_ID")]
    pub node_id: Option<u64>,
    /// With `--postgres`: how often, on average (±25 %), every channel with
    /// members here is read past its cursor, in case a hint from another
    /// server was lost.
    #[arg(long, env = "LOCKSTEP_POSTGRES_RESYNC_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub postgres_resync_ms: u64,
    /// With `--postgres`: how long an event committed here waits for the
    /// events before it (committed by other servers) before they are read
    /// from the store.
    #[arg(long, env = "LOCKSTEP_TAIL_GAP_MS", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub tail_gap_ms: u64,
    /// With `--postgres`: the lease of this server's presence claims,
    /// milliseconds, renewed every third of it. A user is announced once
    /// whichever servers its sockets are on; a server silent for a lease
    /// is reaped by another, and its users leave after the grace. 0: each
    /// server announces its own connections only.
    #[arg(long, env = "LOCKSTEP_PRESENCE_LEASE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub presence_lease_ms: u64,
    /// HS256 secret for JWT auth, at least 32 bytes (`sub` = user id; `exp`
    /// ends the session). Prefer `--jwt-secret-file`: a flag shows in `ps`.
    #[arg(long, env = "LOCKSTEP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A file holding the HS256 secret (trailing whitespace ignored), so it
    /// never shows in `ps` or the environment.
    #[arg(long, env = "LOCKSTEP_JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Required JWT issuer (`iss`); unchecked when unset.
    #[arg(long, env = "LOCKSTEP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required JWT audience (`aud`); when unset, a token naming an
    /// audience is refused.
    #[arg(long, env = "LOCKSTEP_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    #[arg(long, env = "LOCKSTEP_JWT_LEEWAY_SECS", default_value_t = crate::jwt::DEFAULT_LEEWAY_SECS)]
    pub jwt_leeway_secs: u64,
    /// INSECURE: accept `dev:<userId>` tokens, so anyone can be anyone.
    /// Refuses a non-loopback `--addr` unless `--dev-allow-remote`.
    #[arg(long, env = "LOCKSTEP_DEV", conflicts_with_all = ["jwt_secret", "jwt_secret_file"])]
    pub dev: bool,
    /// With `--dev`, listen on a non-loopback address anyway.
    #[arg(long, env = "LOCKSTEP_DEV_ALLOW_REMOTE", requires = "dev")]
    pub dev_allow_remote: bool,
    /// Engine.IO ping interval, milliseconds.
    #[arg(long, env = "LOCKSTEP_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub ping_interval_ms: u64,
    /// Engine.IO ping timeout, milliseconds.
    #[arg(long, env = "LOCKSTEP_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,
    /// Largest Engine.IO packet in bytes; a larger one closes the connection.
    #[arg(long, env = "LOCKSTEP_MAX_PAYLOAD", default_value_t = 1_048_576)]
    pub max_payload: u64,
    /// Allowed transports.
    #[arg(long, env = "LOCKSTEP_TRANSPORTS", value_enum, value_delimiter = ',', default_values = ["websocket", "polling"])]
    pub transports: Vec<Transport>,
    /// Origins of pages on another origin allowed to call the server
    /// (CORS; comma separated, e.g. `https://app.example.com`; `*` allows
    /// any). By default none, except under `--dev`: every loopback origin
    /// (`http://localhost:5173`, `http://127.0.0.1:8080`, ...). Credentials
    /// (cookies) are never allowed: the token travels in `auth`.
    #[arg(long, env = "LOCKSTEP_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Serve the files of this folder at `/` (an `index.html` and its
    /// assets). Without it, `--dev` serves the demo chat page once
    /// `scripts/demo-build` has built it.
    #[arg(long, env = "LOCKSTEP_WEB_ROOT")]
    pub web_root: Option<PathBuf>,
    /// Least pause between two `client:metrics` reports of one connection,
    /// milliseconds (sustained; two may come at once). Faster ones are
    /// refused and not counted.
    #[arg(long, env = "LOCKSTEP_CLIENT_REPORT_EVERY_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub client_report_every_ms: u64,
    /// Packets buffered per socket before a slow client is cut off.
    #[arg(long, env = "LOCKSTEP_SOCKET_BUFFER", default_value_t = 1_024)]
    pub socket_buffer: usize,
    /// Frames queued per connection in the driver before a slow client is cut off.
    #[arg(long, env = "LOCKSTEP_CONN_QUEUE", default_value_t = 1_024)]
    pub conn_queue: usize,
    /// Bytes queued per connection in the driver before a slow client is
    /// cut off (a frame count bounds nothing when one frame can weigh a
    /// megabyte).
    #[arg(long, env = "LOCKSTEP_CONN_QUEUE_BYTES", default_value_t = 16 << 20)]
    pub conn_queue_bytes: usize,
    /// Bytes queued for all connections of one user together; past it,
    /// its connections more than 1 MiB behind are cut off.
    #[arg(long, env = "LOCKSTEP_USER_QUEUE_BYTES", default_value_t = 64 << 20)]
    pub user_queue_bytes: usize,
    /// Bytes queued for every connection together; past it, connections
    /// more than 1 MiB behind are cut off.
    #[arg(long, env = "LOCKSTEP_TOTAL_QUEUE_BYTES", default_value_t = 1 << 30)]
    pub total_queue_bytes: usize,
    /// Requests of one socket queued for the server before a flooding
    /// client is cut off.
    #[arg(long, env = "LOCKSTEP_REQUEST_QUEUE", default_value_t = 256)]
    pub request_queue: usize,
    /// Requests of one socket awaiting their reply before a flooding client
    /// is cut off.
    #[arg(long, env = "LOCKSTEP_PENDING_REQUESTS", default_value_t = 1_024)]
    pub pending_requests: usize,
    /// Largest message body, bytes of compact JSON.
    #[arg(long, env = "LOCKSTEP_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// Open connections at once.
    #[arg(long, env = "LOCKSTEP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections of one user (rate limits are per connection: this
    /// bounds what one token can claim).
    #[arg(long, env = "LOCKSTEP_MAX_CONNECTIONS_PER_USER", default_value_t = 64)]
    pub max_connections_per_user: usize,
    /// Open TCP connections from one peer IP address, authenticated or not.
    #[arg(
        long,
        env = "LOCKSTEP_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_024
    )]
    pub max_connections_per_address: usize,
    /// Engine.IO sessions still in their handshake (not yet authenticated),
    /// server-wide.
    #[arg(long, env = "LOCKSTEP_MAX_PENDING_HANDSHAKES", default_value_t = 1_024)]
    pub max_pending_handshakes: usize,
    /// Engine.IO sessions still in their handshake from one peer IP address.
    #[arg(
        long,
        env = "LOCKSTEP_MAX_PENDING_HANDSHAKES_PER_ADDRESS",
        default_value_t = 64
    )]
    pub max_pending_handshakes_per_address: usize,
    /// Longest a new Engine.IO session may take to authenticate before it
    /// is closed, milliseconds.
    #[arg(long, env = "LOCKSTEP_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout_ms: u64,
    /// Longest a client may take to send an HTTP request's headers
    /// (from connecting, or from its previous request), milliseconds.
    #[arg(long, env = "LOCKSTEP_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,
    /// Channels one connection may join.
    #[arg(long, env = "LOCKSTEP_MAX_CHANNELS_PER_CONN", default_value_t = 256)]
    pub max_channels_per_conn: usize,
    /// Sustained messages per second per connection.
    #[arg(long, env = "LOCKSTEP_MESSAGES_PER_SEC", default_value_t = 20)]
    pub messages_per_sec: u32,
    /// Burst of messages above the sustained rate.
    #[arg(long, env = "LOCKSTEP_MESSAGES_BURST", default_value_t = 50)]
    pub messages_burst: u32,
    /// Sustained typing notices per second per connection.
    #[arg(long, env = "LOCKSTEP_TYPING_PER_SEC", default_value_t = 5)]
    pub typing_per_sec: u32,
    /// Burst of typing notices.
    #[arg(long, env = "LOCKSTEP_TYPING_BURST", default_value_t = 10)]
    pub typing_burst: u32,
    /// Sustained joins per second per connection.
    #[arg(long, env = "LOCKSTEP_JOINS_PER_SEC", default_value_t = 20)]
    pub joins_per_sec: u32,
    /// Burst of joins (a reconnect re-joins every channel at once).
    #[arg(long, env = "LOCKSTEP_JOINS_BURST", default_value_t = 300)]
    pub joins_burst: u32,
    /// Sustained leaves per second per connection.
    #[arg(long, env = "LOCKSTEP_LEAVES_PER_SEC", default_value_t = 20)]
    pub leaves_per_sec: u32,
    /// Burst of leaves.
    #[arg(long, env = "LOCKSTEP_LEAVES_BURST", default_value_t = 300)]
    pub leaves_burst: u32,
    /// Sustained history pages per second per connection.
    #[arg(long, env = "LOCKSTEP_HISTORY_PER_SEC", default_value_t = 10)]
    pub history_per_sec: u32,
    /// Burst of history pages.
    #[arg(long, env = "LOCKSTEP_HISTORY_BURST", default_value_t = 30)]
    pub history_burst: u32,
    /// Sustained read receipts per second per connection.
    #[arg(long, env = "LOCKSTEP_RECEIPTS_PER_SEC", default_value_t = 10)]
    pub receipts_per_sec: u32,
    /// Burst of read receipts.
    #[arg(long, env = "LOCKSTEP_RECEIPTS_BURST", default_value_t = 30)]
    pub receipts_burst: u32,
    /// All of one user's connections together get this many times one
    /// connection's rates and bursts (every request kind).
    #[arg(long, env = "LOCKSTEP_USER_BUDGET_FACTOR", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub user_budget_factor: u32,
    /// Most bytes of events in one join reply or history page; a page cut
    /// short says so (`recovered: false`, `more: true`).
    #[arg(long, env = "LOCKSTEP_REPLY_BYTES_MAX", default_value_t = 1 << 20)]
    pub reply_bytes_max: usize,
    /// Store reads (joins, history) of one user at the store at once; more
    /// wait their turn.
    #[arg(long, env = "LOCKSTEP_READS_IN_FLIGHT_PER_USER", default_value_t = 2)]
    pub reads_in_flight_per_user: usize,
    /// Store reads at the store at once, all users together (served
    /// round-robin by user).
    #[arg(long, env = "LOCKSTEP_READS_IN_FLIGHT_MAX", default_value_t = 16)]
    pub reads_in_flight_max: usize,
    /// Bytes of join replies and history pages one user may read per
    /// second; over it, its reads wait (never refused).
    #[arg(long, env = "LOCKSTEP_USER_REPLY_BYTES_PER_SEC", default_value_t = 4 << 20)]
    pub user_reply_bytes_per_sec: usize,
    /// Burst of reply bytes per user.
    #[arg(long, env = "LOCKSTEP_USER_REPLY_BYTES_BURST", default_value_t = 16 << 20)]
    pub user_reply_bytes_burst: usize,
    /// Most appends of one channel committed together (one store
    /// transaction, one `fsync`); 1 commits every message on its own.
    #[arg(long, env = "LOCKSTEP_APPEND_BATCH", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_024))]
    pub append_batch: u64,
    /// Append commands of one channel at the store at once: with 2 a busy
    /// channel's next batch starts while the previous one commits; 1
    /// waits for each commit.
    #[arg(long, env = "LOCKSTEP_APPENDS_IN_FLIGHT", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=16))]
    pub appends_in_flight: u64,
    /// Presence grace period before `presence:leave`, milliseconds (at most 5000).
    #[arg(long, env = "LOCKSTEP_PRESENCE_GRACE_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=5_000))]
    pub presence_grace_ms: u64,
    /// Typing indicator lifetime, milliseconds.
    #[arg(long, env = "LOCKSTEP_TYPING_TTL_MS", default_value_t = 5_000)]
    pub typing_ttl_ms: u64,
    /// Log format.
    #[arg(long, env = "LOCKSTEP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
