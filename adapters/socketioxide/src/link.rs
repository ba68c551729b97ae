//! One Socket.IO connection's link to the server driver: the ordered
//! request queue its event handler fills, and the acks waiting for replies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use lockstep_core::wire::{ClientFrame, DecodeError, ReqId};
use lockstep_tokio::server::{Identity, Permit};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use lockstep_core::wire::socketio::decode_event;

/// A request as queued: decoded, or the error that names its `req`.
pub(crate) type Request = Result<ClientFrame, DecodeError>;

/// Why a request could not be queued: the client floods faster than the
/// server works, and is disconnected (never silently skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Flood {
    /// The ordered request queue is full.
    #[error("request queue full")]
    QueueFull,
    /// Too many requests wait for their reply.
    #[error("too many requests awaiting a reply")]
    TooManyPending,
    /// The connection is already over.
    #[error("connection closed")]
    Closed,
}

/// Shared by the socket's event handler (which runs synchronously, in
/// arrival order, inside socketioxide's receive path) and the connection
/// task (which feeds the driver and writes replies).
pub(crate) struct Link {
    /// The verified token's identity: the user, and when the session ends.
    pub(crate) identity: Identity,
    /// The user's connection slot, released once: by the disconnect
    /// handler, at the end of the connection task, or with the link.
    permit: Mutex<Option<Permit>>,
    queue: mpsc::Sender<Request>,
    /// Taken once by the connection task.
    pending_queue: Mutex<Option<mpsc::Receiver<Request>>>,
    next_req: AtomicU64,
    /// The Socket.IO ack id of each request awaiting its reply (requests
    /// sent without an ack callback are not listed: nothing to answer).
    acks: Mutex<BTreeMap<ReqId, i64>>,
    pending_max: usize,
    /// Cancelled when socketioxide reports the socket disconnected.
    pub(crate) gone: CancellationToken,
    /// Set when the front cut the client off for flooding.
    pub(crate) flooded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("user", &self.identity.user)
            .field("pending", &self.acks().len())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(
        identity: Identity,
        permit: Option<Permit>,
        queue_capacity: usize,
        pending_max: usize,
    ) -> Self {
        let (queue, rx) = mpsc::channel(queue_capacity.max(1));
        Link {
            identity,
            permit: Mutex::new(permit),
            queue,
            pending_queue: Mutex::new(Some(rx)),
            next_req: AtomicU64::new(1),
            acks: Mutex::new(BTreeMap::new()),
            pending_max: pending_max.max(1),
            gone: CancellationToken::new(),
            flooded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Queues one received event, in order, without waiting. Called from
    /// the socket's (synchronous) event handler.
    pub(crate) fn push(
        &self,
        event: &str,
        payload: Option<Value>,
        ack: Option<i64>,
    ) -> Result<(), Flood> {
        let req = ReqId(self.next_req.fetch_add(1, Ordering::Relaxed));
        if let Some(ack) = ack {
            let mut acks = self.acks();
            if acks.len() >= self.pending_max {
                return Err(Flood::TooManyPending);
            }
            acks.insert(req, ack);
        }
        let request = decode_event(event, payload, req);
        match self.queue.try_send(request) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.acks().remove(&req);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => Flood::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => Flood::Closed,
                })
            }
        }
    }

    /// Frees the user's connection slot (the first call does; the rest
    /// find it gone).
    pub(crate) fn release(&self) {
        let permit = self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(permit);
    }

    /// The request queue's receiving end; `None` after the first call.
    pub(crate) fn take_queue(&self) -> Option<mpsc::Receiver<Request>> {
        self.pending_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The ack id waiting for `req`'s reply, left in place (the write may
    /// have to be retried).
    pub(crate) fn ack_id(&self, req: ReqId) -> Option<i64> {
        self.acks().get(&req).copied()
    }

    /// Forgets `req`'s ack once its reply is written.
    pub(crate) fn take_ack(&self, req: ReqId) -> Option<i64> {
        self.acks().remove(&req)
    }

    fn acks(&self) -> MutexGuard<'_, BTreeMap<ReqId, i64>> {
        // The map is only inserted into and removed from: a poisoned lock
        // still holds a consistent map.
        self.acks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
