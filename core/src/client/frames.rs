//! Routing one server frame to the part of the client it concerns.

use crate::Instant;
use crate::wire::ServerFrame;

use super::Client;
use super::requests::Reply;

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
