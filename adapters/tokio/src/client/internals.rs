//! The machine's leak-check readings at each connection-state change, for
//! harnesses that judge "no timer or request outlives its connection" on a
//! real driver (the turmoil harness of `lockstep-sim`). Off unless
//! [`ClientDriverConfig::record_internals`](super::ClientDriverConfig) is set.

use std::collections::VecDeque;

use lockstep_core::client::ConnectionState;

/// Readings kept until taken; past this, recording stops (a harness that
/// does not take them has no use for them).
pub const READINGS_MAX: usize = 4_096;

/// What the machine held when it reported a connection state, read in the
/// same step, so it is exact for that event (unlike a later look through
/// the handle, which may see a newer state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInternals {
    /// The state reported (the `ClientEvent::State` it belongs to).
    pub state: ConnectionState,
    /// Requests awaiting a reply then.
    pub pending_requests: usize,
    /// Timers armed then.
    pub armed_timers: usize,
}

/// More than [`READINGS_MAX`] readings went untaken and recording stopped:
/// the readings no longer pair with the state events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {READINGS_MAX} state readings went untaken; recording stopped")]
pub struct InternalsOverflowed;

/// The readings not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    queue: VecDeque<StateInternals>,
    overflowed: bool,
}

impl Readings {
    pub(crate) fn record(&mut self, reading: StateInternals) {
        if self.overflowed || self.queue.len() >= READINGS_MAX {
            self.overflowed = true;
            return;
        }
        self.queue.push_back(reading);
    }

    pub(crate) fn take(&mut self) -> Result<Option<StateInternals>, InternalsOverflowed> {
        if self.overflowed {
            return Err(InternalsOverflowed);
        }
        Ok(self.queue.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(pending_requests: usize) -> StateInternals {
        StateInternals {
            state: ConnectionState::Idle,
            pending_requests,
            armed_timers: 0,
        }
    }

    #[test]
    fn readings_come_out_in_order_and_stop_for_good_past_the_bound() {
        let mut r = Readings::default();
        r.record(reading(1));
        r.record(reading(2));
        assert_eq!(r.take(), Ok(Some(reading(1))));
        assert_eq!(r.take(), Ok(Some(reading(2))));
        assert_eq!(r.take(), Ok(None));
        for i in 0..=READINGS_MAX {
            r.record(reading(i));
        }
        // One too many: pairing with the state events is lost, and stays so.
        assert_eq!(r.take(), Err(InternalsOverflowed));
        r.record(reading(0));
        assert_eq!(r.take(), Err(InternalsOverflowed));
    }
}
