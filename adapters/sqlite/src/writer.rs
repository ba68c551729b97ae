//! The writer thread: owns the one SQLite connection and executes
//! commands in batches, one savepoint each inside one transaction, so a
//! burst of appends costs one `fsync` (group commit) while each command
//! stays atomic on its own.

use lockstep_core::store::{StoreCommand, StoreError, StoreReply};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error};

use crate::ops::{self, OpError};

/// One command and where its outcome goes.
pub(crate) struct Job {
    pub(crate) cmd: StoreCommand,
    pub(crate) reply: oneshot::Sender<Result<StoreReply, StoreError>>,
}

/// Runs until every sender is dropped.
pub(crate) fn run(
    mut conn: Connection,
    mut next_epoch: u64,
    mut jobs: mpsc::Receiver<Job>,
    batch_max: usize,
) {
    let mut cmds = Vec::with_capacity(batch_max);
    let mut replies = Vec::with_capacity(batch_max);
    while let Some(first) = jobs.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            cmds.push(job.cmd);
            replies.push(job.reply);
            if cmds.len() < batch_max {
                next = jobs.try_recv().ok();
            }
        }
        let outcomes = execute_batch(&mut conn, &mut next_epoch, cmds.drain(..));
        for (reply, outcome) in replies.drain(..).zip(outcomes) {
            // Err: the caller stopped waiting (its connection closed); the
            // effect stands, like any committed transaction.
            let _ = reply.send(outcome);
        }
    }
    debug!("sqlite writer stopped");
}

/// Executes a batch in one transaction; every outcome is final only once
/// the transaction commits, so none is answered before its data is durable.
fn execute_batch(
    conn: &mut Connection,
    next_epoch: &mut u64,
    cmds: impl ExactSizeIterator<Item = StoreCommand>,
) -> Vec<Result<StoreReply, StoreError>> {
    let epoch_before = *next_epoch;
    let jobs = cmds.len();
    let result = (|| -> Result<Vec<Result<StoreReply, StoreError>>, rusqlite::Error> {
        let mut tx = conn.transaction()?;
        let outcomes = if jobs == 1 {
            // The transaction alone makes a lone command atomic; a savepoint
            // would only add its statement journal (a copy of every page
            // the command touches: a fifth of an append's cost, profiled).
            let mut epoch = *next_epoch;
            let outcomes: Vec<_> = cmds.map(|cmd| execute_one(&tx, &mut epoch, cmd)).collect();
            if outcomes.iter().any(Result::is_err) {
                // Dropping the transaction rolls the command back.
                return Ok(outcomes);
            }
            *next_epoch = epoch;
            outcomes
        } else {
            let mut outcomes = Vec::with_capacity(jobs);
            for cmd in cmds {
                let sp = tx.savepoint()?;
                let mut epoch = *next_epoch;
                let outcome = execute_one(&sp, &mut epoch, cmd);
                if outcome.is_ok() {
                    sp.commit()?;
                    *next_epoch = epoch;
                }
                // Else dropping the savepoint rolls back this command only.
                outcomes.push(outcome);
            }
            outcomes
        };
        tx.commit()?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => outcomes,
        Err(e) => {
            error!(error = %e, "store transaction failed: nothing of the batch was committed");
            *next_epoch = epoch_before;
            (0..jobs)
                .map(|_| Err(StoreError::Unavailable(format!("sqlite: {e}"))))
                .collect()
        }
    }
}

/// One command; its failure becomes `unavailable` for that command.
fn execute_one(
    conn: &Connection,
    epoch: &mut u64,
    cmd: StoreCommand,
) -> Result<StoreReply, StoreError> {
    ops::execute(conn, epoch, cmd).map_err(|e| {
        error!(error = %e, "store command failed");
        unavailable(&e)
    })
}

fn unavailable(e: &OpError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
