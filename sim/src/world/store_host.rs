//! The store as the world runs it: a `MemStore` behind a queue of
//! completions, with injected latency, jitter and failure windows.
//!
//! A command executes when its completion falls due, not when it is issued,
//! so a slow store really is slow: a send's retry can race its own commit.
//! A process's appends of one channel execute in the order issued (a real
//! store takes them from one queue), each process keeping its own append
//! chains; completions come back after a further delay of their own, so
//! the server sees them out of order.

use std::collections::BTreeMap;

use lockstep_core::ids::ChannelId;
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
}

/// Where a command is.
#[derive(Debug)]
enum Stage {
    /// Waiting to execute (the command is handed to the store then).
    Execute(InFlight, StoreCommand),
    /// Executed; its completion is on its way back.
    Deliver(InFlight, Result<StoreReply, StoreError>),
}

/// The store, its fault knobs and its pending completions.
#[derive(Debug)]
pub(crate) struct StoreHost {
    pub(crate) store: MemStore,
    queue: EventQueue<Stage>,
    /// When each process's latest append of a channel executes: a later
    /// one executes no earlier.
    appends_at: BTreeMap<(usize, ChannelId), Instant>,
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
            appends_at: BTreeMap::new(),
            rng,
            latency_ms: 0,
            fail_until: Instant::ZERO,
        }
    }

    /// Queues a command; it executes after the latency plus up to half of
    /// it again as jitter (so commands can execute out of order, but a
    /// process's appends of one channel do not).
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        node: usize,
        incarnation: u64,
        op: StoreOpId,
        cmd: StoreCommand,
    ) {
        let jitter = self.rng.below(self.latency_ms / 2 + 1);
        let mut at = Instant::from_millis(now.as_millis() + self.latency_ms + jitter);
        if let StoreCommand::Append { channel, .. } = &cmd {
            self.appends_at.retain(|_, last| *last > now);
            let last = self.appends_at.entry((node, channel.clone())).or_insert(at);
            at = at.max(*last);
            *last = at;
        }
        self.queue.push(
            at,
            Stage::Execute(
                InFlight {
                    incarnation,
                    node,
                    op,
                },
                cmd,
            ),
        );
    }

    /// When the next command executes or completion comes back.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.queue.peek_time()
    }

    /// The next completion due at `now`, executing (or failing) the
    /// commands due on the way.
    pub(crate) fn complete_due(
        &mut self,
        now: Instant,
    ) -> Option<(InFlight, Result<StoreReply, StoreError>)> {
        loop {
            let (_, stage) = self.queue.pop_due(now)?;
            let (inflight, cmd) = match stage {
                Stage::Deliver(inflight, result) => return Some((inflight, result)),
                Stage::Execute(inflight, cmd) => (inflight, cmd),
            };
            let result = if now < self.fail_until {
                Err(self
                    .store
                    .fail_for(inflight.node, &cmd, "injected store failure"))
            } else {
                self.store.execute_for(inflight.node, cmd)
            };
            let back = self.rng.below(self.latency_ms / 4 + 1);
            if back == 0 {
                return Some((inflight, result));
            }
            let at = Instant::from_millis(now.as_millis() + back);
            self.queue.push(at, Stage::Deliver(inflight, result));
        }
    }

    /// Commands not completed yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
