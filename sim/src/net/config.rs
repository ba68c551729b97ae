//! The knobs of the virtual network, checked once at construction.

use std::fmt;

/// What a partition does to a stream connection's frames.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum StreamPartition {
    /// Frames wait at the cut and are delivered, in order, after the
    /// repair: TCP retransmission across a short outage.
    Resume,
    /// The cut direction stalls for good, the connection stays "open" and
    /// nobody is told: a half-open socket (turmoil's behaviour). Only the
    /// client's heartbeat, or the buffer filling up, ends it.
    Stall,
}

impl fmt::Display for StreamPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamPartition::Resume => "resume",
            StreamPartition::Stall => "stall",
        })
    }
}

/// The most clients a network serves; a limit on every table.
pub const CLIENTS_MAX: usize = 4096;

/// Probabilities are in per-mille (0..=1000): exact integers, no float drift.
pub const PERMILLE: u32 = 1000;

/// Configuration of a [`Network`](super::Network).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetConfig {
    /// One transport per client; its length is the number of clients.
    pub transports: Vec<super::TransportKind>,
    /// Shortest one-way delay. Latency provokes acks racing broadcasts and
    /// timeouts racing replies.
    pub delay_ms_min: u64,
    /// Longest one-way delay; the spread is jitter. On streams jitter never
    /// reorders (FIFO is kept), on datagrams it reorders.
    pub delay_ms_max: u64,
    /// Datagram loss chance, per mille. Provokes retries and gap recovery.
    pub loss_permille: u32,
    /// Datagram duplication chance, per mille. Provokes dedupe of retried
    /// sends and of duplicate events.
    pub dup_permille: u32,
    /// Chance, per mille, that a datagram gets an extra delay on top of its
    /// jitter, so it overtakes or is overtaken by many others. Provokes
    /// out-of-order buffering in the inbox.
    pub reorder_permille: u32,
    /// Largest extra delay of a reordered datagram.
    pub reorder_ms_max: u64,
    /// Frames in flight per stream direction before the connection is cut
    /// with [`CloseReason::Overflow`](super::CloseReason::Overflow). Provokes
    /// slow-consumer handling (socketioxide's bounded buffer).
    pub stream_buffer_frames_max: u32,
    /// Datagrams in flight per direction before new ones are dropped.
    pub datagram_buffer_frames_max: u32,
    /// What partitions do to streams.
    pub stream_partition: StreamPartition,
}

impl NetConfig {
    /// A calm network of `clients` stream clients: 1..=20 ms, no faults, a
    /// 256-frame buffer.
    #[must_use]
    pub fn calm(clients: usize, kind: super::TransportKind) -> Self {
        NetConfig {
            transports: vec![kind; clients],
            delay_ms_min: 1,
            delay_ms_max: 20,
            loss_permille: 0,
            dup_permille: 0,
            reorder_permille: 0,
            reorder_ms_max: 0,
            stream_buffer_frames_max: 256,
            datagram_buffer_frames_max: 1024,
            stream_partition: StreamPartition::Resume,
        }
    }

    /// Checks every knob against its limit.
    pub fn validate(&self) -> Result<(), NetConfigError> {
        if self.transports.len() > CLIENTS_MAX {
            return Err(NetConfigError::TooManyClients {
                clients: self.transports.len(),
                max: CLIENTS_MAX,
            });
        }
        if self.delay_ms_min > self.delay_ms_max {
            return Err(NetConfigError::DelayRange {
                min: self.delay_ms_min,
                max: self.delay_ms_max,
            });
        }
        for (name, value) in [
            ("loss", self.loss_permille),
            ("dup", self.dup_permille),
            ("reorder", self.reorder_permille),
        ] {
            if value > PERMILLE {
                return Err(NetConfigError::Probability { name, value });
            }
        }
        if self.stream_buffer_frames_max == 0 || self.datagram_buffer_frames_max == 0 {
            return Err(NetConfigError::ZeroBuffer);
        }
        Ok(())
    }
}

/// Why a [`NetConfig`] was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetConfigError {
    /// More clients than [`CLIENTS_MAX`].
    #[error("{clients} clients exceed the limit of {max}")]
    TooManyClients {
        /// Clients asked for.
        clients: usize,
        /// The limit.
        max: usize,
    },
    /// `delay_ms_min` is above `delay_ms_max`.
    #[error("delay range {min}..={max} ms is empty")]
    DelayRange {
        /// The configured minimum.
        min: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A per-mille probability is above 1000.
    #[error("{name} probability {value} is above 1000 per mille")]
    Probability {
        /// Which knob.
        name: &'static str,
        /// Its value.
        value: u32,
    },
    /// A buffer limit is zero, which would refuse every frame.
    #[error("buffer limits must be at least one frame")]
    ZeroBuffer,
}
