//! The writer thread: owns the one writing SQLite connection and executes
//! commands in batches, one savepoint each inside one transaction, so a
//! burst of appends costs one `fsync` (group commit) while each command
//! stays atomic on its own.
//!
//! Every outcome it answers is what is on disk. SQLite may roll a whole
//! transaction back by itself when a statement fails (disk full, I/O error,
//! out of memory, busy): the writer checks after every command, and when
//! the transaction is gone, none of the batch is stored: the commands
//! before the failing one run again in a transaction of their own, and
//! the rest fail (retryably). A failed `COMMIT` whose transaction is
//! still open is rolled back, with the same answer. A failed `COMMIT` whose
//! transaction is gone leaves the outcome in doubt: the writer reads back
//! what each command wrote (channel heads, watermarks) and answers from
//! that. If it cannot even read, it stops rather than guess: the store
//! reports itself not alive, and callers get `ShuttingDown`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockstep_core::ids::{ChannelId, Epoch, Seq, UserId};
use lockstep_core::store::{AppendOutcome, BrokenChains, StoreError, StoreReply};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::Health;
use crate::gate::Gate;
use crate::ops::{self, Command, Ctx, OpError, PRUNE_STEP, Retention, WriteCommand};

/// Where a command's outcome goes.
pub(crate) type Reply = oneshot::Sender<Result<StoreReply, StoreError>>;

/// One unit of work for the writer.
pub(crate) enum Job {
    /// A command and where its outcome goes.
    Command { cmd: Command, reply: Reply },
    /// The periodic tick: apply age retention a step, checkpoint if idle.
    Maintain,
    /// Test hooks.
    #[cfg(test)]
    Test(crate::tests::WriterTest),
}

/// How long a checkpoint that resets the WAL waits for this store's reads
/// in progress to end (each is one short transaction) before it gives up
/// until the next batch.
const READS_WAIT: Duration = Duration::from_millis(500);

/// How long such a checkpoint waits for other processes' readers.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

/// Channels one age-retention step looks at.
const SWEEP_CHANNELS: usize = 256;

/// Attempts at reading back an outcome in doubt, and the pause after each.
const PROBE_PAUSES: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
];

/// The writer's connection and settings.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) fresh_epoch: Epoch,
    pub(crate) retention: Retention,
    /// Oldest event kept, in ms behind the writer's clock.
    pub(crate) retain_age_ms: Option<u64>,
    /// The WAL file (none for an in-memory database).
    pub(crate) wal: Option<PathBuf>,
    /// Bytes of WAL past which a checkpoint resets it at once.
    pub(crate) wal_limit: u64,
    pub(crate) batch_max: usize,
    /// The channel the age sweep resumes after.
    pub(crate) sweep_after: Option<String>,
    /// Set by the ticker, cleared here: at most one tick queued.
    pub(crate) tick_queued: Arc<AtomicBool>,
    /// Held closed while a checkpoint resets the WAL.
    pub(crate) gate: Arc<Gate>,
    /// Channels whose last append failed: appends issued behind it fail.
    pub(crate) chains: BrokenChains,
    /// Test hook: how the next `COMMIT` fails.
    #[cfg(test)]
    pub(crate) commit_fault: Option<crate::tests::CommitFault>,
}

/// The writer cannot tell what is on disk: it stops.
#[derive(Debug)]
struct Stop;

/// How one transaction of a batch ended.
enum Attempt {
    /// Committed, or failed as a whole; an outcome per command.
    Done(Vec<Outcome>),
    /// SQLite rolled it back on its own while running command `at`.
    RolledBack { at: usize, why: String },
}

impl Writer {
    /// Runs until every sender is dropped (or the truth cannot be read).
    pub(crate) fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>, health: Arc<Health>) {
        let _alive = health.writer_running();
        let mut cmds = Vec::with_capacity(self.batch_max);
        let mut replies = Vec::with_capacity(self.batch_max);
        while let Some(first) = jobs.blocking_recv() {
            let mut tick = false;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Command { cmd, reply } => {
                        cmds.push(cmd);
                        replies.push(reply);
                    }
                    Job::Maintain => tick = true,
                    #[cfg(test)]
                    Job::Test(test) => test.run(&mut self),
                }
                if cmds.len() < self.batch_max {
                    next = jobs.try_recv().ok();
                }
            }
            if !cmds.is_empty() {
                let executed = self.execute_batch(&cmds);
                cmds.clear();
                let Ok(outcomes) = executed else {
                    // The replies are dropped: callers get ShuttingDown.
                    error!("sqlite writer stopped: the outcome of a commit cannot be read back");
                    return;
                };
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    // Err: the caller stopped waiting (its connection
                    // closed); the effect stands, like any committed
                    // transaction.
                    let _ = reply.send(outcome);
                }
            }
            if tick {
                self.tick_queued.store(false, Ordering::Relaxed);
                self.sweep_age();
            }
            self.bound_wal(tick && jobs.is_empty());
        }
        debug!("sqlite writer stopped");
    }

    /// Executes a batch in one transaction; every outcome is final only
    /// once the transaction commits, so none is answered before its data is
    /// durable, and each is what the disk holds (see the module docs).
    ///
    /// When SQLite rolls the transaction back on its own at a command (a
    /// disk that filled up, an I/O error), the commands before it had run
    /// fine: they run again in a transaction of their own, and that command
    /// and those after it fail (retryably). At most two transactions a batch.
    fn execute_batch(&mut self, cmds: &[Command]) -> Result<Vec<Outcome>, Stop> {
        let ctx = Ctx {
            fresh_epoch: self.fresh_epoch,
            retention: self.retention,
            now_ms: now_ms(),
        };
        let n = cmds.len();
        let (at, why) = match self.attempt(&ctx, cmds)? {
            Attempt::Done(outcomes) => return Ok(self.chained(cmds, outcomes)),
            Attempt::RolledBack { at, why } => (at, why),
        };
        error!(error = %why, commands = n, failed_at = at, "sqlite rolled the batch back; storing the commands before the failure again");
        let mut outcomes = match self.attempt(&ctx, &cmds[..at])? {
            Attempt::Done(outcomes) => outcomes,
            Attempt::RolledBack { why, .. } => failed_all(at, &format!("rolled back twice: {why}")),
        };
        outcomes.extend(failed_all(
            n - at,
            &format!("transaction rolled back: {why}"),
        ));
        Ok(self.chained(cmds, outcomes))
    }

    /// Records the batch's failed appends as broken chains, now that their
    /// outcomes are final (a commit can fail what ran fine).
    fn chained(&mut self, cmds: &[Command], outcomes: Vec<Outcome>) -> Vec<Outcome> {
        for (cmd, outcome) in cmds.iter().zip(&outcomes) {
            if let (Command::Write(WriteCommand::Append { channel, .. }), Err(_)) = (cmd, outcome) {
                self.chains.failed(channel);
            }
        }
        outcomes
    }

    /// Whether `cmd` may run: an append issued behind a failed one of its
    /// channel may not (see `lockstep_core::store::AppendChain`).
    fn admit(&mut self, cmd: &Command) -> Result<(), StoreError> {
        match cmd {
            Command::Write(WriteCommand::Append { channel, chain, .. }) => {
                self.chains.admit(channel, *chain)
            }
            _ => Ok(()),
        }
    }

    /// Runs `cmds` in one transaction (see [`Writer::execute_batch`]).
    fn attempt(&mut self, ctx: &Ctx, cmds: &[Command]) -> Result<Attempt, Stop> {
        let n = cmds.len();
        if n == 0 {
            return Ok(Attempt::Done(Vec::new()));
        }
        if let Err(e) = self.sql("BEGIN") {
            return Ok(Attempt::Done(failed_all(n, &format!("cannot begin: {e}"))));
        }
        let lone = n == 1;
        let mut outcomes = Vec::with_capacity(n);
        let mut written = Vec::with_capacity(n);
        for (i, cmd) in cmds.iter().enumerate() {
            written.push(WriteKey::of(cmd));
            if let Err(e) = self.admit(cmd) {
                if lone {
                    return Ok(Attempt::Done(self.roll_back(n, &e.to_string())));
                }
                outcomes.push(Err(e));
                continue;
            }
            let outcome = if lone {
                // The transaction alone makes a lone command atomic; a
                // savepoint would only add its statement journal (a copy of
                // every page the command touches: a fifth of an append's
                // cost, profiled).
                Ok(ops::execute(&self.conn, ctx, cmd.clone()))
            } else {
                self.in_savepoint(ctx, cmd.clone())
            };
            if self.conn.is_autocommit() {
                // SQLite rolled the whole transaction back: nothing of
                // the batch is stored, whatever it looked like so far.
                let why = match &outcome {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => "transaction ended".into(),
                };
                return Ok(Attempt::RolledBack { at: i, why });
            }
            let outcome = match outcome {
                Ok(outcome) => outcome,
                // A savepoint could not be ended: what this command left in
                // the transaction is unknown, so none of the batch commits.
                Err(e) => {
                    error!(error = %e, "savepoint failed; rolling the batch back");
                    return Ok(Attempt::Done(
                        self.roll_back(n, &format!("savepoint failed: {e}")),
                    ));
                }
            };
            if let Err(e) = &outcome {
                error!(error = %e, "store command failed");
                if let Command::Write(WriteCommand::Append { channel, .. }) = cmd {
                    // What this batch runs behind it must fail too.
                    self.chains.failed(channel);
                }
                if lone {
                    return Ok(Attempt::Done(self.roll_back(n, &e.to_string())));
                }
            }
            outcomes.push(outcome.map_err(|e| StoreError::Unavailable(e.to_string())));
        }
        let written: Vec<Written> = written
            .into_iter()
            .zip(&outcomes)
            .map(|(key, outcome)| key.what(outcome))
            .collect();
        Ok(Attempt::Done(match self.commit() {
            Ok(()) => outcomes,
            Err(e) if !self.conn.is_autocommit() => {
                error!(error = %e, "commit failed; rolled back: none of the batch is stored");
                self.roll_back(n, &format!("commit failed: {e}"))
            }
            Err(e) => {
                warn!(error = %e, "commit failed and ended the transaction: reading back what is stored");
                self.settle(outcomes, &written, &e.to_string())?
            }
        }))
    }

    /// One command of a batch inside a savepoint of its own: a failure
    /// undoes this command only. The outer error: the savepoint itself
    /// failed, and what the command left in the transaction is unknown.
    fn in_savepoint(
        &self,
        ctx: &Ctx,
        cmd: Command,
    ) -> rusqlite::Result<Result<StoreReply, OpError>> {
        self.sql("SAVEPOINT cmd")?;
        let outcome = ops::execute(&self.conn, ctx, cmd);
        if self.conn.is_autocommit() {
            // The transaction is gone, the savepoint with it.
            return Ok(outcome);
        }
        match outcome {
            Ok(_) => self.sql("RELEASE cmd")?,
            Err(_) => {
                self.sql("ROLLBACK TO cmd")?;
                self.sql("RELEASE cmd")?;
            }
        }
        Ok(outcome)
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        #[cfg(test)]
        if let Some(fault) = self.commit_fault.take() {
            return fault.apply(&self.conn);
        }
        self.sql("COMMIT")
    }

    /// Rolls the open transaction back: every command of the batch failed.
    fn roll_back(&self, n: usize, why: &str) -> Vec<Outcome> {
        if !self.conn.is_autocommit()
            && let Err(e) = self.sql("ROLLBACK")
        {
            error!(error = %e, "rollback failed");
        }
        failed_all(n, why)
    }

    /// After a failed `COMMIT` that ended the transaction: answers each
    /// command from what the database holds. The batch was one
    /// transaction, so normally all of it is stored or none; a command
    /// whose writes are not found, or that wrote nothing while others'
    /// writes are missing (its answer may rest on them), fails.
    fn settle(
        &self,
        outcomes: Vec<Outcome>,
        written: &[Written],
        why: &str,
    ) -> Result<Vec<Outcome>, Stop> {
        let mut found = Vec::with_capacity(written.len());
        for w in written {
            found.push(self.probe(w)?);
        }
        let writes = found.iter().filter(|f| f.is_some()).count();
        let stored = found.iter().filter(|f| **f == Some(true)).count();
        if stored < writes {
            if stored > 0 {
                error!(stored, writes, "a failed commit stored part of its batch");
            } else {
                warn!(writes, "the failed commit stored nothing");
            }
        }
        let all_stored = stored == writes;
        Ok(outcomes
            .into_iter()
            .zip(found)
            .map(|(outcome, found)| match found {
                Some(true) => outcome,
                None if all_stored => outcome,
                _ => Err(StoreError::Unavailable(format!("commit failed: {why}"))),
            })
            .collect())
    }

    /// Whether what a command wrote is on disk (`None`: it wrote nothing),
    /// retrying a few times; [`Stop`] when it cannot be read.
    fn probe(&self, written: &Written) -> Result<Option<bool>, Stop> {
        let mut pauses = PROBE_PAUSES.iter();
        loop {
            match written.on_disk(&self.conn) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    error!(error = %e, "cannot read back a commit's outcome");
                    let Some(pause) = pauses.next() else {
                        return Err(Stop);
                    };
                    std::thread::sleep(*pause);
                }
            }
        }
    }

    fn sql(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// One step of age retention, in its own transaction: the oldest
    /// events older than the limit go, for up to [`SWEEP_CHANNELS`]
    /// channels and [`PRUNE_STEP`] events each, resuming where the last
    /// step stopped and starting over after the last channel.
    fn sweep_age(&mut self) {
        let Some(age) = self.retain_age_ms else {
            return;
        };
        let cutoff = now_ms().saturating_sub(age);
        let step = || -> Result<(usize, Option<String>), OpError> {
            let tx = self.conn.unchecked_transaction()?;
            let channels: Vec<String> = tx
                .prepare_cached(
                    "SELECT channel FROM channels WHERE channel > ?1 ORDER BY channel LIMIT ?2",
                )?
                .query_map(
                    params![
                        self.sweep_after.as_deref().unwrap_or(""),
                        SWEEP_CHANNELS as i64
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut dropped = 0;
            for name in &channels {
                let channel =
                    ChannelId::new(name.as_str()).map_err(|e| OpError::Corrupt(e.to_string()))?;
                let mut stamps = tx.prepare_cached(
                    "SELECT seq, at FROM events WHERE channel = ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut rows = stamps.query(params![name, PRUNE_STEP as i64])?;
                let mut last_old = None;
                while let Some(row) = rows.next()? {
                    let at: Option<i64> = row.get(1)?;
                    // An unknown stamp (a migrated row) ends the step:
                    // count retention takes care of it.
                    match at {
                        Some(at) if ops::to_u64(at)? < cutoff => last_old = Some(row.get(0)?),
                        _ => break,
                    }
                }
                if let Some(last) = last_old {
                    dropped +=
                        ops::delete_events_through(&tx, &channel, ops::to_u64(last)?, PRUNE_STEP)?;
                }
            }
            tx.commit()?;
            Ok((dropped, channels.last().cloned()))
        };
        match step() {
            Ok((dropped, last)) => {
                if dropped > 0 {
                    debug!(dropped, "age retention dropped old events");
                }
                self.sweep_after = last;
            }
            Err(e) => warn!(error = %e, "age retention step failed; retried next tick"),
        }
    }

    /// Keeps the WAL bounded: past its limit, a checkpoint resets and
    /// truncates it, with this store's readers held at the gate (reads in
    /// progress end first; see `gate.rs`). When `idle`, the same whatever
    /// its size, so a quiet database ends with an empty WAL. A checkpoint
    /// that cannot run now is tried again after the next batch.
    fn bound_wal(&self, idle: bool) {
        let Some(wal) = &self.wal else {
            return;
        };
        let size = std::fs::metadata(wal).map_or(0, |m| m.len());
        if !(size > self.wal_limit || idle && size > 0) {
            return;
        }
        let Some(closed) = self.gate.close(READS_WAIT) else {
            debug!(size, "reads still running; wal checkpoint later");
            return;
        };
        let checkpoint = || -> rusqlite::Result<(i64, i64, i64)> {
            self.conn.busy_timeout(CHECKPOINT_WAIT)?;
            let result = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
            self.conn.busy_timeout(crate::schema::BUSY_TIMEOUT)?;
            result
        };
        let result = checkpoint();
        drop(closed);
        match result {
            Ok((0, _, _)) => debug!(size, "wal checkpointed and truncated"),
            Ok((_, frames, done)) => {
                debug!(size, frames, done, "wal checkpoint busy; retried later")
            }
            Err(e) => warn!(error = %e, "wal checkpoint failed"),
        }
    }
}

/// What a command's outcome is: its reply or why it failed.
type Outcome = Result<StoreReply, StoreError>;

fn failed_all(n: usize, why: &str) -> Vec<Outcome> {
    (0..n)
        .map(|_| Err(StoreError::Unavailable(format!("sqlite: {why}"))))
        .collect()
}

/// What a command wrote, so it can be looked for after a failed commit.
#[derive(Debug)]
enum Written {
    /// Nothing (a read, a refusal, a duplicate, a receipt that held).
    Nothing,
    /// Events up to `seq`: the channel's head is at least `seq` iff stored
    /// (only this writer moves heads, and a head never goes back).
    Head { channel: ChannelId, seq: Seq },
    /// A watermark raised to `up_to`: stored iff at least that now.
    Receipt {
        channel: ChannelId,
        user: UserId,
        up_to: Seq,
    },
}

/// What a command may write, known before it runs.
#[derive(Debug)]
enum WriteKey {
    None,
    Append(ChannelId),
    Receipt(ChannelId, UserId),
}

impl WriteKey {
    fn of(cmd: &Command) -> WriteKey {
        match cmd {
            Command::Read(_) => WriteKey::None,
            Command::Write(WriteCommand::Append { channel, .. }) => {
                WriteKey::Append(channel.clone())
            }
            Command::Write(WriteCommand::SetReceipt { channel, user, .. }) => {
                WriteKey::Receipt(channel.clone(), user.clone())
            }
        }
    }

    /// What the command wrote, given its outcome.
    fn what(self, outcome: &Outcome) -> Written {
        match (self, outcome) {
            (WriteKey::Append(channel), Ok(StoreReply::Appended(outcomes))) => outcomes
                .iter()
                .filter_map(AppendOutcome::appended)
                .map(|e| e.seq())
                .max()
                .map_or(Written::Nothing, |seq| Written::Head { channel, seq }),
            (
                WriteKey::Receipt(channel, user),
                Ok(StoreReply::Receipt {
                    up_to,
                    advanced: true,
                }),
            ) => Written::Receipt {
                channel,
                user,
                up_to: *up_to,
            },
            _ => Written::Nothing,
        }
    }
}

impl Written {
    /// Whether it is on disk; `None` when it wrote nothing.
    fn on_disk(&self, conn: &Connection) -> rusqlite::Result<Option<bool>> {
        let (sql, at_least, args): (&str, Seq, Vec<&str>) = match self {
            Written::Nothing => return Ok(None),
            Written::Head { channel, seq } => (
                "SELECT head FROM channels WHERE channel = ?1",
                *seq,
                vec![channel.as_str()],
            ),
            Written::Receipt {
                channel,
                user,
                up_to,
            } => (
                "SELECT up_to FROM receipts WHERE channel = ?1 AND user = ?2",
                *up_to,
                vec![channel.as_str(), user.as_str()],
            ),
        };
        let value: Option<i64> = conn
            .query_row(sql, rusqlite::params_from_iter(args), |r| r.get(0))
            .optional()?;
        Ok(Some(value.is_some_and(|v| {
            u64::try_from(v).is_ok_and(|v| v >= at_least.0)
        })))
    }
}

/// The writer's clock, Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
