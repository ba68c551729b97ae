//! What the oracle may ask of a client besides its events: the lab hands it
//! the core machine itself; a harness around a real driver hands it what
//! the driver's handle can show.

use lockstep_core::client::{ChannelView, Client, ConnectionState};
use lockstep_core::ids::ChannelId;

/// The machine internals invariant 8 needs, read at the moment the event
/// being checked was produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Internals {
    /// The connection state.
    pub state: ConnectionState,
    /// Requests waiting for a reply.
    pub pending_requests: usize,
    /// Timers armed.
    pub armed_timers: usize,
}

/// A client as the oracle sees it while checking one of its events.
///
/// The lab checks each event right after the machine produced it, so the
/// machine is an exact view. A real driver hands events over a queue: by
/// the time one is checked, the machine may have moved on, so such a view
/// answers [`ClientView::internals`] with `None` and the checks that need
/// them are skipped rather than judged on a later state.
pub trait ClientView {
    /// A summary of one channel, `None` when the client has forgotten it
    /// (or, for a view that lags, may have forgotten it since).
    fn channel(&self, channel: &ChannelId) -> Option<ChannelView>;

    /// The internals as of the event being checked, when they can be known.
    fn internals(&self) -> Option<Internals>;
}

impl ClientView for Client {
    fn channel(&self, channel: &ChannelId) -> Option<ChannelView> {
        Client::channel(self, channel)
    }

    fn internals(&self) -> Option<Internals> {
        Some(Internals {
            state: self.state().clone(),
            pending_requests: self.pending_requests(),
            armed_timers: self.armed_timers(),
        })
    }
}
