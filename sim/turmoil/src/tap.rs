//! A tap on each client connection: the join and leave frames the client
//! writes and the frames it receives, in order, numbered by connection, so
//! the oracle can judge invariant 7 (only joined channels are received)
//! under the real drivers as it does in the lab.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use lockstep_core::wire::{Ack, ClientFrame, ServerFrame};
use lockstep_tokio::transport::{Connection, TransportError};

/// Most frames a tap holds between two drains (a step of the simulation);
/// past it the oldest are judged lost to the tap, and the harness says so.
const TAPPED_MAX: usize = 65_536;

/// One frame seen on connection `serial`.
#[derive(Debug)]
pub(crate) enum Tapped {
    /// The client wrote a join or a leave.
    Sent {
        /// The connection, unique in the run.
        serial: u64,
        /// The frame.
        frame: ClientFrame,
    },
    /// The client received a frame.
    Received {
        /// The connection.
        serial: u64,
        /// The frame.
        frame: ServerFrame,
    },
}

#[derive(Debug, Default)]
struct Inner {
    frames: Vec<Tapped>,
    overflowed: bool,
}

/// Shared by a client's connector (which taps every connection it opens)
/// and the harness (which drains it into the oracle). Transport tasks are
/// `Send`, so this is a mutex, not a cell.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tap {
    serials: Arc<AtomicU64>,
    inner: Arc<Mutex<Inner>>,
}

impl Tap {
    /// A tap whose connections are numbered from the shared `serials`, so
    /// numbers are unique across every client of the run.
    pub(crate) fn new(serials: Arc<AtomicU64>) -> Self {
        Tap {
            serials,
            inner: Arc::default(),
        }
    }

    fn push(&self, tapped: Tapped) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.frames.len() < TAPPED_MAX {
            inner.frames.push(tapped);
        } else {
            inner.overflowed = true;
        }
    }

    /// Everything seen since the last drain, in order, and whether some was
    /// lost to the bound.
    pub(crate) fn drain(&self) -> (Vec<Tapped>, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let overflowed = std::mem::take(&mut inner.overflowed);
        (std::mem::take(&mut inner.frames), overflowed)
    }

    /// Wraps a new connection: a join or leave is recorded as it is handed
    /// to the transport (before it can be answered), a frame as it is read.
    pub(crate) fn wrap(&self, conn: Connection) -> Connection {
        let serial = self.serials.fetch_add(1, Ordering::Relaxed) + 1;
        let (sink, stream) = conn.into_parts();
        let out = self.clone();
        let sink = sink.with(move |frame: ClientFrame| {
            if matches!(frame, ClientFrame::Join { .. } | ClientFrame::Leave { .. }) {
                out.push(Tapped::Sent {
                    serial,
                    frame: frame.clone(),
                });
            }
            futures_util::future::ready(Ok::<_, TransportError>(frame))
        });
        let inbound = self.clone();
        let stream = stream.inspect(move |item| {
            if let Ok(frame) = item {
                if scoped_or_leave_ack(frame) {
                    inbound.push(Tapped::Received {
                        serial,
                        frame: frame.clone(),
                    });
                }
            }
        });
        Connection::new(sink, stream)
    }
}

/// Whether invariant 7 cares about `frame`: channel-scoped frames, and the
/// acknowledgement of a leave.
fn scoped_or_leave_ack(frame: &ServerFrame) -> bool {
    matches!(
        frame,
        ServerFrame::MessageNew(_)
            | ServerFrame::MessageUpdated(_)
            | ServerFrame::MessageDeleted(_)
            | ServerFrame::PresenceJoin(_)
            | ServerFrame::PresenceLeave(_)
            | ServerFrame::Typing(_)
            | ServerFrame::Read(_)
            | ServerFrame::Ack {
                body: Ack::Leave,
                ..
            }
    )
}
