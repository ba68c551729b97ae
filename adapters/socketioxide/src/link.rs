//! One Socket.IO connection's link to the server driver: the ordered
//! request queue its event handler fills, and the acks waiting for replies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use lockstep_core::ids::ChannelId;
use lockstep_core::wire::{ClientFrame, DecodeError, ReqId};
use lockstep_tokio::server::{Identity, Permit};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use lockstep_core::wire::socketio::{decode_event, request_kind};

use crate::report::{ReportGate, ReportLimits};

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

/// A request awaiting its reply: what the reply is counted and logged as.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The Socket.IO ack id (`None`: emitted without an ack callback, so
    /// the reply is counted but not written).
    pub(crate) ack: Option<i64>,
    /// The request kind (`join`, `send`, ..., `unknown`).
    pub(crate) kind: &'static str,
    /// The channel of a join or a leave, for the subscription logs.
    pub(crate) channel: Option<ChannelId>,
    /// A join that named the position to resume from (a re-join).
    pub(crate) resume: bool,
    /// When it arrived.
    pub(crate) at: Instant,
}

impl Pending {
    fn of(request: &Request, event: &str, ack: Option<i64>, at: Instant) -> Self {
        let (channel, resume) = match request {
            Ok(ClientFrame::Join {
                channel_id, since, ..
            }) => (Some(channel_id.clone()), since.is_some()),
            Ok(ClientFrame::Leave { channel_id, .. }) => (Some(channel_id.clone()), false),
            Err(DecodeError::Invalid {
                channel: Some(channel),
                ..
            }) if event == "channel:join" => (Some(channel.clone()), false),
            _ => (None, false),
        };
        Pending {
            ack,
            kind: request_kind(event).unwrap_or("unknown"),
            channel,
            resume,
            at,
        }
    }
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
    /// Each request awaiting its reply (every request gets one).
    acks: Mutex<BTreeMap<ReqId, Pending>>,
    pending_max: usize,
    /// The `client:metrics` allowance.
    reports: Mutex<ReportGate>,
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
        reports: ReportLimits,
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
            reports: Mutex::new(ReportGate::new(reports)),
            gone: CancellationToken::new(),
            flooded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Queues one received event, in order, without waiting. Called from
    /// the socket's (synchronous) event handler.
    pub(crate) fn push(
        &self,
        event: &str,
        payload: Option<&str>,
        ack: Option<i64>,
    ) -> Result<(), Flood> {
        let req = ReqId(self.next_req.fetch_add(1, Ordering::Relaxed));
        let request = decode_event(event, payload, req);
        {
            let mut acks = self.acks();
            if acks.len() >= self.pending_max {
                return Err(Flood::TooManyPending);
            }
            acks.insert(req, Pending::of(&request, event, ack, Instant::now()));
        }
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
        self.acks().get(&req).and_then(|p| p.ack)
    }

    /// Forgets `req` once its reply is written.
    pub(crate) fn take_ack(&self, req: ReqId) -> Option<Pending> {
        self.acks().remove(&req)
    }

    /// Handles a `client:metrics` report (counted or refused, never queued
    /// for the server machine).
    pub(crate) fn report(&self, payload: Option<&str>) -> Result<(), crate::report::ReportError> {
        let mut gate = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        crate::report::handle(&mut gate, payload, Instant::now())
    }

    fn acks(&self) -> MutexGuard<'_, BTreeMap<ReqId, Pending>> {
        // The map is only inserted into and removed from: a poisoned lock
        // still holds a consistent map.
        self.acks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
