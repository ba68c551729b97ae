//! The up-front print of every drawn parameter.

use std::fmt;

use super::{ClientKind, ClientPolicy, SwarmParams, TransportPolicy};
use crate::net::{ClientIx, TransportKind};

/// Worlds up to this size list every client; larger ones print counts.
const LIST_CLIENTS_MAX: usize = 32;

/// A per-mille value as a percentage: `25` -> `2.5%`.
pub(crate) struct Permille(pub(crate) u32);

impl fmt::Display for Permille {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}%", self.0 / 10, self.0 % 10)
    }
}

impl fmt::Display for TransportPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportPolicy::AllStream => "all stream",
            TransportPolicy::AllDatagram => "all datagram",
            TransportPolicy::Mixed => "mixed",
        })
    }
}

impl fmt::Display for ClientPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientPolicy::AllMachine => "all machine",
            ClientPolicy::AllPlain => "all plain",
            ClientPolicy::Mixed => "mixed",
        })
    }
}

impl fmt::Display for SwarmParams {
    /// Six lines; every field appears.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fx = &self.faults;
        writeln!(
            f,
            "seed {} ({:#018x}): {} clients, {} users",
            self.seed, self.seed, self.clients, self.users
        )?;
        write!(f, "  clients:")?;
        if self.transports.len() > LIST_CLIENTS_MAX {
            // A big world gets counts, not a line of a thousand entries.
            let streams = self
                .transports
                .iter()
                .filter(|k| **k == TransportKind::Stream)
                .count();
            let datagrams = self.transports.len() - streams;
            let plain = self
                .kinds
                .iter()
                .filter(|k| **k == ClientKind::Plain)
                .count();
            writeln!(
                f,
                " {streams} stream, {datagrams} datagram (transports {}), {plain} plain (kinds {}); client i is user-(i mod {})",
                self.transport_policy, self.kind_policy, self.users
            )?;
        }
        for (i, kind) in self
            .transports
            .iter()
            .enumerate()
            .take_while(|_| self.transports.len() <= LIST_CLIENTS_MAX)
        {
            let c = ClientIx(u32::try_from(i).unwrap_or(u32::MAX));
            let k = match kind {
                TransportKind::Stream => "S",
                TransportKind::Datagram => "D",
            };
            let p = match self.kind_of(c) {
                ClientKind::Machine => "",
                ClientKind::Plain => "p",
            };
            write!(f, " {c}={}/{k}{p}", self.user_of(c))?;
        }
        if self.transports.len() <= LIST_CLIENTS_MAX {
            writeln!(
                f,
                " (transports {}: S stream, D datagram; kinds {}: p a plain socket.io app)",
                self.transport_policy, self.kind_policy
            )?;
        }
        write!(f, "  channels:")?;
        for ch in &self.channels {
            write!(f, " {ch}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  network: delay {}..={} ms; datagrams: loss {}, dup {}, reorder {} (+<={} ms); \
             streams: partitions {}, buffer {} frames",
            fx.delay_ms_min,
            fx.delay_ms_max,
            Permille(fx.loss_permille),
            Permille(fx.dup_permille),
            Permille(fx.reorder_permille),
            fx.reorder_ms_max,
            fx.stream_partition,
            fx.stream_buffer_frames_max,
        )?;
        write!(
            f,
            "  faults/min: drops {}, partitions {} (",
            fx.drops_per_min, fx.partitions_per_min
        )?;
        for (i, k) in fx.partition_kinds.iter().enumerate() {
            let sep = if i > 0 { " " } else { "" };
            write!(f, "{sep}{k}")?;
        }
        writeln!(
            f,
            "; <={} ms), holds {} (<={} ms), server crashes {} (<={} ms down), \
             store failures {} (<={} ms), store latency changes {} (<={} ms), app restarts {}",
            fx.partition_ms_max,
            fx.holds_per_min,
            fx.hold_ms_max,
            fx.crashes_per_min,
            fx.crash_ms_max,
            fx.store_fails_per_min,
            fx.store_fail_ms_max,
            fx.store_latency_changes_per_min,
            fx.store_latency_ms_max,
            fx.app_restarts_per_min,
        )?;
        let w = &self.weights;
        write!(
            f,
            "  workload: {} ops/s for {} ms; weights connect {} disconnect {} subscribe {} \
             unsubscribe {} send {} edit {} delete {} read {} typing {}",
            self.ops_per_sec,
            self.safety_ms,
            w.connect,
            w.disconnect,
            w.subscribe,
            w.unsubscribe,
            w.send,
            w.edit,
            w.delete,
            w.read,
            w.typing,
        )
    }
}
