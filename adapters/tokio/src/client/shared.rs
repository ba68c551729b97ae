//! The state the handles and the driver share: the machine behind a mutex
//! (never held across an await), the outcome waiters and the wake-up.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use lockstep_core::Instant;
use lockstep_core::client::{Client, EntryId, Outcome};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::internals::Readings;
use super::stats::StatsRecorder;

/// The machine and what hangs off it.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) client: Client,
    /// Who awaits which outbox entry's outcome.
    pub(crate) waiters: BTreeMap<EntryId, oneshot::Sender<Outcome>>,
    /// The counters behind `ClientHandle::stats`.
    pub(crate) stats: StatsRecorder,
    /// The readings behind `ClientHandle::next_state_internals`, when
    /// recording.
    pub(crate) readings: Option<Readings>,
}

/// Shared by every handle and the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Wakes the driver after a command changed the machine.
    pub(crate) wake: Notify,
    /// Cancelled when the last handle is dropped or `close` is called: the
    /// driver closes the client and stops waiting on the app.
    pub(crate) stop: CancellationToken,
    /// The origin of the machine's timeline.
    pub(crate) start: tokio::time::Instant,
}

impl Shared {
    pub(crate) fn new(client: Client, record_internals: bool) -> Self {
        Shared {
            core: Mutex::new(Core {
                client,
                waiters: BTreeMap::new(),
                stats: StatsRecorder::default(),
                readings: record_internals.then(Readings::default),
            }),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            start: tokio::time::Instant::now(),
        }
    }

    /// Locks the machine. A panic while locked cannot leave the machine
    /// half-updated in a way we could repair, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the driver started, from tokio's clock (virtual
    /// under turmoil or a paused runtime).
    pub(crate) fn now(&self) -> Instant {
        let ms = self.start.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The tokio instant of a machine deadline.
    pub(crate) fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.start + std::time::Duration::from_millis(at.as_millis())
    }

    /// Runs a command on the machine, then wakes the driver to drain it.
    pub(crate) fn command<R>(&self, f: impl FnOnce(&mut Core, Instant) -> R) -> R {
        let result = {
            let mut core = self.lock();
            let now = self.now();
            f(&mut core, now)
        };
        self.wake.notify_one();
        result
    }
}
