//! The vocabulary of a scenario: workload operations and fault injections.
//!
//! An op names what happens, not how: the world turns `Send` into a client
//! command and `Partition` into a network verb. Every op is applicable at any
//! time; one that makes no sense in the current state (editing when there is
//! nothing to edit, healing with no partition, restarting a running server)
//! is a no-op. That is what lets a shrinker delete any op and keep a valid
//! scenario.

use std::fmt;

use lockstep_core::ids::ChannelId;

use crate::fault::Fault;
use crate::net::{ClientIx, PartitionKind};
use crate::trace;

/// One step of a scenario.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// The app asks its client to connect.
    Connect {
        /// Who.
        client: ClientIx,
    },
    /// The app asks its client to disconnect (a user-initiated close).
    Disconnect {
        /// Who.
        client: ClientIx,
    },
    /// The app wants to be subscribed to a channel.
    Subscribe {
        /// Who.
        client: ClientIx,
        /// Which channel.
        channel: ChannelId,
    },
    /// The app no longer wants a channel.
    Unsubscribe {
        /// Who.
        client: ClientIx,
        /// Which channel.
        channel: ChannelId,
    },
    /// The app sends a message with a body of `body_len` bytes (bodies over
    /// the 64 KiB limit provoke `too_large`).
    Send {
        /// Who.
        client: ClientIx,
        /// Where.
        channel: ChannelId,
        /// Serialized body length in bytes.
        body_len: u32,
    },
    /// The app edits one of its own earlier messages in the channel: the
    /// `pick`-th modulo how many it has (none: no-op).
    Edit {
        /// Who.
        client: ClientIx,
        /// Where.
        channel: ChannelId,
        /// Which earlier message, modulo the count.
        pick: u32,
    },
    /// The app deletes one of its own earlier messages, chosen like `Edit`.
    Delete {
        /// Who.
        client: ClientIx,
        /// Where.
        channel: ChannelId,
        /// Which earlier message, modulo the count.
        pick: u32,
    },
    /// The app marks the channel read up to what it has seen.
    Read {
        /// Who.
        client: ClientIx,
        /// Where.
        channel: ChannelId,
    },
    /// The app reports the user typing, or stopping.
    Typing {
        /// Who.
        client: ClientIx,
        /// Where.
        channel: ChannelId,
        /// Typing or stopped.
        active: bool,
    },
    /// Fault: the network cuts the client's connection. Provokes reconnect,
    /// re-join with recovery, outbox resend and dedupe.
    DropConnection {
        /// Whose connection.
        client: ClientIx,
    },
    /// Fault: cut these clients off from the server. Provokes timeouts,
    /// half-open detection, lost acks and late bursts after the heal.
    Partition {
        /// Who is cut off (sorted, not empty).
        clients: Vec<ClientIx>,
        /// Which directions.
        kind: PartitionKind,
    },
    /// Fault repair: every partition ends.
    Repair,
    /// Fault: the client's link is held (delivers nothing) for a while,
    /// then released (everything at once); nothing is lost. Provokes
    /// timeouts racing slow but successful replies (spurious retries, stale
    /// replies).
    Hold {
        /// Whose link.
        client: ClientIx,
        /// How long until the release, in virtual ms.
        duration_ms: u64,
    },
    /// Fault: the server process dies; its memory is lost, the store kept.
    /// Provokes recovery from the store, dedupe across restarts, presence
    /// rebuilt.
    Crash,
    /// The server starts again: a crashed one comes back, a running one is
    /// crashed and restarted at once (turmoil's bounce).
    Bounce,
    /// Fault: every store operation fails for a while. Provokes `unavailable`
    /// errors and client retries; nothing unacknowledged may be lost.
    StoreFail {
        /// How long the store refuses, in virtual ms.
        duration_ms: u64,
    },
    /// Fault: the store answers after `ms` from now on. Provokes timeouts
    /// racing commits (a retry of a committed send).
    StoreLatency {
        /// Commit latency in virtual ms (0: immediate).
        ms: u64,
    },
    /// Fault: the client's machine is rebuilt from scratch, its outbox
    /// restored from the saved export. Provokes resends with the saved ids.
    AppRestart {
        /// Who.
        client: ClientIx,
    },
    /// Fault, with several server processes: process `server` dies (memory
    /// lost, connections closed, its presence claims left to be reaped).
    /// Provokes failover: its clients reconnect to another process.
    ProcessCrash {
        /// Which process (no such process: no-op).
        server: u8,
    },
    /// Process `server` starts again (a running one: no-op).
    ProcessRestart {
        /// Which process.
        server: u8,
    },
    /// Fault, with several server processes: process `server`'s connection
    /// to the presence arbiter stalls (its heartbeats and commands wait);
    /// past the lease another process reaps its claims. Provokes adoption
    /// and a lease found lost.
    ArbiterStall {
        /// Which process.
        server: u8,
        /// How long the stall lasts, in virtual ms.
        duration_ms: u64,
    },
    /// Fault, with several server processes: process `server`'s hint
    /// listener disconnects; hints and relays for it are lost until it
    /// reconnects, which asks for a resync. Provokes lost hints.
    ListenerDrop {
        /// Which process.
        server: u8,
        /// How long until the listener reconnects, in virtual ms.
        duration_ms: u64,
    },
}

impl Op {
    /// The fault this op injects or repairs, `None` for workload.
    #[must_use]
    pub fn fault(&self) -> Option<Fault> {
        Some(match self {
            Op::DropConnection { .. } => Fault::Drop,
            Op::Partition { .. } => Fault::Partition,
            Op::Repair => Fault::Repair,
            Op::Hold { .. } => Fault::Hold,
            Op::Crash => Fault::Crash,
            Op::Bounce => Fault::Bounce,
            Op::StoreFail { .. } => Fault::StoreFail,
            Op::StoreLatency { .. } => Fault::StoreLatency,
            Op::AppRestart { .. } => Fault::AppRestart,
            Op::ProcessCrash { .. } => Fault::ProcessCrash,
            Op::ProcessRestart { .. } => Fault::ProcessRestart,
            Op::ListenerDrop { .. } => Fault::ListenerDrop,
            Op::ArbiterStall { .. } => Fault::ArbiterStall,
            Op::Connect { .. }
            | Op::Disconnect { .. }
            | Op::Subscribe { .. }
            | Op::Unsubscribe { .. }
            | Op::Send { .. }
            | Op::Edit { .. }
            | Op::Delete { .. }
            | Op::Read { .. }
            | Op::Typing { .. } => return None,
        })
    }

    /// True for fault injections and repairs, false for workload.
    #[must_use]
    pub fn is_fault(&self) -> bool {
        self.fault().is_some()
    }

    /// The single client the op acts for, if it names one.
    #[must_use]
    pub fn client(&self) -> Option<ClientIx> {
        match self {
            Op::Connect { client }
            | Op::Disconnect { client }
            | Op::Subscribe { client, .. }
            | Op::Unsubscribe { client, .. }
            | Op::Send { client, .. }
            | Op::Edit { client, .. }
            | Op::Delete { client, .. }
            | Op::Read { client, .. }
            | Op::Typing { client, .. }
            | Op::DropConnection { client }
            | Op::Hold { client, .. }
            | Op::AppRestart { client } => Some(*client),
            Op::Partition { .. }
            | Op::Repair
            | Op::Crash
            | Op::Bounce
            | Op::StoreFail { .. }
            | Op::StoreLatency { .. }
            | Op::ProcessCrash { .. }
            | Op::ProcessRestart { .. }
            | Op::ListenerDrop { .. }
            | Op::ArbiterStall { .. } => None,
        }
    }

    /// The channel the op acts on, if any.
    #[must_use]
    pub fn channel(&self) -> Option<&ChannelId> {
        match self {
            Op::Subscribe { channel, .. }
            | Op::Unsubscribe { channel, .. }
            | Op::Send { channel, .. }
            | Op::Edit { channel, .. }
            | Op::Delete { channel, .. }
            | Op::Read { channel, .. }
            | Op::Typing { channel, .. } => Some(channel),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    /// One line: `c2 send room-1 (120 B)`, `FAULT partition [c0 c3] symmetric`.
    ///
    /// The app ops (nearly every op) are written piece by piece, not
    /// through `write!`: the world hashes every op's text, and the
    /// formatting machinery was most of that cost.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = |f: &mut fmt::Formatter<'_>, client: &ClientIx, verb: &str| {
            client.fmt(f)?;
            f.write_str(verb)
        };
        let channel = |f: &mut fmt::Formatter<'_>, client, verb, channel: &ChannelId| {
            app(f, client, verb)?;
            f.write_str(channel.as_str())
        };
        match self {
            Op::Connect { client } => app(f, client, " connect"),
            Op::Disconnect { client } => app(f, client, " disconnect"),
            Op::Subscribe {
                client,
                channel: ch,
            } => channel(f, client, " subscribe ", ch),
            Op::Unsubscribe {
                client,
                channel: ch,
            } => channel(f, client, " unsubscribe ", ch),
            Op::Send {
                client,
                channel: ch,
                body_len,
            } => {
                channel(f, client, " send ", ch)?;
                f.write_str(" (")?;
                trace::write_decimal(f, u64::from(*body_len))?;
                f.write_str(" B)")
            }
            Op::Edit {
                client,
                channel: ch,
                pick,
            }
            | Op::Delete {
                client,
                channel: ch,
                pick,
            } => {
                let verb = if matches!(self, Op::Edit { .. }) {
                    " edit "
                } else {
                    " delete "
                };
                channel(f, client, verb, ch)?;
                f.write_str(" pick ")?;
                trace::write_decimal(f, u64::from(*pick))
            }
            Op::Read {
                client,
                channel: ch,
            } => channel(f, client, " read ", ch),
            Op::Typing {
                client,
                channel: ch,
                active,
            } => {
                channel(f, client, " typing ", ch)?;
                f.write_str(if *active { " on" } else { " off" })
            }
            Op::DropConnection { client } => {
                write!(f, "FAULT {} {client}'s connection", Fault::Drop)
            }
            Op::Partition { clients, kind } => {
                write!(f, "FAULT {} [", Fault::Partition)?;
                for (i, c) in clients.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{c}")?;
                }
                write!(f, "] {kind}")
            }
            Op::Repair => write!(f, "FAULT {} every partition", Fault::Repair),
            Op::Hold {
                client,
                duration_ms,
            } => write!(
                f,
                "FAULT {} {client} | server, {} after {duration_ms} ms",
                Fault::Hold,
                Fault::Release
            ),
            Op::Crash => write!(
                f,
                "FAULT {} the server (memory lost, store kept)",
                Fault::Crash
            ),
            Op::Bounce => write!(f, "FAULT {} the server", Fault::Bounce),
            Op::StoreFail { duration_ms } => {
                write!(f, "FAULT {} for {duration_ms} ms", Fault::StoreFail)
            }
            Op::StoreLatency { ms } => write!(f, "FAULT {} {ms} ms", Fault::StoreLatency),
            Op::AppRestart { client } => {
                write!(
                    f,
                    "FAULT {} {client} (unsent messages restored)",
                    Fault::AppRestart
                )
            }
            Op::ProcessCrash { server } => write!(
                f,
                "FAULT {} s{server} (memory lost, store kept)",
                Fault::ProcessCrash
            ),
            Op::ProcessRestart { server } => {
                write!(f, "FAULT {} s{server}", Fault::ProcessRestart)
            }
            Op::ListenerDrop {
                server,
                duration_ms,
            } => write!(
                f,
                "FAULT {} s{server} for {duration_ms} ms",
                Fault::ListenerDrop
            ),
            Op::ArbiterStall {
                server,
                duration_ms,
            } => write!(
                f,
                "FAULT {} s{server} for {duration_ms} ms",
                Fault::ArbiterStall
            ),
        }
    }
}
