//! Client requests: validation in the protocol's order, then either an
//! immediate answer or store work whose completion answers.
//!
//! Check order (the contract): payload shape (the decoder) → channel id →
//! access policy for a join → joined → the other fields → rate and
//! capacity limits. A request whose other fields did not decode still gets
//! the channel checks first (`channel_checks_first`).

/// Channels per connection whose last leave is remembered (oldest
/// forgotten first): bounds the stale-join guard's memory.
const LEAVES_REMEMBERED_MAX: usize = 256;

mod history;
mod join;
mod modify;
mod order_gate;
mod read;
mod send;
mod typing;

use tracing::debug;

use crate::ids::ChannelId;
use crate::server::limits::Kind;
use crate::server::ops::Waiter;
use crate::server::{AccessPolicy, ConnId, Denied, Server};
use crate::wire::{Ack, ClientFrame, DecodeError, ErrorCode, ServerFrame};

/// The `type` of the requests whose channel is checked first (their serde
/// tags in `ClientFrame`; a test ties the two together).
const JOIN: &str = "channel:join";
const SEND: &str = "message:send";
const UPDATE: &str = "message:update";
const DELETE: &str = "message:delete";
const HISTORY: &str = "channel:history";
const READ: &str = "message:read";
const TYPING: &str = "typing";

impl<P: AccessPolicy> Server<P> {
    /// Routes one frame of an open connection.
    pub(super) fn dispatch(&mut self, conn: ConnId, frame: ClientFrame) {
        let result = match frame {
            ClientFrame::Hello { version, .. } => {
                debug!(%conn, version, "hello on an open session: ignored");
                return;
            }
            ClientFrame::Ping { nonce } => {
                self.send(conn, ServerFrame::Pong { nonce });
                return;
            }
            ClientFrame::Typing {
                req,
                channel_id,
                active,
            } => {
                self.typing(conn, req, &channel_id, active);
                return;
            }
            ClientFrame::Join {
                req,
                channel_id,
                epoch,
                since,
            } => (
                Waiter { conn, req },
                self.join(Waiter { conn, req }, channel_id, epoch, since),
            ),
            ClientFrame::Leave { req, channel_id } => {
                let w = Waiter { conn, req };
                match self.take_token(conn, Kind::Leave) {
                    Ok(()) => {
                        self.leave(conn, req, &channel_id);
                        self.ack(w, Ack::Leave);
                    }
                    Err(denied) => self.nack(w, denied),
                }
                return;
            }
            ClientFrame::Send {
                req,
                channel_id,
                client_msg_id,
                body,
            } => (
                Waiter { conn, req },
                self.post(Waiter { conn, req }, channel_id, client_msg_id, body),
            ),
            ClientFrame::Update {
                req,
                channel_id,
                message_id,
                body,
            } => (
                Waiter { conn, req },
                self.modify(Waiter { conn, req }, channel_id, message_id, Some(body)),
            ),
            ClientFrame::Delete {
                req,
                channel_id,
                message_id,
            } => (
                Waiter { conn, req },
                self.modify(Waiter { conn, req }, channel_id, message_id, None),
            ),
            ClientFrame::History {
                req,
                channel_id,
                after,
                limit,
            } => (
                Waiter { conn, req },
                self.history(Waiter { conn, req }, channel_id, after, limit),
            ),
            ClientFrame::Read {
                req,
                channel_id,
                up_to,
            } => (
                Waiter { conn, req },
                self.read(Waiter { conn, req }, channel_id, up_to),
            ),
        };
        if let (w, Err(denied)) = result {
            self.nack(w, denied);
        }
    }

    /// `channel:leave`: always succeeds, joined or not. The leave's request
    /// id is remembered, so a join the client sent before it but that
    /// arrives after it (a reordering transport) cannot join again.
    fn leave(&mut self, conn: ConnId, req: crate::wire::ReqId, channel: &ChannelId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.leaves.len() >= LEAVES_REMEMBERED_MAX && !c.leaves.contains_key(channel) {
            c.leaves.pop_first();
        }
        let last = c.leaves.entry(channel.clone()).or_insert(req);
        *last = (*last).max(req);
        if c.channels.remove(channel).is_some() {
            let user = c.user.clone();
            self.leave_channel(conn, &user, channel, true);
        }
    }

    /// The checks the contract orders before the other fields, for a
    /// request whose fields did not decode but whose channel id did: the
    /// access policy for a join, membership for the requests that need it.
    /// `None` when they pass (the request is then refused `invalid`).
    pub(super) fn channel_checks_first(&self, conn: ConnId, error: &DecodeError) -> Option<Denied> {
        let DecodeError::Invalid {
            kind,
            channel: Some(channel),
            ..
        } = error
        else {
            return None;
        };
        match kind.as_str() {
            JOIN => {
                let user = &self.conns.get(&conn)?.user;
                (!self.policy.may_join(user, channel) && !sabotaged!(self, ServerIgnoresJoinPolicy))
                    .then(|| Denied::new(ErrorCode::Forbidden, format!("may not join {channel}")))
            }
            SEND | UPDATE | DELETE | HISTORY | READ | TYPING => {
                self.require_joined(conn, channel).err()
            }
            // A leave succeeds joined or not: only its own fields can fail.
            _ => None,
        }
    }

    /// The joined check every channel request after `join` starts with.
    fn require_joined(&self, conn: ConnId, channel: &ChannelId) -> Result<(), Denied> {
        match self.membership(conn, channel) {
            Some(_) => Ok(()),
            None => Err(Denied::new(
                ErrorCode::NotJoined,
                format!("not joined to {channel}"),
            )),
        }
    }
}
