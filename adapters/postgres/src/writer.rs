//! The writer tasks: each takes a batch of queued write commands and runs
//! it as one transaction on a connection of the writer pool (group commit:
//! one `COMMIT`, one WAL flush, for every command of the batch).
//!
//! # A batch's transaction
//!
//! Two round trips, each a pipeline of statements:
//!
//! 1. `BEGIN`; lock the head rows of the channels appended to (sorted, one
//!    statement: `INSERT … ON CONFLICT DO UPDATE … RETURNING`, which waits
//!    for any other writer of those channels, in this process or another,
//!    to commit and then returns the head it left); the transaction id;
//!    the dedupe keys, targets, heads and watermarks the batch names. Each
//!    statement after the lock runs with a fresh snapshot, so it sees what
//!    the writer before committed: a retry racing its original finds it.
//! 2. [`plan`](crate::plan::plan) decides every command in memory; the
//!    inserts, updates, retention steps and the `COMMIT` go out together.
//!
//! # Outcomes are what is committed
//!
//! PostgreSQL runs a connection's statements in order, so a statement the
//! server answered with an error means the `COMMIT` behind it rolled back:
//! every command fails (`unavailable`) and, when the error can be one
//! command's fault (a server error, a row that does not decode), each
//! command then runs again alone, so one bad command cannot fail the
//! others twice. A statement that could not even be sent turns the `COMMIT`
//! into a `ROLLBACK`. When the connection is lost after the `COMMIT` was
//! sent, the outcome is in doubt: the writer asks the server
//! (`pg_xact_status` of the transaction id, on a new connection) and
//! answers what it says; while the transaction is still running (its
//! backend has not noticed), the writer ends that backend
//! (`pg_terminate_backend`) and asks again. It asks until it gets an
//! answer, at most once a second, while the store exists: a server that is
//! down for a while holds those commands' answers (and this writer) until
//! it is back, rather than answer something that may be false. The other
//! writers go on (and fail fast while the server is down).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Object, Pool};
use lockstep_core::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq};
use lockstep_core::store::{BrokenChains, MessageState, PRUNE_STEP, StoreError, StoreReply};
use lockstep_core::wire::{LogEvent, SendAck};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use tracing::{debug, error, warn};

use crate::Health;
use crate::plan::{self, ChannelRow, Facts, Keys, Retention, WriteCommand, Writes};
use crate::sql;

/// Parameters of a statement, by reference.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        vec![$($p as &(dyn ToSql + Sync)),*]
    };
}

/// Whether `cmd` may run (the store contract's chain rule).
fn admit(chains: &mut BrokenChains, cmd: &WriteCommand) -> Result<(), StoreError> {
    match cmd {
        WriteCommand::Append { channel, chain, .. } => chains.admit(channel, *chain),
        WriteCommand::SetReceipt { .. } => Ok(()),
    }
}

/// What a command comes to.
pub(crate) type Outcome = Result<StoreReply, StoreError>;

/// One command for the writers and where its outcome goes.
pub(crate) struct Job {
    pub(crate) cmd: WriteCommand,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// The writer of `channel` among `writers`: always the same, so a
/// channel's writes run in the order they were queued (FNV-1a of the
/// name: stable across processes and releases).
pub(crate) fn shard(channel: &ChannelId, writers: usize) -> usize {
    let hash = channel
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    usize::try_from(hash % writers.max(1) as u64).unwrap_or(0)
}

/// Why a batch failed before its `COMMIT` was sent: it rolled back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    /// PostgreSQL failed or the connection was lost.
    #[error("postgres: {0}")]
    Sql(#[from] tokio_postgres::Error),
    /// A stored row does not decode (a damaged or foreign schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A statement could not be sent (a value it could not encode); the
    /// transaction was rolled back in its place.
    #[error("a statement could not be sent, rolled back: {0}")]
    Unsent(String),
}

impl OpError {
    /// Whether one command of the batch may be at fault, so the commands
    /// are worth running again one by one: a server error or a bad row,
    /// not a lost connection.
    fn may_be_one_command(&self) -> bool {
        match self {
            OpError::Sql(e) => sql::answered(e),
            OpError::Corrupt(_) | OpError::Unsent(_) => true,
        }
    }
}

/// How a batch's transaction ended.
enum Ended {
    Committed,
    /// Certainly not committed.
    RolledBack(OpError),
    /// The connection went after the `COMMIT` was sent.
    InDoubt(String),
}

/// How one attempt at a batch went.
enum Attempt {
    /// An outcome per command (`None`: the store closed while the outcome
    /// was in doubt; the callers get `ShuttingDown`).
    Done(Option<Vec<Outcome>>),
    /// Rolled back by an error one command may have caused.
    Refused(OpError),
}

/// A transaction whose outcome may have to be settled.
#[derive(Debug, Clone)]
struct Xact {
    id: String,
    pid: i32,
}

/// How often a commit in doubt is asked about, at most (the pauses
/// double from the first up to this).
const SETTLE_PAUSE_MAX: Duration = Duration::from_secs(1);
const SETTLE_PAUSE_FIRST: Duration = Duration::from_millis(10);
/// Answers of "in progress" after which the lingering backend is ended.
const SETTLE_END_BACKEND_AFTER: u32 = 3;

/// The writers' shared settings.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) fresh_epoch: Epoch,
    pub(crate) retention: Retention,
    pub(crate) batch_max: usize,
    pub(crate) health: Arc<Health>,
}

impl Writer {
    /// Runs batches from its queue until every sender is gone.
    pub(crate) async fn run(self: Arc<Self>, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let _running = self.health.writer_running();
        let mut cmds = Vec::with_capacity(self.batch_max);
        let mut replies = Vec::with_capacity(self.batch_max);
        // This writer's channels whose last append failed.
        let mut chains = BrokenChains::default();
        while let Some(first) = jobs.recv().await {
            cmds.push(first.cmd);
            replies.push(first.reply);
            while cmds.len() < self.batch_max {
                let Ok(job) = jobs.try_recv() else {
                    break;
                };
                cmds.push(job.cmd);
                replies.push(job.reply);
            }
            let outcomes = self.execute(&mut chains, &cmds).await;
            cmds.clear();
            match outcomes {
                Some(outcomes) => {
                    for (reply, outcome) in replies.drain(..).zip(outcomes) {
                        // Err: the caller stopped waiting; what committed stands.
                        let _ = reply.send(outcome);
                    }
                }
                // Dropped: the callers get ShuttingDown.
                None => replies.clear(),
            }
        }
        debug!("postgres writer stopped");
    }

    /// Runs a batch: the appends issued behind a failed one of their
    /// channel fail at once, the rest run as one transaction; when it
    /// rolled back for an error one command may have caused, each runs
    /// alone, in order, a failure failing what follows it in its channel.
    async fn execute(
        &self,
        chains: &mut BrokenChains,
        cmds: &[WriteCommand],
    ) -> Option<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(cmds.len());
        let mut batch = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            match admit(chains, cmd) {
                Ok(()) => {
                    outcomes.push(None);
                    batch.push(cmd.clone());
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        let ran = match self.attempt(&batch).await {
            Attempt::Done(ran) => ran?,
            Attempt::Refused(why) => {
                error!(error = %why, commands = batch.len(), "postgres batch rolled back");
                self.one_by_one(chains, &batch, &why).await?
            }
        };
        let mut ran = ran.into_iter();
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| ran.next())
                    .unwrap_or_else(|| Err(StoreError::Unavailable("no outcome".into())))
            })
            .collect();
        for (cmd, outcome) in cmds.iter().zip(&outcomes) {
            if let (WriteCommand::Append { channel, .. }, Err(_)) = (cmd, outcome) {
                chains.failed(channel);
            }
        }
        Some(outcomes)
    }

    /// Runs each command of a batch that rolled back alone, in order.
    async fn one_by_one(
        &self,
        chains: &mut BrokenChains,
        cmds: &[WriteCommand],
        why: &OpError,
    ) -> Option<Vec<Outcome>> {
        if cmds.len() == 1 {
            return Some(failed_all(1, &why.to_string()));
        }
        let mut outcomes = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            if let Err(e) = admit(chains, cmd) {
                outcomes.push(Err(e));
                continue;
            }
            let outcome = match self.attempt(std::slice::from_ref(cmd)).await {
                Attempt::Done(Some(mut one)) => one.pop(),
                Attempt::Done(None) => return None,
                Attempt::Refused(why) => {
                    error!(error = %why, "postgres command failed");
                    Some(Err(StoreError::Unavailable(why.to_string())))
                }
            };
            let outcome =
                outcome.unwrap_or_else(|| Err(StoreError::Unavailable("no outcome".into())));
            if let (WriteCommand::Append { channel, .. }, Err(_)) = (cmd, &outcome) {
                chains.failed(channel);
            }
            outcomes.push(outcome);
        }
        Some(outcomes)
    }

    async fn attempt(&self, cmds: &[WriteCommand]) -> Attempt {
        let n = cmds.len();
        if n == 0 {
            return Attempt::Done(Some(Vec::new()));
        }
        let conn = match self.pool.get().await {
            Ok(conn) => {
                self.health.reached();
                conn
            }
            Err(e) => {
                self.health.unreached();
                return Attempt::Done(Some(failed_all(n, &format!("no connection: {e}"))));
            }
        };
        let keys = Keys::of(cmds);
        let (facts, xact) = match load(&conn, &keys, self.fresh_epoch).await {
            Ok(loaded) => loaded,
            Err(e) => {
                discard(conn);
                return if e.may_be_one_command() {
                    Attempt::Refused(e)
                } else {
                    Attempt::Done(Some(failed_all(n, &e.to_string())))
                };
            }
        };
        let plan = plan::plan(cmds, facts, self.retention, now_ms());
        if plan.writes.is_empty() {
            // Nothing to keep (refusals, duplicates, receipts that held):
            // the answers do not depend on a commit.
            finish(conn, "ROLLBACK").await;
            return Attempt::Done(Some(plan.outcomes));
        }
        let ended = write(&conn, &plan.writes, &self.health).await;
        match ended {
            Ended::Committed => {
                finish_clean(conn);
                Attempt::Done(Some(plan.outcomes))
            }
            Ended::RolledBack(e) => {
                discard(conn);
                if e.may_be_one_command() {
                    Attempt::Refused(e)
                } else {
                    Attempt::Done(Some(failed_all(n, &e.to_string())))
                }
            }
            Ended::InDoubt(why) => {
                discard(conn);
                warn!(error = %why, xact = %xact.id, "the connection went during a commit: asking the server what it kept");
                match self.settle(&xact).await {
                    Some(true) => Attempt::Done(Some(plan.outcomes)),
                    Some(false) => {
                        Attempt::Done(Some(failed_all(n, &format!("commit failed: {why}"))))
                    }
                    None => Attempt::Done(None),
                }
            }
        }
    }

    /// Whether the transaction committed, from the server; `None` once the
    /// store is closed (see the module docs).
    async fn settle(&self, xact: &Xact) -> Option<bool> {
        let mut pause = SETTLE_PAUSE_FIRST;
        let mut in_progress = 0u32;
        loop {
            match self.xact_status(xact).await {
                Ok(Some(committed)) => {
                    warn!(xact = %xact.id, committed, "commit in doubt settled");
                    return Some(committed);
                }
                Ok(None) => {
                    in_progress += 1;
                    if in_progress == SETTLE_END_BACKEND_AFTER {
                        warn!(xact = %xact.id, pid = xact.pid, "a transaction in doubt is still running: ending its backend");
                        self.end_backend(xact.pid).await;
                    }
                }
                Err(e) => warn!(error = %e, xact = %xact.id, "cannot settle a commit in doubt yet"),
            }
            if self.health.is_closed() {
                error!(xact = %xact.id, "store closed with a commit in doubt: its commands are answered as shutting down");
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(SETTLE_PAUSE_MAX);
        }
    }

    /// `Some(committed)`, or `None` while it runs.
    async fn xact_status(&self, xact: &Xact) -> Result<Option<bool>, String> {
        let conn = self.pool.get().await.map_err(|e| {
            self.health.unreached();
            e.to_string()
        })?;
        self.health.reached();
        let status = conn.query_one(sql::XACT_STATUS, &[&xact.id]).await;
        match status {
            Ok(row) => match row.get::<_, Option<&str>>(0) {
                Some("committed") => Ok(Some(true)),
                Some("aborted") => Ok(Some(false)),
                Some("in progress") => Ok(None),
                other => Err(format!("unexpected transaction status {other:?}")),
            },
            // "transaction ID is in the future": this database never had
            // it (it was replaced, e.g. by a replica that had not received
            // it): nothing of it is here.
            Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => Ok(Some(false)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn end_backend(&self, pid: i32) {
        match self.pool.get().await {
            Ok(conn) => {
                if let Err(e) = conn.query_one(sql::END_BACKEND, &[&pid]).await {
                    warn!(error = %e, pid, "cannot end a backend");
                }
            }
            Err(e) => warn!(error = %e, pid, "cannot end a backend"),
        }
    }
}

fn failed_all(n: usize, why: &str) -> Vec<Outcome> {
    (0..n)
        .map(|_| Err(StoreError::Unavailable(why.to_owned())))
        .collect()
}

/// Takes a connection out of the pool and closes it: after an error its
/// transaction state is unknown, and closing ends the transaction.
fn discard(conn: Object) {
    drop(Object::take(conn));
}

/// A connection whose transaction committed goes back to the pool.
fn finish_clean(conn: Object) {
    drop(conn);
}

/// Ends the transaction with `sql`; a connection that cannot is discarded.
async fn finish(conn: Object, sql: &str) {
    if let Err(e) = conn.batch_execute(sql).await {
        debug!(error = %e, "cannot end a transaction; closing its connection");
        discard(conn);
    }
}

/// The first round trip (see the module docs): locks and facts.
async fn load(conn: &Object, keys: &Keys, fresh_epoch: Epoch) -> Result<(Facts, Xact), OpError> {
    let lock = conn.prepare_cached(sql::LOCK_HEADS).await?;
    let xact = conn.prepare_cached(sql::XACT).await?;
    let find_messages = conn.prepare_cached(sql::FIND_MESSAGES).await?;
    let find_targets = conn.prepare_cached(sql::FIND_TARGETS).await?;
    let find_heads = conn.prepare_cached(sql::FIND_HEADS).await?;
    let find_receipts = conn.prepare_cached(sql::FIND_RECEIPTS).await?;

    let lock_names: Vec<&str> = keys.lock.iter().map(ChannelId::as_str).collect();
    let epoch = to_i64(fresh_epoch.0)?;
    let (m_channels, m_authors, m_cmids): (Vec<&str>, Vec<&str>, Vec<&[u8]>) = unzip3(
        keys.messages
            .iter()
            .map(|(c, a, m)| (c.as_str(), a.as_str(), m.as_str().as_bytes())),
    );
    let (t_channels, t_ids): (Vec<&str>, Vec<&str>) = keys
        .targets
        .iter()
        .map(|(c, id)| (c.as_str(), id.as_str()))
        .unzip();
    let h_channels: Vec<&str> = keys
        .receipt_channels
        .iter()
        .map(ChannelId::as_str)
        .collect();
    let (r_channels, r_users): (Vec<&str>, Vec<&str>) = keys
        .receipts
        .iter()
        .map(|(c, u)| (c.as_str(), u.as_str()))
        .unzip();

    let (begun, locked, xact, messages, targets, heads, receipts) = tokio::join!(
        biased;
        conn.batch_execute("BEGIN"),
        query(conn, &lock, params![&lock_names, &epoch], lock_names.is_empty()),
        query(conn, &xact, Vec::new(), false),
        query(
            conn,
            &find_messages,
            params![&m_channels, &m_authors, &m_cmids],
            m_channels.is_empty()
        ),
        query(conn, &find_targets, params![&t_channels, &t_ids], t_channels.is_empty()),
        query(conn, &find_heads, params![&h_channels], h_channels.is_empty()),
        query(
            conn,
            &find_receipts,
            params![&r_channels, &r_users],
            r_channels.is_empty()
        ),
    );
    begun?;
    let mut facts = Facts::default();
    for row in locked? {
        let channel = channel_id(row.try_get(0)?)?;
        facts.locked.insert(
            channel,
            ChannelRow {
                epoch: Epoch(to_u64(row.try_get(1)?)?),
                head: Seq(to_u64(row.try_get(2)?)?),
                messages: to_u64(row.try_get(3)?)?,
            },
        );
    }
    let xact = xact?;
    let xact = xact
        .first()
        .ok_or_else(|| OpError::Corrupt("no transaction id".into()))?;
    let xact = Xact {
        id: xact.try_get(0)?,
        pid: xact.try_get(1)?,
    };
    for row in messages? {
        let key = nth(&keys.messages, &row)?;
        let ack = SendAck {
            message_id: message_id(row.try_get(1)?)?,
            seq: Seq(to_u64(row.try_get(2)?)?),
            ts: to_u64(row.try_get(3)?)?,
        };
        facts.messages.insert(key.clone(), ack);
    }
    for row in targets? {
        let key = nth(&keys.targets, &row)?;
        let author: String = row.try_get(1)?;
        let state = match (row.try_get::<_, Option<i64>>(2)?, row.try_get(3)?) {
            (_, Some(deleted)) => MessageState::Deleted {
                seq: Seq(to_u64(deleted)?),
            },
            (Some(body), None) => MessageState::Live {
                body: Seq(to_u64(body)?),
            },
            (None, None) => {
                return Err(OpError::Corrupt(format!("message {} has no body", key.1)));
            }
        };
        facts.targets.insert(key.clone(), (author, state));
    }
    for row in heads? {
        let channel = channel_id(row.try_get(0)?)?;
        facts.heads.insert(channel, Seq(to_u64(row.try_get(1)?)?));
    }
    for row in receipts? {
        let key = nth(&keys.receipts, &row)?;
        facts
            .receipts
            .insert(key.clone(), Seq(to_u64(row.try_get(1)?)?));
    }
    Ok((facts, xact))
}

/// Runs a query of a pipeline, or nothing when `skip`.
async fn query(
    conn: &Object,
    stmt: &Statement,
    params: Vec<&(dyn ToSql + Sync)>,
    skip: bool,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if skip {
        return Ok(Vec::new());
    }
    conn.query(stmt, &params).await
}

/// Runs a write of a pipeline, or nothing when `skip`; marks `unsent`
/// when it failed without reaching the server.
async fn exec(
    conn: &Object,
    unsent: &AtomicBool,
    stmt: &Statement,
    params: Vec<&(dyn ToSql + Sync)>,
    skip: bool,
) -> Result<u64, tokio_postgres::Error> {
    if skip {
        return Ok(0);
    }
    let done = conn.execute(stmt, &params).await;
    if let Err(e) = &done
        && !sql::answered(e)
        && !e.is_closed()
    {
        unsent.store(true, Ordering::SeqCst);
    }
    done
}

/// The key a row answers, by the ordinality in its first column.
fn nth<'k, K>(keys: &'k [K], row: &Row) -> Result<&'k K, OpError> {
    let i: i64 = row.try_get(0)?;
    usize::try_from(i - 1)
        .ok()
        .and_then(|i| keys.get(i))
        .ok_or_else(|| OpError::Corrupt(format!("no key at position {i}")))
}

fn unzip3<A, B, C>(it: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in it {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

/// The columns of `messages` for a state: (body_seq, deleted_seq).
fn state_columns(state: MessageState) -> Result<(Option<i64>, Option<i64>), OpError> {
    Ok(match state {
        MessageState::Live { body } => (Some(to_i64(body.0)?), None),
        MessageState::Deleted { seq } => (None, Some(to_i64(seq.0)?)),
    })
}

/// Event kinds as stored.
pub(crate) const KIND_MESSAGE: i16 = 0;
pub(crate) const KIND_UPDATED: i16 = 1;
pub(crate) const KIND_DELETED: i16 = 2;

/// The columns of `events` for a batch's new events.
#[derive(Default)]
struct EventColumns<'a> {
    channels: Vec<&'a str>,
    seqs: Vec<i64>,
    ats: Vec<i64>,
    kinds: Vec<i16>,
    ids: Vec<&'a str>,
    authors: Vec<Option<&'a str>>,
    cmids: Vec<Option<&'a [u8]>>,
    tss: Vec<Option<i64>>,
    bodies: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    fn of(rows: &'a [plan::EventRow]) -> Result<Self, OpError> {
        let mut c = EventColumns::default();
        for row in rows {
            c.channels.push(row.event.channel_id().as_str());
            c.seqs.push(to_i64(row.event.seq().0)?);
            c.ats.push(to_i64(row.at)?);
            c.ids.push(row.event.message_id().as_str());
            c.bodies.push(row.event.body().map(|b| b.json()));
            let (kind, author, cmid, ts) = match &row.event {
                LogEvent::Message(m) => (
                    KIND_MESSAGE,
                    Some(m.author_id.as_str()),
                    Some(m.client_msg_id.as_str().as_bytes()),
                    Some(to_i64(m.ts)?),
                ),
                LogEvent::Updated(_) => (KIND_UPDATED, None, None, None),
                LogEvent::Deleted(_) => (KIND_DELETED, None, None, None),
            };
            c.kinds.push(kind);
            c.authors.push(author);
            c.cmids.push(cmid);
            c.tss.push(ts);
        }
        Ok(c)
    }
}

/// The second round trip: every write of the plan, then `COMMIT` (see the
/// module docs for how its end is told).
async fn write(conn: &Object, w: &Writes, health: &Health) -> Ended {
    match write_pipelined(conn, w, health).await {
        Ok(ended) => ended,
        Err(e) => Ended::RolledBack(e),
    }
}

async fn write_pipelined(conn: &Object, w: &Writes, health: &Health) -> Result<Ended, OpError> {
    let st_new_messages = conn.prepare_cached(sql::INSERT_MESSAGES).await?;
    let st_changed = conn.prepare_cached(sql::UPDATE_MESSAGES).await?;
    let st_events = conn.prepare_cached(sql::INSERT_EVENTS).await?;
    let st_tombstones = conn.prepare_cached(sql::DROP_BODIES).await?;
    let st_heads = conn.prepare_cached(sql::SET_HEADS).await?;
    let st_unwritten = conn.prepare_cached(sql::DROP_UNWRITTEN).await?;
    let st_prune = conn.prepare_cached(sql::PRUNE_EVENTS).await?;
    let st_forget = conn.prepare_cached(sql::FORGET_MESSAGES).await?;
    let st_receipts = conn.prepare_cached(sql::RAISE_RECEIPTS).await?;

    // New messages.
    let mut nm = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for m in &w.new_messages {
        let (body, deleted) = state_columns(m.state)?;
        nm.0.push(m.channel.as_str());
        nm.1.push(m.message_id.as_str());
        nm.2.push(m.author.as_str());
        nm.3.push(m.client_msg_id.as_str().as_bytes());
        nm.4.push(to_i64(m.seq.0)?);
        nm.5.push(to_i64(m.ts)?);
        nm.6.push(body);
        nm.7.push(deleted);
    }
    // Changed messages.
    let mut cm = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (channel, id, state) in &w.changed_messages {
        let (body, deleted) = state_columns(*state)?;
        cm.0.push(channel.as_str());
        cm.1.push(id.as_str());
        cm.2.push(body);
        cm.3.push(deleted);
    }
    let ev = EventColumns::of(&w.events)?;
    let (ts_channels, ts_seqs) = channel_seqs(&w.tombstones)?;
    let mut hd = (Vec::new(), Vec::new(), Vec::new());
    for h in &w.heads {
        hd.0.push(h.channel.as_str());
        hd.1.push(to_i64(h.head.0)?);
        hd.2.push(to_i64(h.messages)?);
    }
    let unwritten: Vec<&str> = w.unwritten.iter().map(ChannelId::as_str).collect();
    let (pr_channels, pr_cuts) = channel_seqs(&w.prune)?;
    let step = to_i64(PRUNE_STEP)?;
    let mut fg = (Vec::new(), Vec::new());
    for (channel, n) in &w.forget {
        fg.0.push(channel.as_str());
        fg.1.push(to_i64(*n)?);
    }
    let mut rc = (Vec::new(), Vec::new(), Vec::new());
    for (channel, user, up_to) in &w.receipts {
        rc.0.push(channel.as_str());
        rc.1.push(user.as_str());
        rc.2.push(to_i64(up_to.0)?);
    }

    // Set when a statement failed without reaching the server: the
    // COMMIT behind it becomes a ROLLBACK (it is polled, and sent, after
    // every statement before it was).
    let unsent = AtomicBool::new(false);
    #[cfg(test)]
    let fault = health.take_commit_fault();
    #[cfg(not(test))]
    let _ = health;
    let commit = async {
        if unsent.load(Ordering::SeqCst) {
            conn.batch_execute("ROLLBACK").await?;
            return Ok(Sent::RollBack);
        }
        #[cfg(test)]
        if let Some(crate::CommitFault::RollBackSilently) = fault {
            conn.batch_execute("ROLLBACK").await?;
            return Ok(Sent::FaultRollBack);
        }
        conn.batch_execute("COMMIT").await.map(|()| Sent::Commit)
    };
    let (a, b, c, d, e, f, g, h, i, committed) = tokio::join!(
        biased;
        exec(
            conn,
            &unsent,
            &st_new_messages,
            params![&nm.0, &nm.1, &nm.2, &nm.3, &nm.4, &nm.5, &nm.6, &nm.7],
            nm.0.is_empty()
        ),
        exec(conn, &unsent, &st_changed, params![&cm.0, &cm.1, &cm.2, &cm.3], cm.0.is_empty()),
        exec(
            conn,
            &unsent,
            &st_events,
            params![
                &ev.channels,
                &ev.seqs,
                &ev.ats,
                &ev.kinds,
                &ev.ids,
                &ev.authors,
                &ev.cmids,
                &ev.tss,
                &ev.bodies
            ],
            ev.channels.is_empty()
        ),
        exec(conn, &unsent, &st_tombstones, params![&ts_channels, &ts_seqs], ts_channels.is_empty()),
        exec(conn, &unsent, &st_heads, params![&hd.0, &hd.1, &hd.2], hd.0.is_empty()),
        exec(conn, &unsent, &st_unwritten, params![&unwritten], unwritten.is_empty()),
        exec(conn, &unsent, &st_prune, params![&pr_channels, &pr_cuts, &step], pr_channels.is_empty()),
        exec(conn, &unsent, &st_forget, params![&fg.0, &fg.1], fg.0.is_empty()),
        exec(conn, &unsent, &st_receipts, params![&rc.0, &rc.1, &rc.2], rc.0.is_empty()),
        commit,
    );
    let mut errors: Vec<tokio_postgres::Error> = [a, b, c, d, e, f, g, h, i]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    // An answered failure: everything after it in the transaction, the
    // COMMIT included, rolled back.
    if let Some(at) = errors.iter().position(sql::answered) {
        return Ok(Ended::RolledBack(OpError::Sql(errors.swap_remove(at))));
    }
    if unsent.load(Ordering::SeqCst) {
        let why = errors.first().map_or_else(String::new, ToString::to_string);
        return Ok(Ended::RolledBack(OpError::Unsent(why)));
    }
    if let Some(e) = errors.first() {
        return Ok(Ended::InDoubt(e.to_string()));
    }
    match committed {
        Ok(Sent::Commit) => {
            #[cfg(test)]
            if let Some(crate::CommitFault::LoseReply) = fault {
                return Ok(Ended::InDoubt("test: the commit's reply was lost".into()));
            }
            Ok(Ended::Committed)
        }
        Ok(Sent::RollBack) => Ok(Ended::RolledBack(OpError::Unsent(String::new()))),
        #[cfg(test)]
        Ok(Sent::FaultRollBack) => Ok(Ended::InDoubt("test: the commit's reply was lost".into())),
        // A COMMIT the server refused (ERROR, not FATAL) rolled back.
        Err(e) if e.as_db_error().is_some_and(|d| d.severity() == "ERROR") => {
            Ok(Ended::RolledBack(OpError::Sql(e)))
        }
        Err(e) => Ok(Ended::InDoubt(e.to_string())),
    }
}

/// What went out in place of the plain `COMMIT`.
enum Sent {
    Commit,
    /// A statement was not sent: rolled back instead.
    RollBack,
    /// Test hook: rolled back, reported as a lost reply.
    #[cfg(test)]
    FaultRollBack,
}

fn channel_seqs(rows: &[(ChannelId, Seq)]) -> Result<(Vec<&str>, Vec<i64>), OpError> {
    let mut channels = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for (channel, seq) in rows {
        channels.push(channel.as_str());
        seqs.push(to_i64(seq.0)?);
    }
    Ok((channels, seqs))
}

pub(crate) fn to_i64(v: u64) -> Result<i64, OpError> {
    i64::try_from(v).map_err(|_| OpError::Corrupt(format!("number {v} beyond bigint")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, OpError> {
    u64::try_from(v).map_err(|_| OpError::Corrupt(format!("negative number {v}")))
}

pub(crate) fn channel_id(s: &str) -> Result<ChannelId, OpError> {
    ChannelId::new(s).map_err(|e| OpError::Corrupt(e.to_string()))
}

pub(crate) fn message_id(s: &str) -> Result<MessageId, OpError> {
    MessageId::new(s).map_err(|e| OpError::Corrupt(e.to_string()))
}

pub(crate) fn client_msg_id(bytes: &[u8]) -> Result<ClientMsgId, OpError> {
    let s = std::str::from_utf8(bytes).map_err(|e| OpError::Corrupt(e.to_string()))?;
    ClientMsgId::new(s).map_err(|e| OpError::Corrupt(e.to_string()))
}

/// The writer's clock, Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
