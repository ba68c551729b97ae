//! # lockstep-postgres
//!
//! The durable store of `lockstep-server` on PostgreSQL, the database most
//! chat backends already run, behind the async [`Store`] trait of the
//! server driver. It keeps the store contract of `lockstep_core::store`
//! rule for rule (the kit in `lockstep_tokio::server::contract` checks it,
//! as it checks the memory and SQLite stores), and several processes may
//! share one database: it is the ground a multi-node deployment stands on
//! (docs/DESIGN.md §5).
//!
//! # Choices
//!
//! - **`tokio-postgres` with a `deadpool-postgres` pool**: the async driver
//!   the Rust ecosystem standardised on, with prepared statements cached
//!   per connection, pipelining, and a pool that replaces dead
//!   connections on its own. TLS is not wired yet: use loopback or a
//!   private network.
//! - **A channel's head row is locked first in every append.** The
//!   `channels` row of a channel (epoch, head) is locked by the first
//!   statement that touches the channel (`INSERT … ON CONFLICT DO UPDATE …
//!   RETURNING`, which creates it on the first append and waits for any
//!   other writer holding it), then dedupe keys and targets are looked up,
//!   then the rows are inserted. So a channel has one writer at a time
//!   across any number of connections and processes: seqs stay
//!   contiguous, and a retry racing its original (on another process)
//!   waits and then finds it, answering the original ack instead of
//!   failing on a unique index. Every writer locks head rows in one order
//!   (sorted), in one statement, so two batches never wait in a cycle.
//! - **Group commit.** Write commands queue for a few writer tasks
//!   ([`PgConfig::writers`]), each on its own connection and with a queue
//!   of its own; a channel's commands always go to the same writer (by a
//!   hash of its name), joining its queue when `execute` is called, so a
//!   channel's pipelined appends run in the order the server issued them
//!   and the writer fails the ones issued behind a failed one (the store
//!   contract's chain rule). A writer takes
//!   everything queued (up to [`PgConfig::batch_max`]) and runs it as one
//!   transaction: one `COMMIT`, one WAL flush for the lot. A batch costs
//!   two round trips whatever its size: one pipeline that locks and looks
//!   everything up, then the plan made in memory (the contract's rules, the
//!   ones `MemStore` and SQLite ask), then one pipeline of set-based writes
//!   (arrays through `unnest`) ending in `COMMIT`. The queues hold no more
//!   than the server machine has in flight
//!   (`ServerConfig::max_pending_total`).
//! - **Reads on their own connections** ([`PgConfig::readers`]): `Read`
//!   and `Head` are single statements (one snapshot) on the reader pool,
//!   so history reads never wait behind commits. A page is cut by its byte
//!   budget in SQL first (by body bytes, a lower bound of each event's
//!   wire length), so a page of heavy bodies never sends much more than
//!   its budget over the wire, and then exactly.
//! - **Outcomes are what is committed.** A failed statement fails the
//!   whole batch (nothing of it commits) and each command is retried alone
//!   once, so one bad command cannot fail the others; when the connection
//!   is lost after the `COMMIT` went out, the writer asks the server
//!   (`pg_xact_status`) before it answers (see `writer.rs`).
//! - **Retention** by count and age per channel ([`PgConfig::retain`],
//!   [`PgConfig::retain_age`]): count with each append, age by a periodic
//!   sweep, both in bounded steps; reads report where history begins.
//!   Dedupe memory keeps the newest [`PgConfig::remember`] messages per
//!   channel, beyond retention. An edit or a deletion turns the entry that
//!   held the body into a tombstone (its body goes NULL).
//! - **Reads write nothing**; an append of which nothing commits leaves
//!   no row. Every channel has the store's one epoch (no resets): the
//!   store's creation time in Unix ms, fixed in its schema.
//! - **Its own schema** ([`PgConfig::schema`], `lockstep`), created and
//!   migrated at connect (versioned, in one transaction, under an advisory
//!   lock so processes starting together take turns), so it can live in
//!   the application's own database. PostgreSQL 13 or newer, UTF8.
//! - **Hints between processes** ([`hint_link`]): after a commit a process
//!   tells the others with `NOTIFY` (batched, outside the append
//!   transaction) which seqs of which channel it committed; a dedicated
//!   connection `LISTEN`s for theirs. Hints only wake the server machine
//!   up: it reads the events from the store and delivers them from one
//!   cursor per channel (docs/DESIGN.md §5), and rereads every channel it serves
//!   when the listener (re)connects and periodically, so a lost hint costs
//!   latency, never an event.
//! - **Readiness** ([`Store::is_alive`]): every writer task runs and the
//!   server answered the last attempt to reach it (a new connection, or
//!   the periodic maintenance query, once a second by default).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The shared test helpers (tests/common) name the crate.
#[cfg(test)]
extern crate self as lockstep_postgres;

mod hints;
mod maintain;
mod plan;
mod presence;
mod reader;
mod schema;
mod sql;
#[cfg(test)]
mod tests;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lockstep_core::ids::Epoch;
use lockstep_core::store::{
    REMEMBER_DEFAULT, RETAIN_AGE_DEFAULT, RETAIN_EVENTS_DEFAULT, ReadCommand, Routed, StoreCommand,
    StoreError, StoreReply,
};
use lockstep_tokio::server::Store;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use crate::plan::Retention;

pub use hints::{HintConfig, hint_link, random_node};

/// Settings of a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The PostgreSQL schema holding the store's tables, created if
    /// missing: lower-case letters, digits and `_`, at most 63 bytes.
    /// Several processes sharing a store name the same schema. Default
    /// `lockstep`.
    pub schema: String,
    /// Writer tasks, each with a connection of its own, each committing
    /// one batch at a time; a channel's writes always go to the same one.
    /// Default 2: while one batch waits for its commit, another channel's
    /// is being planned and sent.
    pub writers: usize,
    /// Connections for reads (`Read`, `Head`). Default 4: reads are short
    /// (a page of at most 1,000 events) and the server already bounds
    /// how many it has in flight.
    pub readers: usize,
    /// Most commands committed in one transaction. Default 256.
    pub batch_max: usize,
    /// Events kept per channel; older ones are deleted (a bounded step
    /// with each append). At least 1. Default [`RETAIN_EVENTS_DEFAULT`]
    /// (10,000).
    pub retain: u64,
    /// How long an event is kept, by the writer's clock at its commit;
    /// older ones are deleted by a periodic sweep. `None` keeps events
    /// whatever their age. Default [`RETAIN_AGE_DEFAULT`] (90 days).
    pub retain_age: Option<Duration>,
    /// Messages remembered per channel for dedupe, edits and deletes,
    /// beyond retention. The contract asks for at least 100,000; at least
    /// 1. Default [`REMEMBER_DEFAULT`] (100,000).
    pub remember: u64,
    /// How often age retention takes a step and the server's reachability
    /// is checked. Default 1 s.
    pub maintenance_interval: Duration,
    /// How long connecting may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long a writer waits for a lock (a channel's head row held by
    /// another process) before its batch fails, retryably. Default 5 s.
    pub lock_timeout: Duration,
    /// How long one statement may run. Default 30 s.
    pub statement_timeout: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            schema: "lockstep".into(),
            writers: 2,
            readers: 4,
            batch_max: 256,
            retain: RETAIN_EVENTS_DEFAULT,
            retain_age: Some(RETAIN_AGE_DEFAULT),
            remember: REMEMBER_DEFAULT,
            maintenance_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// How long a session of this store may sit idle inside a transaction
/// before the server ends it: a process that stops mid-transaction (hung,
/// cut off) cannot hold a channel's head row for longer.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection URL does not parse.
    #[error("invalid postgres url: {0}")]
    Url(tokio_postgres::Error),
    /// The schema name is not a plain lower-case identifier.
    #[error("invalid schema name {0:?} (lower-case letters, digits and _, at most 63 bytes)")]
    SchemaName(String),
    /// PostgreSQL refused or failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be made.
    #[error("cannot connect to postgres: {0}")]
    Pool(String),
    /// The server is older than 13.
    #[error("postgres server version {0} is older than 13")]
    ServerTooOld(i32),
    /// The database does not store text as UTF-8.
    #[error("the database encoding is {0}, not UTF8")]
    Encoding(String),
    /// The schema was written by a newer version of this store.
    #[error("the schema has version {0}, newer than this store knows")]
    NewerSchema(i64),
    /// The schema holds something this store cannot use.
    #[error("unusable schema: {0}")]
    Schema(String),
}

/// The PostgreSQL store: a handle to its writer tasks and pools. Cheap to
/// clone; the tasks stop when the last clone is dropped, after finishing
/// the commands already queued. Needs a tokio runtime.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Each writer's queue, unbounded so a command takes its place when
    /// `execute` is called (the server machine bounds what is in flight).
    jobs: Vec<mpsc::UnboundedSender<writer::Job>>,
    readers: Pool,
    fresh_epoch: Epoch,
    health: Arc<Health>,
    /// Dropped with the store: the maintenance task stops.
    _alive: Arc<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.health.closed.store(true, Ordering::SeqCst);
    }
}

/// How a commit fails on purpose (unit tests).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitFault {
    /// The commit happens; its reply is treated as lost.
    LoseReply,
    /// A rollback is sent in its place; reported as a lost reply.
    RollBackSilently,
}

/// What readiness is made of.
#[derive(Debug)]
pub(crate) struct Health {
    writers: AtomicUsize,
    writers_started: usize,
    reachable: AtomicBool,
    closed: AtomicBool,
    #[cfg(test)]
    commit_fault: Mutex<Option<CommitFault>>,
}

/// Counts a writer task out when dropped (on return or panic).
pub(crate) struct Running<'a>(&'a Health);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Health {
    pub(crate) fn writer_running(&self) -> Running<'_> {
        Running(self)
    }

    pub(crate) fn reached(&self) {
        self.reachable.store(true, Ordering::SeqCst);
    }

    pub(crate) fn unreached(&self) {
        self.reachable.store(false, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub(crate) fn take_commit_fault(&self) -> Option<CommitFault> {
        self.commit_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`
    /// or `host=… user=…`), creates or migrates the store's schema, and
    /// starts the writers.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL or a setting is unusable, the server
    /// cannot be reached, or the schema cannot be prepared.
    pub async fn connect(url: &str, config: PgConfig) -> Result<Self, ConnectError> {
        if !schema::valid_schema_name(&config.schema) {
            return Err(ConnectError::SchemaName(config.schema));
        }
        let mut pg = tokio_postgres::Config::from_str(url).map_err(ConnectError::Url)?;
        session_settings(&mut pg, &config);
        let writers = config.writers.max(1);
        // One connection beyond the writers: settling a commit in doubt
        // and the maintenance step.
        let write_pool = pool(&pg, writers + 1, &config)?;
        let read_pool = pool(&pg, config.readers.max(1), &config)?;
        let mut conn = write_pool
            .get()
            .await
            .map_err(|e| ConnectError::Pool(e.to_string()))?;
        let fresh_epoch = schema::prepare(&mut conn, &config.schema).await?;
        drop(conn);
        let health = Arc::new(Health {
            writers: AtomicUsize::new(writers),
            writers_started: writers,
            reachable: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            #[cfg(test)]
            commit_fault: Mutex::new(None),
        });
        let w = Arc::new(writer::Writer {
            pool: write_pool.clone(),
            fresh_epoch,
            retention: Retention {
                events: config.retain.max(1),
                remember: config.remember.max(1),
            },
            batch_max: config.batch_max.max(1),
            health: health.clone(),
        });
        let mut jobs = Vec::with_capacity(writers);
        for _ in 0..writers {
            let (tx, rx) = mpsc::unbounded_channel();
            jobs.push(tx);
            tokio::spawn(w.clone().run(rx));
        }
        let alive = Arc::new(());
        tokio::spawn(maintain::run(
            write_pool,
            health.clone(),
            Arc::downgrade(&alive),
            config
                .retain_age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            config.maintenance_interval,
        ));
        Ok(PgStore {
            inner: Arc::new(Inner {
                jobs,
                readers: read_pool,
                fresh_epoch,
                health,
                _alive: alive,
            }),
        })
    }

    /// Test hook: how the next commit fails.
    #[cfg(test)]
    pub(crate) fn fail_next_commit(&self, fault: CommitFault) {
        *self
            .inner
            .health
            .commit_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fault);
    }
}

/// The session settings of every connection: the store's schema first on
/// the search path, the lock and statement timeouts, and how long a
/// session may idle in a transaction. Options given in the URL stay.
fn session_settings(pg: &mut tokio_postgres::Config, config: &PgConfig) {
    let ms = |d: Duration| d.as_millis().max(1);
    let ours = format!(
        "-c search_path={} -c lock_timeout={} -c statement_timeout={} \
         -c idle_in_transaction_session_timeout={}",
        config.schema,
        ms(config.lock_timeout),
        ms(config.statement_timeout),
        ms(IDLE_IN_TRANSACTION),
    );
    let options = match pg.get_options() {
        Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    pg.options(&options);
    if pg.get_application_name().is_none() {
        pg.application_name("lockstep");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(config.connect_timeout);
    }
    pg.keepalives(true);
}

fn pool(pg: &tokio_postgres::Config, size: usize, config: &PgConfig) -> Result<Pool, ConnectError> {
    let manager = Manager::from_config(
        pg.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(config.connect_timeout))
        .wait_timeout(Some(config.statement_timeout))
        .build()
        .map_err(|e| ConnectError::Pool(e.to_string()))
}

impl Store for PgStore {
    /// A write joins its channel's writer queue now, in call order.
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send {
        let routed = match Routed::from(cmd) {
            Routed::Read(read) => Ok(read),
            Routed::Write(write) => {
                let (reply, outcome) = oneshot::channel();
                let shard = writer::shard(write.channel(), self.inner.jobs.len());
                if let Some(jobs) = self.inner.jobs.get(shard) {
                    // Err: the writer is gone; the dropped reply answers
                    // ShuttingDown below.
                    let _ = jobs.send(writer::Job { cmd: write, reply });
                }
                Err(outcome)
            }
        };
        let store = self.clone();
        async move {
            match routed {
                Ok(read) => store.read(read).await,
                Err(outcome) => outcome.await.map_err(|_| StoreError::ShuttingDown)?,
            }
        }
    }

    /// True while every writer task runs and the server answered the last
    /// attempt to reach it (a new connection, or the periodic check). A
    /// server that is down or restarting makes it false within the
    /// maintenance interval; the server then reports itself not ready.
    fn is_alive(&self) -> bool {
        let h = &self.inner.health;
        h.writers.load(Ordering::SeqCst) == h.writers_started && h.reachable.load(Ordering::SeqCst)
    }
}

impl PgStore {
    async fn read(&self, cmd: ReadCommand) -> Result<StoreReply, StoreError> {
        reader::read(
            &self.inner.readers,
            &self.inner.health,
            self.inner.fresh_epoch,
            cmd,
        )
        .await
    }
}
