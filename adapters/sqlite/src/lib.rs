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
//!   outcome is answered before the transaction is durable. A command
//!   joins the writer's queue when `execute` is called, so the writer runs
//!   a channel's pipelined appends in the order the server issued them,
//!   and fails the ones issued behind a failed one (the store contract's
//!   chain rule); the queue holds no more than the server machine has in
//!   flight (`ServerConfig::max_pending_total`). A busy channel's own
//!   appends arrive already batched in each command (one savepoint: all
//!   its entries commit, or none).
//! - **Reads on connections of their own.** `Read` and `Head` are served
//!   by a small pool of reader threads ([`SqliteConfig::readers`]), each
//!   with its own connection and one read transaction per command. WAL
//!   lets them read beside the writer, so a flood of history reads never
//!   delays a commit, and a read issued after an append was acknowledged
//!   sees it (its transaction starts after the commit). They share one
//!   bounded queue.
//! - **Outcomes are what is on disk.** SQLite may roll a group commit's
//!   whole transaction back on its own (disk full, I/O error, out of
//!   memory) or fail its `COMMIT`: the writer detects both and answers
//!   every command as the database holds it, reading back what it wrote
//!   when in doubt (see `writer.rs`). A dead writer fails every write at
//!   once with `ShuttingDown`, and [`Store::is_alive`] says so.
//! - **Retention** by count and age per channel ([`SqliteConfig::retain`],
//!   [`SqliteConfig::retain_age`]): count on each append, age by a
//!   periodic sweep of the writer, both in bounded steps. Reads report
//!   where history begins, so an older position is answered truncated.
//!   Dedupe memory keeps the newest [`SqliteConfig::remember`] messages
//!   per channel (the contract's 100,000 by default), beyond retention.
//! - **Reads write nothing.** A channel gets its row with its first append;
//!   before that it reads as an empty log with the database's fresh epoch.
//!   Every channel has that epoch (this store has no resets): it starts at
//!   the database's creation time (Unix ms), so a position held by a
//!   client can never be mistaken for one in a recreated database.
//! - **Edits and deletes supersede bodies.** The entry holding a message's
//!   body becomes a tombstone when an edit or the deletion supersedes it.
//! - **The WAL stays bounded**: past [`SqliteConfig::wal_limit`] a
//!   checkpoint resets and truncates it, holding new reads back for the
//!   moment it takes (readers that run back to back would starve it), and
//!   an idle database truncates it on the next tick.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod gate;
mod ops;
mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_core::store::{
    REMEMBER_DEFAULT, RETAIN_AGE_DEFAULT, RETAIN_EVENTS_DEFAULT, StoreCommand, StoreError,
    StoreReply,
};
use lockstep_tokio::server::Store;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::ops::{Command, Retention};
pub use schema::Durability;

/// Settings of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// How hard each commit is pushed to disk. Default [`Durability::Full`].
    pub durability: Durability,
    /// Most commands committed in one transaction. Default 256.
    pub batch_max: usize,
    /// Reader threads, each with its own connection, serving `Read` and
    /// `Head` beside the writer. Default 2: reads are short (a page of at
    /// most 1,000 events), so two keep up with a busy server on a small
    /// machine while leaving a core to the writer and the driver. 0: the
    /// writer serves reads too, between commits. An in-memory database
    /// always uses 0 (its connections cannot share it).
    pub readers: usize,
    /// Reads queued for the readers; callers wait while it is full.
    /// Default 1,024.
    pub read_queue: usize,
    /// Events kept per channel; older ones are deleted (a bounded step
    /// with each append), and a position before what is kept is answered
    /// as truncated. At least 1. Default [`RETAIN_EVENTS_DEFAULT`]
    /// (10,000).
    pub retain: u64,
    /// How long an event is kept, by the writer's clock at its commit;
    /// older ones are deleted by a periodic sweep. `None` keeps events
    /// whatever their age. Default [`RETAIN_AGE_DEFAULT`] (90 days).
    pub retain_age: Option<Duration>,
    /// Messages remembered per channel for dedupe, edits and deletes,
    /// beyond retention: older ones' rows are deleted (a bounded step
    /// with each append). The contract asks for at least 100,000; at
    /// least 1. Default [`REMEMBER_DEFAULT`] (100,000).
    pub remember: u64,
    /// Bytes of write-ahead log past which a checkpoint resets it (and the
    /// file is cut back to this size when reset). Default 64 MiB: large
    /// enough that a burst never waits for a checkpoint, small next to a
    /// disk.
    pub wal_limit: u64,
    /// How often the writer applies age retention (a bounded step) and,
    /// when idle, truncates the WAL. Default 1 s.
    pub maintenance_interval: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            durability: Durability::Full,
            batch_max: 256,
            readers: 2,
            read_queue: 1_024,
            retain: RETAIN_EVENTS_DEFAULT,
            retain_age: Some(RETAIN_AGE_DEFAULT),
            remember: REMEMBER_DEFAULT,
            wal_limit: 64 << 20,
            maintenance_interval: Duration::from_secs(1),
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
    /// A thread of the store could not be started.
    #[error("cannot start a store thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The database holds something this store cannot use.
    #[error("unusable database: {0}")]
    Schema(String),
    /// The database was written by a newer version of this store.
    #[error("the database has schema version {0}, newer than this store knows")]
    NewerSchema(i64),
}

/// The SQLite store: a handle to its writer and reader threads. Cheap to
/// clone; the threads stop when the last clone is dropped, after finishing
/// the commands already queued.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Unbounded so that a command takes its place when `execute` is
    /// called (the server machine bounds what is in flight).
    writer: mpsc::UnboundedSender<writer::Job>,
    /// `None`: the writer serves reads.
    readers: Option<mpsc::Sender<reader::Job>>,
    health: Arc<Health>,
}

/// Which of the store's threads run.
#[derive(Debug)]
struct Health {
    writer: AtomicBool,
    readers: AtomicUsize,
    readers_started: usize,
}

/// Marks a thread as stopped when dropped (on return or panic).
struct Running<'a>(&'a Health, bool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.writer.store(false, Ordering::SeqCst);
        } else {
            self.0.readers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Health {
    fn writer_running(&self) -> Running<'_> {
        Running(self, true)
    }

    fn reader_running(&self) -> Running<'_> {
        Running(self, false)
    }
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
        let path = path.as_ref();
        let conn = Connection::open(path)?;
        SqliteStore::start(conn, Some(path), config)
    }

    /// A private in-memory database with default settings (tests).
    ///
    /// # Errors
    ///
    /// [`OpenError`] when SQLite cannot start.
    pub fn in_memory() -> Result<Self, OpenError> {
        SqliteStore::in_memory_with(SqliteConfig::default())
    }

    /// A private in-memory database (tests). The writer serves reads too:
    /// other connections cannot share the database.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when SQLite cannot start.
    pub fn in_memory_with(config: SqliteConfig) -> Result<Self, OpenError> {
        SqliteStore::start(Connection::open_in_memory()?, None, config)
    }

    fn start(
        mut conn: Connection,
        path: Option<&Path>,
        config: SqliteConfig,
    ) -> Result<Self, OpenError> {
        let fresh_epoch = schema::prepare_writer(&mut conn, config.durability, config.wal_limit)?;
        let readers = if path.is_some() { config.readers } else { 0 };
        let health = Arc::new(Health {
            writer: AtomicBool::new(true),
            readers: AtomicUsize::new(readers),
            readers_started: readers,
        });
        let mut reader_conns = Vec::with_capacity(readers);
        if let Some(path) = path {
            for _ in 0..readers {
                let conn = Connection::open(path)?;
                schema::prepare_reader(&conn)?;
                reader_conns.push(conn);
            }
        }
        let gate = Arc::new(gate::Gate::default());
        let read_jobs = if readers > 0 {
            let (tx, rx) = mpsc::channel(config.read_queue.max(1));
            let queue: reader::Queue = Arc::new(Mutex::new(rx));
            for (i, conn) in reader_conns.into_iter().enumerate() {
                let (queue, gate, health) = (queue.clone(), gate.clone(), health.clone());
                std::thread::Builder::new()
                    .name(format!("lockstep-sqlite-read-{i}"))
                    .spawn(move || reader::run(conn, fresh_epoch, queue, gate, health))?;
            }
            Some(tx)
        } else {
            None
        };
        let (jobs, rx) = mpsc::unbounded_channel();
        let tick_queued = Arc::new(AtomicBool::new(false));
        let w = writer::Writer {
            conn,
            fresh_epoch,
            retention: Retention {
                events: config.retain.max(1),
                remember: config.remember.max(1),
            },
            retain_age_ms: config
                .retain_age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            wal: path.map(wal_path),
            wal_limit: config.wal_limit,
            batch_max: config.batch_max.max(1),
            sweep_after: None,
            tick_queued: tick_queued.clone(),
            gate,
            chains: lockstep_core::store::BrokenChains::default(),
            #[cfg(test)]
            commit_fault: None,
        };
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("lockstep-sqlite".into())
            .spawn(move || w.run(rx, writer_health))?;
        start_ticker(&jobs, tick_queued, config.maintenance_interval)?;
        Ok(SqliteStore {
            writer: jobs,
            readers: read_jobs,
            health,
        })
    }
}

/// The WAL file of the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A thread that queues a maintenance tick for the writer every `every`
/// (at most one at a time), until the store is gone.
fn start_ticker(
    jobs: &mpsc::UnboundedSender<writer::Job>,
    queued: Arc<AtomicBool>,
    every: Duration,
) -> std::io::Result<()> {
    let jobs = jobs.downgrade();
    let every = every.max(Duration::from_millis(1));
    std::thread::Builder::new()
        .name("lockstep-sqlite-tick".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(jobs) = jobs.upgrade() else {
                    return;
                };
                if jobs.is_closed() {
                    return;
                }
                if !queued.swap(true, Ordering::Relaxed)
                    && jobs.send(writer::Job::Maintain).is_err()
                {
                    return;
                }
            }
        })?;
    Ok(())
}

impl Store for SqliteStore {
    /// A write joins the writer's queue now, in call order; a read waits
    /// its turn at the readers.
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send {
        let (reply, outcome) = oneshot::channel();
        let read = match (Command::from(cmd), &self.readers) {
            (Command::Read(cmd), Some(readers)) => {
                Some((readers.clone(), reader::Job::Read { cmd, reply }))
            }
            (cmd, _) => {
                // Err: the writer is gone; the dropped reply answers
                // ShuttingDown below.
                let _ = self.writer.send(writer::Job::Command { cmd, reply });
                None
            }
        };
        async move {
            if let Some((readers, job)) = read {
                readers
                    .send(job)
                    .await
                    .map_err(|_| StoreError::ShuttingDown)?;
            }
            outcome.await.map_err(|_| StoreError::ShuttingDown)?
        }
    }

    /// True while the writer thread and every reader thread run (each
    /// marks itself stopped as it ends, by return or panic; while a handle
    /// exists they end only by a panic, or the writer when it cannot read
    /// back a commit's outcome). A store that is not alive fails writes at
    /// once (`ShuttingDown`); the server reports itself not ready.
    fn is_alive(&self) -> bool {
        self.health.writer.load(Ordering::SeqCst)
            && self.health.readers.load(Ordering::SeqCst) == self.health.readers_started
    }
}
