//! Reader threads: each owns a connection of its own and serves reads
//! (`Read`, `Head`) from one shared bounded queue, each in a read
//! transaction of its own. In WAL mode a reader sees the database as of
//! its transaction's start and never waits for the writer, so history
//! reads do not queue behind commits, and a read issued after an append
//! was acknowledged sees it (the commit came first).

use std::sync::{Arc, Mutex, PoisonError};

use lockstep_core::ids::Epoch;
use lockstep_core::store::{StoreError, StoreReply};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error};

use crate::Health;
use crate::gate::Gate;
use crate::ops::{self, ReadCommand};

/// One unit of work for a reader.
pub(crate) enum Job {
    /// A read and where its outcome goes.
    Read {
        cmd: ReadCommand,
        reply: oneshot::Sender<Result<StoreReply, StoreError>>,
    },
    /// Test hooks.
    #[cfg(test)]
    Test(crate::tests::ReaderTest),
}

/// The queue the readers share: one of them waits on it at a time.
pub(crate) type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// Runs until every sender is dropped.
pub(crate) fn run(
    mut conn: Connection,
    fresh_epoch: Epoch,
    jobs: Queue,
    gate: Arc<Gate>,
    health: Arc<Health>,
) {
    let _alive = health.reader_running();
    loop {
        // A reader that panicked cannot have left the receiver half-used:
        // the lock is held only while waiting.
        let job = jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match job {
            None => break,
            Some(Job::Read { cmd, reply }) => {
                let reading = gate.enter();
                let outcome = read(&mut conn, fresh_epoch, cmd);
                drop(reading);
                // Err: the caller stopped waiting; nothing to undo.
                let _ = reply.send(outcome);
            }
            #[cfg(test)]
            Some(Job::Test(test)) => test.run(),
        }
    }
    debug!("sqlite reader stopped");
}

/// One read in a read transaction of its own (one snapshot for the head
/// and the events).
fn read(
    conn: &mut Connection,
    fresh_epoch: Epoch,
    cmd: ReadCommand,
) -> Result<StoreReply, StoreError> {
    let outcome = conn
        .transaction()
        .map_err(ops::OpError::from)
        .and_then(|tx| ops::execute_read(&tx, fresh_epoch, cmd));
    // The transaction only read: dropping it (a rollback) ends it.
    outcome.map_err(|e| {
        error!(error = %e, "store read failed");
        StoreError::Unavailable(e.to_string())
    })
}
