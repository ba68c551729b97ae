//! A turmoil scenario as data: a few clients, and a list of timed steps
//! (app commands and network faults). Every step is applicable at any time
//! (repairing a link that is not partitioned does nothing), so a shrinker
//! may delete any of them and keep a valid plan.

use std::fmt;
use std::time::Duration;

use lockstep_core::ids::ChannelId;
use lockstep_sim::fault::Fault;

/// Most clients a plan may have: each is a turmoil host, and a small world
/// stays faster than real time in a debug build.
pub const CLIENTS_MAX: u8 = 3;

/// The channels of the turmoil world, by index (both public).
pub const CHANNELS: [&str; 2] = ["general", "random"];

/// The channel of index `i` (modulo the channel count).
#[must_use]
pub fn channel(i: u8) -> ChannelId {
    let name = CHANNELS[usize::from(i) % CHANNELS.len()];
    // The names above are valid channel ids; a failure here is a typo in
    // this file, caught by every test.
    ChannelId::new(name).unwrap_or_else(|_| unreachable!("invalid channel name {name}"))
}

/// One thing that happens, to client `client` (taken modulo the plan's
/// client count) unless it says otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    /// The app wants channel `channel` subscribed.
    Subscribe {
        /// Who.
        client: u8,
        /// Which channel (index into [`CHANNELS`]).
        channel: u8,
    },
    /// The app gives channel `channel` up.
    Unsubscribe {
        /// Who.
        client: u8,
        /// Which channel.
        channel: u8,
    },
    /// The app sends `count` short text messages at once (they pipeline
    /// through the send window).
    Send {
        /// Who.
        client: u8,
        /// Where.
        channel: u8,
        /// How many, one after the other.
        count: u8,
    },
    /// Every TCP segment between the client and the server is dropped, both
    /// ways: the stream goes half-open and only heartbeats can tell.
    Partition {
        /// Whose link.
        client: u8,
    },
    /// Ends a partition; the old stream stays dead (its lost segments are
    /// never retransmitted), so the client must have moved on.
    Repair {
        /// Whose link.
        client: u8,
    },
    /// Segments are queued, not lost: a stall that releases in order.
    Hold {
        /// Whose link.
        client: u8,
    },
    /// Delivers what a hold queued.
    Release {
        /// Whose link.
        client: u8,
    },
    /// Fixes the link's one-way latency (a slow link reorders nothing on a
    /// stream, but it stretches every round trip toward the timeouts).
    Latency {
        /// Whose link.
        client: u8,
        /// One-way latency in milliseconds.
        ms: u16,
    },
    /// The server host crashes and restarts at once (turmoil's bounce): its
    /// memory and every connection are lost, the store is kept.
    Bounce,
}

impl Action {
    /// The fault this step injects or repairs (the lab's vocabulary),
    /// `None` for an app command.
    #[must_use]
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Action::Subscribe { .. } | Action::Unsubscribe { .. } | Action::Send { .. } => None,
            Action::Partition { .. } => Some(Fault::Partition),
            Action::Repair { .. } => Some(Fault::Repair),
            Action::Hold { .. } => Some(Fault::Hold),
            Action::Release { .. } => Some(Fault::Release),
            Action::Latency { .. } => Some(Fault::Latency),
            Action::Bounce => Some(Fault::Bounce),
        }
    }
}

/// One step: wait `after_ms` of virtual time, then do `action`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Step {
    /// Virtual milliseconds since the previous step.
    pub after_ms: u16,
    /// What happens.
    pub action: Action,
}

impl Step {
    /// The wait before the step.
    #[must_use]
    pub fn after(&self) -> Duration {
        Duration::from_millis(u64::from(self.after_ms))
    }
}

/// A whole turmoil scenario: the seed of turmoil's own randomness (latency
/// draws) and of the clients, the number of clients, and the steps. Every
/// client starts connected and subscribed to `general`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plan {
    /// Seeds turmoil's RNG and each client machine's.
    pub seed: u64,
    /// How many clients (1..=[`CLIENTS_MAX`]).
    pub clients: u8,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan's client count, clamped to 1..=[`CLIENTS_MAX`].
    #[must_use]
    pub fn client_count(&self) -> u8 {
        self.clients.clamp(1, CLIENTS_MAX)
    }

    /// The index of `client` in this plan.
    #[must_use]
    pub fn client(&self, client: u8) -> u8 {
        client % self.client_count()
    }

    /// How long the steps take, in virtual time.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(Step::after).sum()
    }
}

/// The host name of client `ix`.
#[must_use]
pub fn host_name(ix: u8) -> String {
    format!("c{ix}")
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan: seed {} · {} clients · {} steps",
            self.seed,
            self.client_count(),
            self.steps.len()
        )?;
        let mut at = Duration::ZERO;
        for step in &self.steps {
            at += step.after();
            write!(f, "  {:>7.3}s  ", at.as_secs_f64())?;
            let c = |client: u8| host_name(self.client(client));
            match step.action {
                Action::Subscribe {
                    client,
                    channel: ch,
                } => {
                    writeln!(f, "{} subscribe {}", c(client), channel(ch))
                }
                Action::Unsubscribe {
                    client,
                    channel: ch,
                } => {
                    writeln!(f, "{} unsubscribe {}", c(client), channel(ch))
                }
                Action::Send {
                    client,
                    channel: ch,
                    count,
                } => writeln!(f, "{} send {count} to {}", c(client), channel(ch)),
                Action::Partition { client }
                | Action::Repair { client }
                | Action::Hold { client }
                | Action::Release { client } => {
                    writeln!(
                        f,
                        "{} {} | server",
                        step.action.fault().map_or("", Fault::verb),
                        c(client)
                    )
                }
                Action::Latency { client, ms } => {
                    writeln!(f, "{} {} | server {ms} ms", Fault::Latency, c(client))
                }
                Action::Bounce => writeln!(f, "{} the server (store kept)", Fault::Bounce),
            }?;
        }
        Ok(())
    }
}
