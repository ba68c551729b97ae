//! The client driver's settings.

use lockstep_core::client::ClientConfig;
use tokio_util::task::TaskTracker;

/// Everything the client driver needs besides its transport.
#[derive(Debug, Clone)]
pub struct ClientDriverConfig {
    /// The state machine's tunables (timeouts, backoff, heartbeat, ...).
    /// Stream transports have no liveness check of their own: set
    /// `heartbeat` so a half-open connection is noticed.
    pub client: ClientConfig,
    /// Credentials sent in every `hello`.
    pub token: String,
    /// Seed of backoff jitter and of the client-instance part of message
    /// ids. Give every client instance its own (e.g. from the OS RNG).
    pub seed: u64,
    /// App events buffered before the driver waits for the app to read
    /// ([`Events`](crate::client::Events)): backpressure, never a drop.
    pub events_capacity: usize,
    /// Frames queued for one transport; a transport that falls this far
    /// behind is closed and replaced, never silently skipped.
    pub outgoing_capacity: usize,
    /// Transport events queued for the driver.
    pub incoming_capacity: usize,
    /// Where the driver and its transport tasks are spawned; tests pass
    /// their own to check that every task ends.
    pub tracker: TaskTracker,
    /// For test harnesses: read the machine's pending requests and armed
    /// timers at every connection-state event, for
    /// [`ClientHandle::next_state_internals`](crate::client::ClientHandle::next_state_internals).
    /// Off by default (it costs a queue entry per state change).
    pub record_internals: bool,
}

impl ClientDriverConfig {
    /// Defaults with the given credentials and seed.
    #[must_use]
    pub fn new(token: impl Into<String>, seed: u64) -> Self {
        ClientDriverConfig {
            client: ClientConfig::default(),
            token: token.into(),
            seed,
            events_capacity: 4_096,
            outgoing_capacity: 1_024,
            incoming_capacity: 1_024,
            tracker: TaskTracker::new(),
            record_internals: false,
        }
    }
}
