//! A failed run: what failed, with everything needed to find and replay it.

use std::fmt;

use lockstep_core::Instant;
use lockstep_core::ids::ChannelId;

use crate::net::ClientIx;
use crate::oracle::Invariant;

/// What failed. A broken invariant is one of the promises; the other kinds
/// say that the run itself could not be judged to the end, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An invariant broke at a step.
    Broken(Invariant),
    /// The healed world did not settle within the time this run allowed;
    /// `invariant` is the one that would break if it never does.
    NotConverged {
        /// The invariant at stake.
        invariant: Invariant,
        /// The virtual time this run allowed after healing, in ms (a base
        /// plus an allowance per message still unsent at the heal).
        allowed_ms: u64,
    },
    /// The world processed more events than a run may without reaching the
    /// next op: a timer or message loop that never settles.
    Livelock {
        /// The bound that was passed.
        events_max: u64,
    },
    /// A frame did not survive its wire encoding (serialize, then parse):
    /// what the lab proves would not be what travels.
    CodecRoundTrip,
}

impl Failure {
    /// The invariant concerned, if the failure is about one.
    #[must_use]
    pub fn invariant(self) -> Option<Invariant> {
        match self {
            Failure::Broken(i) | Failure::NotConverged { invariant: i, .. } => Some(i),
            Failure::Livelock { .. } | Failure::CodecRoundTrip => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Broken(i) => write!(f, "violation of {i}"),
            Failure::NotConverged {
                invariant,
                allowed_ms,
            } => write!(
                f,
                "not converged {} after healing ({invariant} at stake)",
                Instant::from_millis(*allowed_ms)
            ),
            Failure::Livelock { events_max } => {
                write!(
                    f,
                    "livelock: more than {events_max} events without settling"
                )
            }
            Failure::CodecRoundTrip => f.write_str("codec round trip failed"),
        }
    }
}

/// One failure at one moment, for one client and channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What failed.
    pub failure: Failure,
    /// Virtual time of the step that failed.
    pub at: Instant,
    /// The client concerned, if one is.
    pub client: Option<ClientIx>,
    /// The channel concerned, if one is.
    pub channel: Option<ChannelId>,
    /// What exactly was seen (message ids, seqs, states).
    pub detail: String,
}

impl Violation {
    /// The invariant concerned, if the failure is about one.
    #[must_use]
    pub fn invariant(&self) -> Option<Invariant> {
        self.failure.invariant()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.failure, self.at)?;
        if let Some(c) = self.client {
            write!(f, " · {c}")?;
        }
        if let Some(ch) = &self.channel {
            write!(f, " · {ch}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
