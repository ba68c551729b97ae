//! A sans-IO virtual network, in the manner of TigerBeetle's VOPR packet
//! simulator: frames are values queued by ready time, faults are verbs.
//!
//! Endpoints are one server and clients `0..n`; each client has at most one
//! open connection. Each client chooses a [`TransportKind`]:
//! - [`TransportKind::Stream`]: FIFO per direction even under jitter, no loss
//!   and no duplication; frames in flight die with the connection; a bounded
//!   buffer per direction whose overflow closes the connection with a reason;
//!   partitions stop frames until the repair, or stall the direction for
//!   good (half-open), per [`StreamPartition`].
//! - [`TransportKind::Datagram`]: independent delay per frame (so
//!   reordering), loss, duplication; partitions drop.
//!
//! Fault verbs on [`Network`] (the vocabulary of [`crate::fault`]):
//! `drop_connection`, `partition` / `repair` / `repair_all`, `hold` (with its
//! release: a slow link that loses nothing), plus the per-config delay,
//! jitter, loss, duplication and reordering.
//!
//! The network is generic over the payload `P`, so the lab can pass frames as
//! values or as encoded bytes.

mod config;
mod lane;
mod network;
mod stats;
mod types;

#[cfg(test)]
mod tests;

pub use config::{CLIENTS_MAX, NetConfig, NetConfigError, PERMILLE, StreamPartition};
pub use network::{NetError, Network};
pub use stats::NetStats;
pub use types::{
    ClientIx, CloseReason, ConnId, Delivery, Dir, Endpoint, LossCause, PartitionKind, SendOutcome,
    TransportKind,
};
