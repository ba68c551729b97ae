//! The store as the world runs it: a `MemStore` behind a queue of
//! completions, with injected latency, jitter and failure windows.
//!
//! A command executes when its completion falls due, not when it is issued,
//! so a slow store really is slow: a send's retry can race its own commit.

use lockstep_core::store::{MemStore, StoreCommand, StoreError, StoreOpId, StoreReply};
use lockstep_core::{Instant, Rng};

use crate::queue::EventQueue;

/// A command waiting for its completion time.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The server incarnation that issued it: completions for a crashed
    /// server still take effect in the store but are not handed back.
    pub(crate) incarnation: u64,
    /// The server process that issued it.
    pub(crate) node: usize,
    pub(crate) op: StoreOpId,
    pub(crate) cmd: StoreCommand,
}

/// The store, its fault knobs and its pending completions.
#[derive(Debug)]
pub(crate) struct StoreHost {
    pub(crate) store: MemStore,
    queue: EventQueue<InFlight>,
    rng: Rng,
    /// Base completion latency in virtual ms.
    pub(crate) latency_ms: u64,
    /// Commands completing before this time fail with `unavailable`.
    pub(crate) fail_until: Instant,
}

impl StoreHost {
    pub(crate) fn new(store: MemStore, rng: Rng) -> Self {
        StoreHost {
            store,
            queue: EventQueue::new(),
            rng,
            latency_ms: 0,
            fail_until: Instant::ZERO,
        }
    }

    /// Queues a command; it completes after the latency plus up to half of
    /// it again as jitter (so completions can come back out of order).
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        node: usize,
        incarnation: u64,
        op: StoreOpId,
        cmd: StoreCommand,
    ) {
        let jitter = self.rng.below(self.latency_ms / 2 + 1);
        let at = Instant::from_millis(now.as_millis() + self.latency_ms + jitter);
        self.queue.push(
            at,
            InFlight {
                incarnation,
                node,
                op,
                cmd,
            },
        );
    }

    /// When the next completion is due.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.queue.peek_time()
    }

    /// The next completion due at `now`, executed (or failed) now.
    pub(crate) fn complete_due(
        &mut self,
        now: Instant,
    ) -> Option<(InFlight, Result<StoreReply, StoreError>)> {
        let (_, inflight) = self.queue.pop_due(now)?;
        let result = if now < self.fail_until {
            Err(StoreError::Unavailable("injected store failure".into()))
        } else {
            self.store.execute(inflight.cmd.clone())
        };
        Some((inflight, result))
    }

    /// Commands not completed yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
