//! Routing one server frame to the part of the client it concerns.

use crate::Instant;
use crate::wire::{Ack, ErrorBody, ReqId, ServerFrame};

use super::Client;
use super::events::{ClientEvent, ProtocolError};
use super::requests::{Lookup, Request};
use super::timers::TimerKey;

/// A reply to a request: success or refusal.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The request succeeded.
    Ack(Ack),
    /// The request was refused.
    Nack(ErrorBody),
}

impl Client {
    pub(super) fn on_frame(&mut self, now: Instant, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome { version, user_id } => self.on_welcome(now, version, user_id),
            ServerFrame::Refused { error } => self.on_refused(now, error),
            other if !self.is_connected() => {
                let name = frame_name(&other);
                self.unexpected(name);
            }
            ServerFrame::Ack { req, body } => self.on_reply(now, req, Reply::Ack(body)),
            ServerFrame::Nack { req, error } => self.on_reply(now, req, Reply::Nack(error)),
            ServerFrame::MessageNew(m) => {
                self.on_live_event(now, crate::wire::LogEvent::Message(m))
            }
            ServerFrame::MessageUpdated(u) => {
                self.on_live_event(now, crate::wire::LogEvent::Updated(u));
            }
            ServerFrame::MessageDeleted(d) => {
                self.on_live_event(now, crate::wire::LogEvent::Deleted(d));
            }
            ServerFrame::PresenceJoin(p) => self.on_presence(now, p.channel_id, p.user_id, true),
            ServerFrame::PresenceLeave(p) => self.on_presence(now, p.channel_id, p.user_id, false),
            ServerFrame::Typing(t) => self.on_remote_typing(now, t.channel_id, t.user_id, t.active),
            ServerFrame::Read(r) => self.on_receipt(r.channel_id, r.user_id, r.up_to),
            ServerFrame::Pong { .. } => {}
        }
    }

    fn on_reply(&mut self, now: Instant, req: ReqId, reply: Reply) {
        self.timers.cancel(&TimerKey::Request(req));
        match self.requests.answer(req) {
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
                if let Some(outcome) = super::sending::outcome_of(&id, &ack) {
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
}

fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome { .. } => "welcome",
        ServerFrame::Refused { .. } => "refused",
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Nack { .. } => "nack",
        ServerFrame::MessageNew(_) => "message:new",
        ServerFrame::MessageUpdated(_) => "message:updated",
        ServerFrame::MessageDeleted(_) => "message:deleted",
        ServerFrame::PresenceJoin(_) => "presence:join",
        ServerFrame::PresenceLeave(_) => "presence:leave",
        ServerFrame::Typing(_) => "typing",
        ServerFrame::Read(_) => "message:read",
        ServerFrame::Pong { .. } => "pong",
    }
}
