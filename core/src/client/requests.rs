//! A request's life: started with its timeout armed, then answered,
//! retired or expired, each of which disarms it; plus a short memory of
//! abandoned requests so a late reply is recognised as late.
//!
//! The timeout is a [`TimerKey::Request`] holding a [`RequestTimer`], which
//! only this module can make: no other code can arm or cancel a request's
//! timer, so a request and its timer start and end together (invariant 8,
//! no timer or request outlives its connection, by construction).

use std::collections::VecDeque;

use super::vecmap::VecMap;

use crate::Instant;
use crate::ids::{ChannelId, Seq};
use crate::wire::{Ack, ErrorBody, ReqId};

use super::events::EntryId;
use super::timers::{TimerKey, Timers};

/// A reply to a request: success or refusal.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The request succeeded.
    Ack(Ack),
    /// The request was refused.
    Nack(ErrorBody),
}

/// The timer key of a request's timeout. Its field is private, so only
/// [`Requests`] arms and disarms request timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RequestTimer(ReqId);

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
    pending: VecMap<ReqId, Request>,
    retired: VecDeque<(ReqId, Request)>,
}

impl Requests {
    /// Registers a new request with its timeout armed at `deadline` and
    /// returns its id. Ids grow across connections, so a reply can never be
    /// confused with an older one.
    pub(crate) fn start(
        &mut self,
        timers: &mut Timers,
        request: Request,
        deadline: Instant,
    ) -> ReqId {
        self.next += 1;
        let req = ReqId(self.next);
        self.pending.insert(req, request);
        timers.arm(TimerKey::Request(RequestTimer(req)), deadline);
        req
    }

    /// Takes the request `req` answers, disarming its timeout.
    pub(crate) fn answer(&mut self, timers: &mut Timers, req: ReqId) -> Lookup {
        timers.cancel(&TimerKey::Request(RequestTimer(req)));
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

    /// Abandons `req` and disarms its timeout: its reply, if it ever
    /// comes, is recognised as late.
    pub(crate) fn retire(&mut self, timers: &mut Timers, req: ReqId) -> Option<Request> {
        timers.cancel(&TimerKey::Request(RequestTimer(req)));
        self.abandon(req)
    }

    /// The timeout of `timer` fired (the timer table already dropped it):
    /// abandons its request like [`retire`](Requests::retire).
    pub(crate) fn expire(&mut self, timer: RequestTimer) -> Option<(ReqId, Request)> {
        let req = timer.0;
        self.abandon(req).map(|r| (req, r))
    }

    fn abandon(&mut self, req: ReqId) -> Option<Request> {
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

    /// Forgets everything (the connection ended: its replies cannot come),
    /// disarming the timeouts of the requests still pending.
    pub(crate) fn clear(&mut self, timers: &mut Timers) {
        for req in self.pending.keys() {
            timers.cancel(&TimerKey::Request(RequestTimer(*req)));
        }
        self.pending.clear();
        self.retired.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn channel() -> ChannelId {
        ChannelId::new("room").unwrap()
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO.saturating_add(Duration::from_millis(ms))
    }

    /// Every way a request ends takes its timer with it, and a timer that
    /// fires ends its request: the table and the timers never disagree.
    #[test]
    fn a_request_and_its_timer_start_and_end_together() {
        let mut timers = Timers::default();
        let mut requests = Requests::default();
        let answered = requests.start(&mut timers, Request::Join(channel()), at(10));
        let retired = requests.start(&mut timers, Request::Leave(channel()), at(20));
        let expiring = requests.start(&mut timers, Request::History(channel()), at(5));
        let cleared = requests.start(&mut timers, Request::Refresh(channel()), at(30));
        assert_eq!((requests.len(), timers.len()), (4, 4));

        assert!(matches!(
            requests.answer(&mut timers, answered),
            Lookup::Live(Request::Join(_))
        ));
        assert_eq!((requests.len(), timers.len()), (3, 3));

        assert!(requests.retire(&mut timers, retired).is_some());
        assert_eq!((requests.len(), timers.len()), (2, 2));
        // A late reply to it is recognised as late, and arms nothing.
        assert!(matches!(
            requests.answer(&mut timers, retired),
            Lookup::Retired(Request::Leave(_))
        ));

        let Some(TimerKey::Request(timer)) = timers.pop_due(at(5)) else {
            panic!("the history request's timer is due first");
        };
        assert_eq!(
            requests.expire(timer),
            Some((expiring, Request::History(channel())))
        );
        assert_eq!((requests.len(), timers.len()), (1, 1));

        requests.clear(&mut timers);
        assert_eq!((requests.len(), timers.len()), (0, 0));
        assert!(matches!(
            requests.answer(&mut timers, cleared),
            Lookup::Unknown
        ));
    }
}
