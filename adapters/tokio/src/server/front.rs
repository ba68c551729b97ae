//! What a front (framed TCP, Socket.IO, ...) uses to hand its connections
//! to the one server driver: the [`Frontdoor`], and per connection a
//! [`ConnInbound`] (frames in) and a [`ConnOutbound`] (frames out).

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use lockstep_core::ids::UserId;
use lockstep_core::server::ConnId;
use lockstep_core::wire::{ClientFrame, DecodeError, ServerFrame, encode_server};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The driver has stopped or is shutting down; the front should close the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server driver has stopped")]
pub struct ServerStopped;

/// A server frame shared by every recipient and encoded once, by the first
/// recipient that needs it: a broadcast to a thousand members is one
/// encoding and a thousand pointer copies, whichever front serves them.
#[derive(Debug)]
pub struct OutFrame {
    /// The frame, for fronts that map it to their own events.
    pub frame: ServerFrame,
    /// Its [`ServerFrame::weight`]: what it counts against byte budgets.
    pub weight: usize,
    json: OnceLock<Bytes>,
    front: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl OutFrame {
    /// Wraps `frame` for sharing; nothing is encoded yet.
    #[must_use]
    pub fn new(frame: ServerFrame) -> Arc<OutFrame> {
        Arc::new(OutFrame {
            weight: frame.weight(),
            frame,
            json: OnceLock::new(),
            front: OnceLock::new(),
        })
    }

    /// Its compact JSON (`encode_server`), for stream fronts.
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| Bytes::from(encode_server(&self.frame)))
    }

    /// A front's own encoding of the frame (e.g. a Socket.IO event
    /// payload), made by `encode` for the first recipient and shared by the
    /// rest. `None` when a front of another kind already stored a value of
    /// another type here; the caller then encodes for itself.
    pub fn encoded<T: Any + Send + Sync>(
        &self,
        encode: impl FnOnce(&ServerFrame) -> T,
    ) -> Option<&T> {
        self.front
            .get_or_init(|| Box::new(encode(&self.frame)))
            .downcast_ref()
    }
}

/// What fronts send the driver. One queue for all connections keeps each
/// connection's requests in arrival order.
#[derive(Debug)]
pub(crate) enum Input {
    Open {
        conn: ConnId,
        user: UserId,
        outgoing: mpsc::Sender<Arc<OutFrame>>,
        /// Bytes (by weight) queued for the connection and not yet taken
        /// by its writer.
        queued: Arc<AtomicUsize>,
        kill: CancellationToken,
    },
    Frame(ConnId, ClientFrame),
    Undecodable(ConnId, DecodeError),
}

/// A front's way in to the server driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Frontdoor {
    pub(crate) inputs: mpsc::Sender<Input>,
    /// Closes are unbounded so a `Drop` can send one; there is at most one
    /// per open connection.
    pub(crate) closed: mpsc::UnboundedSender<ConnId>,
    pub(crate) next_conn: Arc<AtomicU64>,
    pub(crate) queue_capacity: usize,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl Frontdoor {
    /// Registers a connection whose user the front has authenticated. The
    /// driver answers `welcome` (or `refused`) on its outbound queue.
    ///
    /// # Errors
    ///
    /// [`ServerStopped`] when the server is shutting down.
    pub async fn open(&self, user: UserId) -> Result<(ConnInbound, ConnOutbound), ServerStopped> {
        if self.shutdown.is_cancelled() {
            return Err(ServerStopped);
        }
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (outgoing, frames) = mpsc::channel(self.queue_capacity.max(1));
        let kill = CancellationToken::new();
        let queued = Arc::new(AtomicUsize::new(0));
        self.inputs
            .send(Input::Open {
                conn,
                user,
                outgoing,
                queued: Arc::clone(&queued),
                kill: kill.clone(),
            })
            .await
            .map_err(|_| ServerStopped)?;
        let inbound = ConnInbound {
            conn,
            inputs: self.inputs.clone(),
            closed: self.closed.clone(),
        };
        let outbound = ConnOutbound {
            conn,
            frames,
            kill,
            taken_at_once: 0,
            queued,
        };
        Ok((inbound, outbound))
    }

    /// Resolves when the server begins shutting down: fronts stop
    /// accepting.
    pub async fn shutting_down(&self) {
        self.shutdown.cancelled().await;
    }

    /// Whether the driver task is still running: its input queue closes
    /// when the task ends, however it ends (shutdown or panic).
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.inputs.is_closed()
    }

    /// Where fronts spawn their tasks, so shutdown can wait for them.
    #[must_use]
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

/// Frames from one connection into the driver. Dropping it tells the driver
/// the connection closed.
#[derive(Debug)]
pub struct ConnInbound {
    conn: ConnId,
    inputs: mpsc::Sender<Input>,
    closed: mpsc::UnboundedSender<ConnId>,
}

impl ConnInbound {
    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.conn
    }

    /// A decoded frame; waits while the driver's queue is full
    /// (backpressure on the reader).
    ///
    /// # Errors
    ///
    /// [`ServerStopped`] when the driver is gone.
    pub async fn frame(&self, frame: ClientFrame) -> Result<(), ServerStopped> {
        self.inputs
            .send(Input::Frame(self.conn, frame))
            .await
            .map_err(|_| ServerStopped)
    }

    /// Bytes that did not decode; a request it names is refused `invalid`.
    ///
    /// # Errors
    ///
    /// [`ServerStopped`] when the driver is gone.
    pub async fn undecodable(&self, error: DecodeError) -> Result<(), ServerStopped> {
        self.inputs
            .send(Input::Undecodable(self.conn, error))
            .await
            .map_err(|_| ServerStopped)
    }
}

impl Drop for ConnInbound {
    fn drop(&mut self) {
        // Err: the driver is gone and has forgotten every connection.
        let _ = self.closed.send(self.conn);
    }
}

/// Why [`ConnOutbound::recv`] has nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundEnd {
    /// The server closed the connection (refused, shutdown): flush what was
    /// sent and close.
    Closed,
    /// The server cut the connection off (its queue was full: the client
    /// cannot keep up): close at once.
    Killed,
}

/// Frames from the driver to one connection, through a bounded queue.
#[derive(Debug)]
pub struct ConnOutbound {
    conn: ConnId,
    frames: mpsc::Receiver<Arc<OutFrame>>,
    kill: CancellationToken,
    /// Frames taken without waiting since the last wait (see `recv`).
    taken_at_once: u32,
    /// Bytes (by weight) the driver queued and the writer has not taken.
    queued: Arc<AtomicUsize>,
}

/// Frames [`ConnOutbound::recv`] takes straight from a busy queue before
/// it waits once through the scheduler (which may then yield the task).
const TAKEN_AT_ONCE_MAX: u32 = 64;

impl ConnOutbound {
    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.conn
    }

    /// The next frame to write, or why there are none any more.
    ///
    /// # Errors
    ///
    /// [`OutboundEnd`] once the connection is over.
    pub async fn recv(&mut self) -> Result<Arc<OutFrame>, OutboundEnd> {
        // A busy connection's next frame is already queued: take it without
        // registering a waiter with the kill token (a lock and an
        // allocation per frame, a tenth of a broadcast's cost, profiled).
        // Every so often the frame is taken the slow way instead, which
        // counts against the task's scheduling budget, so a writer that
        // always finds a frame still lets its worker thread run others.
        if self.taken_at_once < TAKEN_AT_ONCE_MAX {
            if self.kill.is_cancelled() {
                return Err(OutboundEnd::Killed);
            }
            if let Ok(frame) = self.frames.try_recv() {
                self.taken_at_once += 1;
                return Ok(self.taken(frame));
            }
        }
        self.taken_at_once = 0;
        tokio::select! {
            biased;
            () = self.kill.cancelled() => Err(OutboundEnd::Killed),
            frame = self.frames.recv() => frame.map(|f| self.taken(f)).ok_or(OutboundEnd::Closed),
        }
    }

    /// A frame already queued, without waiting (to batch writes).
    pub fn try_recv(&mut self) -> Option<Arc<OutFrame>> {
        if self.kill.is_cancelled() {
            return None;
        }
        self.frames.try_recv().ok().map(|f| self.taken(f))
    }

    /// Bytes (by weight) queued for this connection, not yet taken.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A frame leaves the queue: its weight no longer counts against the
    /// connection's byte budget. (The driver adds it before queuing, so
    /// this never goes below zero.)
    fn taken(&self, frame: Arc<OutFrame>) -> Arc<OutFrame> {
        self.queued.fetch_sub(frame.weight, Ordering::Relaxed);
        frame
    }
}

#[cfg(test)]
mod tests {
    use lockstep_core::ids::UserId;
    use lockstep_core::wire::PROTOCOL_VERSION;

    use super::*;

    #[test]
    fn an_out_frame_is_encoded_once_per_kind_of_front() {
        let frame = OutFrame::new(ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            user_id: UserId::new("al").unwrap(),
        });
        let mut calls = 0;
        for _ in 0..3 {
            let len = frame.encoded(|f| {
                calls += 1;
                encode_server(f).len()
            });
            assert_eq!(len, Some(&frame.json().len()));
        }
        assert_eq!(calls, 1, "the first recipient encodes, the rest share");
        assert_eq!(frame.encoded(|_| "another type"), None);
        assert!(frame.json().starts_with(b"{\"type\":\"welcome\""));
    }
}
