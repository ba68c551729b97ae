//! A request's end, routed to the part of the client that asked: its
//! reply (live, late or unknown) or its timeout.

use crate::Instant;
use crate::wire::{Ack, ReqId};

use super::Client;
use super::events::{ClientEvent, ProtocolError};
use super::outbox::outcome_of;
use super::requests::{Lookup, Reply, Request, RequestTimer};

impl Client {
    pub(super) fn on_reply(&mut self, now: Instant, req: ReqId, reply: Reply) {
        match self.requests.answer(&mut self.timers, req) {
            Lookup::Live(request) => self.on_live_reply(now, req, request, reply),
            Lookup::Retired(request) => self.on_late_reply(now, request, reply),
            Lookup::Unknown => self.emit(ClientEvent::Protocol(ProtocolError::UnknownRequest(req))),
        }
    }

    fn on_live_reply(&mut self, now: Instant, req: ReqId, request: Request, reply: Reply) {
        match request {
            Request::Join(channel) => self.on_join_reply(now, req, channel, reply),
            Request::Leave(channel) => self.on_leave_reply(now, req, channel, reply),
            Request::Outbox(channel, id) => self.on_outbox_reply(now, req, channel, id, reply),
            Request::History(channel) => self.on_history_reply(now, req, channel, reply),
            Request::Read(channel, up_to) => self.on_read_reply(req, channel, up_to, reply),
            Request::Refresh(channel) => self.on_refresh_reply(now, req, channel, reply),
        }
    }

    /// A reply to an abandoned request. Only a send's is still useful: it
    /// resolves the entry if a newer attempt has not yet.
    fn on_late_reply(&mut self, now: Instant, request: Request, reply: Reply) {
        if let (Request::Outbox(channel, id), Reply::Ack(ack)) = (request, reply) {
            if self.outbox.contains(&id) {
                if let Some(outcome) = outcome_of(&id, &ack) {
                    self.resolve(now, channel, id, outcome);
                }
            }
        }
    }

    /// Reports a reply whose shape does not match its request.
    pub(super) fn wrong_kind(&mut self, req: ReqId, request: &Request, ack: &Ack) {
        self.emit(ClientEvent::Protocol(ProtocolError::WrongAckKind {
            req,
            expected: request.kind(),
            got: ack.kind(),
        }));
    }

    /// A request's reply is overdue: abandon it and recover.
    pub(super) fn on_request_timeout(&mut self, now: Instant, timer: RequestTimer) {
        let Some((req, request)) = self.requests.expire(timer) else {
            return;
        };
        tracing::debug!(?req, kind = request.kind(), "request timed out");
        match request {
            Request::Join(channel) => self.on_join_timeout(now, channel, req),
            Request::Leave(channel) => {
                // A stray's leave timed out: a later stray event asks again.
                if !self.stray_leave_ended(now, &channel, req) {
                    self.on_leave_timeout(now, channel, req);
                }
            }
            Request::Outbox(channel, id) => self.on_outbox_timeout(now, channel, id),
            Request::History(channel) => self.on_history_timeout(now, &channel, req),
            Request::Read(..) => {}
            Request::Refresh(channel) => self.on_refresh_timeout(&channel, req),
        }
    }
}
