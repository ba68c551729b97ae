//! One direction of one connection, and the connection that owns two of them.

use std::collections::VecDeque;

use super::{ConnId, TransportKind};

/// Whether a stream direction moves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LaneState {
    /// Frames are delivered as they come due.
    Flowing,
    /// A partition stops the frames; its repair resumes them in order.
    Parked,
    /// Half-open: nothing is ever delivered again on this direction.
    Stalled,
}

/// What a stream direction carries, in order.
#[derive(Debug)]
pub(crate) enum LaneItem<P> {
    /// The handshake, first on the client's direction.
    Opened,
    /// An application frame.
    Frame(P),
}

/// One direction of a connection.
///
/// Streams keep their frames here, FIFO with non-decreasing ready times, and
/// put a single wake-up for the head in the network's heap. Datagrams live in
/// the heap itself; the lane only counts them and detects reordering.
#[derive(Debug)]
pub(crate) struct Lane<P> {
    /// Stream items with their ready time in ms (empty for datagrams).
    pub(crate) queue: VecDeque<(u64, LaneItem<P>)>,
    /// Frames in flight on this direction (not counting the handshake).
    pub(crate) frames: u32,
    /// Ready time of the last stream item: the FIFO floor for the next one.
    pub(crate) last_ready_ms: u64,
    /// Stream only: flowing, held or stalled.
    pub(crate) state: LaneState,
    /// Stream only: a wake-up for the head is in the heap.
    pub(crate) armed: bool,
    /// Datagram only: how many were sent, to number them.
    pub(crate) sent: u64,
    /// Datagram only: highest send number delivered so far.
    pub(crate) delivered_max: Option<u64>,
}

impl<P> Lane<P> {
    fn new() -> Self {
        Lane {
            queue: VecDeque::new(),
            frames: 0,
            last_ready_ms: 0,
            state: LaneState::Flowing,
            armed: false,
            sent: 0,
            delivered_max: None,
        }
    }
}

/// A live connection.
#[derive(Debug)]
pub(crate) struct Conn<P> {
    pub(crate) id: ConnId,
    pub(crate) kind: TransportKind,
    /// The server has been handed `Delivery::Opened`.
    pub(crate) announced: bool,
    /// Indexed by `Dir::ix`.
    pub(crate) lanes: [Lane<P>; 2],
}

impl<P> Conn<P> {
    pub(crate) fn new(id: ConnId, kind: TransportKind) -> Self {
        Conn {
            id,
            kind,
            announced: false,
            lanes: [Lane::new(), Lane::new()],
        }
    }
}
