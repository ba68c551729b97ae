//! The gate between the readers and a checkpoint that must reset the WAL.
//!
//! Readers that run back to back always hold a WAL read lock between them,
//! so a checkpoint that waits for them to let go (`RESTART`, `TRUNCATE`)
//! starves, and the WAL grows without bound under a steady read load. The
//! writer closes this gate before such a checkpoint: reads in flight finish
//! (each is one short transaction), new ones wait, the checkpoint runs with
//! no reader in the WAL, and the gate opens again.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    reading: usize,
}

/// A read in progress; ends when dropped.
pub(crate) struct Reading<'a>(&'a Gate);

/// The gate closed with no read in progress; opens when dropped.
pub(crate) struct Closed<'a>(&'a Gate);

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields updated in one step: a panic
        // elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while the gate is closed, then counts a read in.
    pub(crate) fn enter(&self) -> Reading<'_> {
        let mut state = self.lock();
        while state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.reading += 1;
        Reading(self)
    }

    /// Closes the gate and waits up to `wait` for the reads in progress to
    /// end; `None` (gate open again) if they did not.
    pub(crate) fn close(&self, wait: Duration) -> Option<Closed<'_>> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        state.closed = true;
        while state.reading > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.closed = false;
                drop(state);
                self.changed.notify_all();
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(Closed(self))
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.lock().reading -= 1;
        self.0.changed.notify_all();
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.lock().closed = false;
        self.0.changed.notify_all();
    }
}
