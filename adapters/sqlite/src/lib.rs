//! # lockstep-sqlite
//!
//! The embedded, durable store of `lockstep-server`: SQLite in WAL mode
//! behind the async [`Store`] trait of the
//! server driver. It keeps the store contract of `lockstep_core::store`
//! rule for rule (the kit in `lockstep_tokio::server::contract` checks it,
//! as it checks the memory store): one transaction per append assigns the seq, records the dedupe
//! key and applies the edit/delete rule; reads are bounded; receipts are
//! monotonic; each channel has an epoch fixed at its first touch.
//!
//! # Choices
//!
//! - **`rusqlite` with the `bundled` feature**: the most used SQLite
//!   binding, synchronous and thin, and `bundled` compiles SQLite in, so no
//!   system library is needed anywhere the server is built.
//! - **A dedicated writer thread, not `spawn_blocking`.** SQLite allows one
//!   writer at a time. A pool of connections on `spawn_blocking` would have
//!   them contend for the write lock (`SQLITE_BUSY`, retries) and pay a
//!   thread hand-off per call anyway. One thread owning one connection
//!   serializes writes without contention, keeps its prepared statements
//!   cached, and can **group commit**: it drains the queued commands and
//!   runs them in one transaction with one savepoint each (a lone command
//!   needs none: the transaction is its savepoint), so a burst of appends
//!   costs one `fsync` while every command stays atomic on its own and no
//!   outcome is answered before the transaction is durable. Its
//!   queue is bounded, so a slow disk slows the driver down (backpressure)
//!   instead of growing memory. The server machine never issues two
//!   append commands for one channel at once, so batching changes no
//!   order; a busy channel's own appends arrive already batched in one
//!   command (one savepoint: all its entries commit, or none).
//! - **Everything is retained**: history reads start at seq 1 and dedupe
//!   memory covers every message (the contract asks for at least 100,000).
//! - **Epochs** start at the database's creation time (Unix ms) and count
//!   up, so a position held by a client can never be mistaken for one in a
//!   recreated database.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ops;
mod schema;
mod writer;

use std::path::Path;

use lockstep_core::store::{StoreCommand, StoreError, StoreReply};
use lockstep_tokio::server::Store;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use schema::Durability;

/// Settings of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// How hard each commit is pushed to disk. Default [`Durability::Full`].
    pub durability: Durability,
    /// Commands queued for the writer; callers wait while it is full.
    /// Default 4,096.
    pub queue: usize,
    /// Most commands committed in one transaction. Default 256.
    pub batch_max: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            durability: Durability::Full,
            queue: 4_096,
            batch_max: 256,
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// SQLite refused the file or the schema.
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The SQLite store: a handle to its writer thread. Cheap to clone; the
/// thread stops when the last clone is dropped, after finishing the
/// commands already queued.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<writer::Job>,
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with default settings.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the file cannot be opened or prepared.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        SqliteStore::open_with(path, SqliteConfig::default())
    }

    /// Opens (or creates) the database file at `path`.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the file cannot be opened or prepared.
    pub fn open_with(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, OpenError> {
        let conn = Connection::open(path)?;
        SqliteStore::start(conn, config)
    }

    /// A private in-memory database (tests).
    ///
    /// # Errors
    ///
    /// [`OpenError`] when SQLite cannot start.
    pub fn in_memory() -> Result<Self, OpenError> {
        SqliteStore::start(Connection::open_in_memory()?, SqliteConfig::default())
    }

    fn start(conn: Connection, config: SqliteConfig) -> Result<Self, OpenError> {
        let next_epoch = schema::prepare(&conn, config.durability)?;
        let (jobs, rx) = mpsc::channel(config.queue.max(1));
        let batch_max = config.batch_max.max(1);
        std::thread::Builder::new()
            .name("lockstep-sqlite".into())
            .spawn(move || writer::run(conn, next_epoch, rx, batch_max))?;
        Ok(SqliteStore { jobs })
    }
}

impl Store for SqliteStore {
    async fn execute(&self, cmd: StoreCommand) -> Result<StoreReply, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(writer::Job { cmd, reply })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        outcome.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// The writer thread owns the receiving end of the job queue: the queue
    /// is closed exactly when the thread is gone (it stops only when every
    /// handle is dropped, so while one is alive, only by a panic).
    fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }
}
