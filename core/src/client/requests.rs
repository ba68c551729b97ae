//! Requests awaiting a reply, and a short memory of abandoned ones.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ChannelId, Seq};
use crate::wire::ReqId;

use super::events::EntryId;

/// How many abandoned requests are remembered, so that a late reply to one
/// is recognised as late rather than reported as a protocol error.
const RETIRED_MAX: usize = 256;

/// What a request was, to interpret its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// `channel:join`, one attempt.
    Join(ChannelId),
    /// `channel:leave`.
    Leave(ChannelId),
    /// An outbox entry (`message:send`, `message:update`, `message:delete`).
    Outbox(ChannelId, EntryId),
    /// `channel:history`.
    History(ChannelId),
    /// `message:read`.
    Read(ChannelId, Seq),
    /// An idempotent re-join of a joined channel (`resync_interval`).
    Refresh(ChannelId),
}

impl Request {
    /// The request's kind, for errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Request::Join(_) => "join",
            Request::Leave(_) => "leave",
            Request::Outbox(_, EntryId::Message(_)) => "send",
            Request::Outbox(_, EntryId::Op(_)) => "update/delete",
            Request::History(_) => "history",
            Request::Read(..) => "read",
            Request::Refresh(_) => "refresh",
        }
    }
}

/// What a reply's request id turned out to name.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A live request; it is now answered and removed.
    Live(Request),
    /// A request abandoned on this connection (timed out or superseded).
    Retired(Request),
    /// Nothing this client asked.
    Unknown,
}

/// The pending table of one connection; cleared when it ends.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next: u64,
    pending: BTreeMap<ReqId, Request>,
    retired: VecDeque<(ReqId, Request)>,
}

impl Requests {
    /// Registers a new request and returns its id. Ids grow across
    /// connections, so a reply can never be confused with an older one.
    pub(crate) fn start(&mut self, request: Request) -> ReqId {
        self.next += 1;
        let req = ReqId(self.next);
        self.pending.insert(req, request);
        req
    }

    /// Takes the request `req` answers.
    pub(crate) fn answer(&mut self, req: ReqId) -> Lookup {
        if let Some(r) = self.pending.remove(&req) {
            return Lookup::Live(r);
        }
        match self.retired.iter().position(|(id, _)| *id == req) {
            Some(i) => match self.retired.remove(i) {
                Some((_, r)) => Lookup::Retired(r),
                None => Lookup::Unknown,
            },
            None => Lookup::Unknown,
        }
    }

    /// Abandons `req`: its reply, if it ever comes, is recognised as late.
    pub(crate) fn retire(&mut self, req: ReqId) -> Option<Request> {
        let r = self.pending.remove(&req)?;
        if self.retired.len() >= RETIRED_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back((req, r.clone()));
        Some(r)
    }

    /// How many requests await a reply.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Forgets everything (the connection ended: its replies cannot come).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.retired.clear();
    }
}
