//! A broken invariant, with everything needed to find and replay it.

use std::fmt;

use lockstep_core::Instant;
use lockstep_core::ids::ChannelId;

use crate::net::ClientIx;
use crate::oracle::Invariant;

/// One invariant broken at one moment, for one client and channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which promise broke.
    pub invariant: Invariant,
    /// Virtual time of the step that broke it.
    pub at: Instant,
    /// The client concerned, if one is.
    pub client: Option<ClientIx>,
    /// The channel concerned, if one is.
    pub channel: Option<ChannelId>,
    /// What exactly was seen (message ids, seqs, states).
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "violation of {} at {}", self.invariant, self.at)?;
        if let Some(c) = self.client {
            write!(f, " · {c}")?;
        }
        if let Some(ch) = &self.channel {
            write!(f, " · {ch}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
