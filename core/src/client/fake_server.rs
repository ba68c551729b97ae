//! A tiny, honest, in-memory server for examples and tests (feature
//! `test-util`: it is no part of the API a client app builds on).
//!
//! It speaks the wire contract to one client connection at a time, keeps
//! channel logs and send dedupe, and lets a script post messages as other
//! users. It is deliberately small: no access policy, no grace periods, no
//! limits. The real server machine lives elsewhere; this is a peer to drive
//! a [`Client`](super::Client) against without I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ChannelId, ClientMsgId, Epoch, MessageId, Seq, UserId};
use crate::wire::{
    Ack, Body, ClientFrame, ErrorBody, ErrorCode, HistoryAck, JOIN_EVENTS_MAX, JoinAck, LogEvent,
    MessageDeleted, MessageUpdated, NewMessage, PROTOCOL_VERSION, SendAck, ServerFrame,
};

/// An in-memory server for one user's connection.
#[derive(Debug)]
pub struct FakeServer {
    user: UserId,
    epoch: Epoch,
    logs: BTreeMap<ChannelId, Vec<LogEvent>>,
    dedupe: BTreeMap<(ChannelId, UserId, ClientMsgId), SendAck>,
    joined: BTreeSet<ChannelId>,
    welcomed: bool,
    next_message: u64,
}

impl FakeServer {
    /// A server that welcomes any non-empty token as `user`.
    #[must_use]
    pub fn new(user: UserId) -> Self {
        FakeServer {
            user,
            epoch: Epoch(1),
            logs: BTreeMap::new(),
            dedupe: BTreeMap::new(),
            joined: BTreeSet::new(),
            welcomed: false,
            next_message: 0,
        }
    }

    /// A new transport: the handshake and joins start over; logs stay.
    pub fn new_connection(&mut self) {
        self.joined.clear();
        self.welcomed = false;
    }

    /// Wipes every log and moves to a new epoch, as a store reset would.
    pub fn reset_logs(&mut self) {
        self.logs.clear();
        self.dedupe.clear();
        self.epoch = Epoch(self.epoch.0 + 1);
    }

    /// The log of `channel`.
    #[must_use]
    pub fn log(&self, channel: &ChannelId) -> &[LogEvent] {
        self.logs.get(channel).map_or(&[], Vec::as_slice)
    }

    /// Whether the connection has joined `channel`.
    #[must_use]
    pub fn is_joined(&self, channel: &ChannelId) -> bool {
        self.joined.contains(channel)
    }

    /// Stores a message by another user; returns the broadcast the client
    /// would get, if its connection has joined the channel.
    pub fn post(
        &mut self,
        channel: &ChannelId,
        author: &UserId,
        body: Body,
    ) -> Option<ServerFrame> {
        let n = self.log(channel).len() + 1;
        let cmid = ClientMsgId::new(format!("{author}-{n}")).ok()?;
        let (_, event) = self.store(channel, author, cmid, body)?;
        self.joined
            .contains(channel)
            .then(|| ServerFrame::from(event))
    }

    fn store(
        &mut self,
        channel: &ChannelId,
        author: &UserId,
        client_msg_id: ClientMsgId,
        body: Body,
    ) -> Option<(SendAck, LogEvent)> {
        self.next_message += 1;
        let log = self.logs.entry(channel.clone()).or_default();
        let seq = Seq(log.len() as u64 + 1);
        let message_id = MessageId::new(format!("m{}", self.next_message)).ok()?;
        let event = LogEvent::Message(NewMessage {
            channel_id: channel.clone(),
            seq,
            message_id: message_id.clone(),
            author_id: author.clone(),
            client_msg_id: client_msg_id.clone(),
            body: Some(body),
            ts: 1_700_000_000_000 + seq.0,
        });
        log.push(event.clone());
        let ack = SendAck {
            message_id,
            seq,
            ts: 1_700_000_000_000 + seq.0,
        };
        self.dedupe.insert(
            (channel.clone(), author.clone(), client_msg_id),
            ack.clone(),
        );
        Some((ack, event))
    }

    fn head(&self, channel: &ChannelId) -> Seq {
        Seq(self.log(channel).len() as u64)
    }

    fn after(&self, channel: &ChannelId, after: Seq, limit: usize) -> (Vec<LogEvent>, bool) {
        let log = self.log(channel);
        let start = usize::try_from(after.0)
            .unwrap_or(usize::MAX)
            .min(log.len());
        let rest = &log[start..];
        let page = rest.iter().take(limit).cloned().collect();
        (page, rest.len() > limit)
    }

    /// Answers one client frame with the frames the client gets back, in
    /// order (replies and the broadcasts they cause).
    pub fn handle(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        if !self.welcomed {
            return match frame {
                ClientFrame::Hello { version, token } => {
                    if version != PROTOCOL_VERSION || token.is_empty() {
                        vec![ServerFrame::Refused {
                            error: ErrorBody::new(ErrorCode::Unauthorized, "unauthorized"),
                        }]
                    } else {
                        self.welcomed = true;
                        vec![ServerFrame::Welcome {
                            version: PROTOCOL_VERSION,
                            user_id: self.user.clone(),
                        }]
                    }
                }
                _ => vec![],
            };
        }
        let nack = |req, code| ServerFrame::Nack {
            req,
            error: ErrorBody::new(code, code.as_str()),
        };
        let ack = |req, body| ServerFrame::Ack { req, body };
        match frame {
            ClientFrame::Hello { .. } => vec![],
            ClientFrame::Join {
                req,
                channel_id,
                epoch,
                since,
            } => {
                self.joined.insert(channel_id.clone());
                let head = self.head(&channel_id);
                let (events, recovered) = match since {
                    Some(s) if epoch == Some(self.epoch) && s <= head => {
                        let (page, more) = self.after(&channel_id, s, JOIN_EVENTS_MAX);
                        if more {
                            (self.latest(&channel_id), false)
                        } else {
                            (page, true)
                        }
                    }
                    Some(_) => (self.latest(&channel_id), false),
                    None => (vec![], false),
                };
                vec![ack(
                    req,
                    Ack::Join(JoinAck {
                        channel_id,
                        epoch: self.epoch,
                        head_seq: head,
                        members: vec![self.user.clone()],
                        events,
                        recovered,
                    }),
                )]
            }
            ClientFrame::Leave { req, channel_id } => {
                self.joined.remove(&channel_id);
                vec![ack(req, Ack::Leave)]
            }
            ClientFrame::Send {
                req,
                channel_id,
                client_msg_id,
                body,
            } => {
                if !self.joined.contains(&channel_id) {
                    return vec![nack(req, ErrorCode::NotJoined)];
                }
                let key = (channel_id.clone(), self.user.clone(), client_msg_id.clone());
                if let Some(prior) = self.dedupe.get(&key) {
                    return vec![ack(req, Ack::Send(prior.clone()))];
                }
                let user = self.user.clone();
                match self.store(&channel_id, &user, client_msg_id, body) {
                    Some((a, event)) => vec![ack(req, Ack::Send(a)), ServerFrame::from(event)],
                    None => vec![nack(req, ErrorCode::Unavailable)],
                }
            }
            ClientFrame::Update {
                req,
                channel_id,
                message_id,
                body,
            } => self.edit(req, channel_id, message_id, Some(body)),
            ClientFrame::Delete {
                req,
                channel_id,
                message_id,
            } => self.edit(req, channel_id, message_id, None),
            ClientFrame::History {
                req,
                channel_id,
                after,
                limit,
            } => {
                if !self.joined.contains(&channel_id) {
                    return vec![nack(req, ErrorCode::NotJoined)];
                }
                let limit = limit.unwrap_or(100).clamp(1, 500) as usize;
                let (events, more) = self.after(&channel_id, after.unwrap_or(Seq::ZERO), limit);
                vec![ack(
                    req,
                    Ack::History(HistoryAck {
                        head_seq: self.head(&channel_id),
                        channel_id,
                        epoch: self.epoch,
                        events,
                        more,
                    }),
                )]
            }
            ClientFrame::Read { req, up_to, .. } => vec![ack(req, Ack::Read { up_to })],
            ClientFrame::Typing { req, .. } => {
                req.map(|r| ack(r, Ack::Typing)).into_iter().collect()
            }
            ClientFrame::Ping { nonce } => vec![ServerFrame::Pong { nonce }],
        }
    }

    fn latest(&self, channel: &ChannelId) -> Vec<LogEvent> {
        let log = self.log(channel);
        log[log.len().saturating_sub(JOIN_EVENTS_MAX)..].to_vec()
    }

    fn edit(
        &mut self,
        req: crate::wire::ReqId,
        channel: ChannelId,
        message_id: MessageId,
        body: Option<Body>,
    ) -> Vec<ServerFrame> {
        let exists = self.log(&channel).iter().any(|e| match e {
            LogEvent::Message(m) => m.message_id == message_id,
            _ => false,
        });
        if !self.joined.contains(&channel) || !exists {
            let code = if exists {
                ErrorCode::NotJoined
            } else {
                ErrorCode::NotFound
            };
            return vec![ServerFrame::Nack {
                req,
                error: ErrorBody::new(code, code.as_str()),
            }];
        }
        let seq = self.head(&channel).next();
        let event = match body {
            Some(body) => LogEvent::Updated(MessageUpdated {
                channel_id: channel.clone(),
                seq,
                message_id,
                body: Some(body),
            }),
            None => LogEvent::Deleted(MessageDeleted {
                channel_id: channel.clone(),
                seq,
                message_id,
            }),
        };
        self.logs.entry(channel).or_default().push(event.clone());
        let body = match &event {
            LogEvent::Updated(_) => Ack::Update { seq },
            _ => Ack::Delete { seq },
        };
        vec![ServerFrame::Ack { req, body }, ServerFrame::from(event)]
    }
}
