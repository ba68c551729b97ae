//! What arrives: replies matched to their requests, live events, presence
//! and typing, and unwanted channels' events answered with a leave.

use lockstep_core::Instant;
use lockstep_core::client::{ClientEvent, CloseReason, Outcome, SendFailure, Transmit};
use lockstep_core::ids::ChannelId;
use lockstep_core::wire::{Ack, ClientFrame, ErrorBody, ErrorCode, ReqId, ServerFrame};

use super::channel::{Channel, Sub};
use super::outbox::Settled;
use super::{Link, PlainClient};

impl PlainClient {
    pub(super) fn on_frame(&mut self, now: Instant, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome { user_id, .. } => {
                let Link::Opening { generation, .. } = self.link else {
                    return;
                };
                self.user = Some(user_id);
                self.link = Link::Open {
                    generation,
                    ping_at: now.saturating_add(self.config.ping_interval),
                    dead_at: None,
                };
                let names: Vec<ChannelId> = self.channels.keys().cloned().collect();
                for name in names {
                    self.reconcile(now, &name);
                }
            }
            ServerFrame::Refused { error } => {
                if let Link::Opening { generation, .. } = self.link {
                    self.transmits.push_back(Transmit::Close {
                        generation,
                        reason: CloseReason::Refused,
                    });
                    if error.retryable {
                        self.lost(now);
                    } else {
                        self.went_offline(now);
                        self.link = Link::Refused;
                    }
                }
            }
            ServerFrame::Ack { req, body } => self.on_reply(now, req, Ok(body)),
            ServerFrame::Nack { req, error } => self.on_reply(now, req, Err(error)),
            ServerFrame::MessageNew(m) => {
                let channel = m.channel_id.clone();
                if self.user.as_ref() == Some(&m.author_id) {
                    if let Some(id) = self.outbox.confirm(&channel, &m.client_msg_id) {
                        self.events.push_back(ClientEvent::Outcome {
                            channel: channel.clone(),
                            id,
                            outcome: Outcome::Sent {
                                seq: m.seq,
                                message_id: m.message_id.clone(),
                            },
                        });
                    }
                }
                self.live(now, channel, lockstep_core::wire::LogEvent::Message(m));
            }
            ServerFrame::MessageUpdated(u) => {
                let channel = u.channel_id.clone();
                self.live(now, channel, lockstep_core::wire::LogEvent::Updated(u));
            }
            ServerFrame::MessageDeleted(d) => {
                let channel = d.channel_id.clone();
                self.live(now, channel, lockstep_core::wire::LogEvent::Deleted(d));
            }
            ServerFrame::PresenceJoin(p) | ServerFrame::PresenceLeave(p)
                if !self.wanted(now, &p.channel_id) => {}
            ServerFrame::PresenceJoin(p) => self.with_channel(&p.channel_id.clone(), |ch, out| {
                ch.presence(p.user_id, true, out);
            }),
            ServerFrame::PresenceLeave(p) => self.with_channel(&p.channel_id.clone(), |ch, out| {
                ch.presence(p.user_id, false, out);
            }),
            ServerFrame::Typing(t) => {
                if self.wanted(now, &t.channel_id) {
                    let until = now.saturating_add(self.config.typing_ttl);
                    self.with_channel(&t.channel_id.clone(), |ch, out| {
                        ch.typing(t.user_id, t.active, until, out);
                    });
                }
            }
            ServerFrame::Read(r) => {
                self.wanted(now, &r.channel_id);
            }
            ServerFrame::Pong { .. } => {}
        }
    }

    pub(super) fn with_channel(
        &mut self,
        name: &ChannelId,
        f: impl FnOnce(&mut Channel, &mut Vec<ClientEvent>),
    ) {
        if let Some(ch) = self.channels.get_mut(name) {
            let mut out = Vec::new();
            f(ch, &mut out);
            self.events.extend(out);
        }
    }

    /// Whether events of `channel` are wanted; an unwanted channel's events
    /// (a leave that has not landed yet, or was lost) are answered with a
    /// leave, at most once per join timeout. Not while this app's own join
    /// or leave of it is in flight: the join's answer decides (a leave
    /// follows it if the channel is still unwanted). A stray leave sent
    /// behind a join that the app then wanted again would undo that join
    /// after its ack (lab `--servers 3`, seed 1537).
    pub(super) fn wanted(&mut self, now: Instant, channel: &ChannelId) -> bool {
        if self.channels.get(channel).is_some_and(|c| c.desired) {
            return true;
        }
        let leaving = self
            .channels
            .get(channel)
            .is_some_and(|c| c.leave.is_some() || c.join.is_some());
        let quiet = self.strays.get(channel).is_some_and(|until| *until > now);
        if !leaving && !quiet && self.is_connected() {
            self.strays.insert(
                channel.clone(),
                now.saturating_add(self.config.join_timeout),
            );
            let req = self.req();
            self.frame(ClientFrame::Leave {
                req,
                channel_id: channel.clone(),
            });
        }
        false
    }

    pub(super) fn live(
        &mut self,
        now: Instant,
        channel: ChannelId,
        event: lockstep_core::wire::LogEvent,
    ) {
        if !self.wanted(now, &channel) {
            return;
        }
        let max = self.config.buffer_max;
        self.with_channel(&channel, |ch, out| ch.live(event, max, out));
        self.fill(now, &channel);
    }

    pub(super) fn on_reply(&mut self, now: Instant, req: ReqId, reply: Result<Ack, ErrorBody>) {
        let settled = self
            .outbox
            .on_reply(now, &self.config, &mut self.rng, req, reply.as_ref());
        match settled {
            Some(Settled::Done(channel, id, outcome)) => {
                self.events.push_back(ClientEvent::Outcome {
                    channel,
                    id,
                    outcome,
                });
                return;
            }
            Some(Settled::Rejoin(channel)) => {
                let mut out = Vec::new();
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.join = None;
                    ch.set_sub(Sub::Idle, &mut out);
                }
                self.events.extend(out);
                self.reconcile(now, &channel);
                return;
            }
            Some(Settled::Later) => return,
            None => {}
        }
        let Some(name) = self
            .channels
            .iter()
            .find(|(_, c)| {
                [c.join, c.leave, c.fill]
                    .iter()
                    .any(|a| a.is_some_and(|(r, _)| r == req))
            })
            .map(|(n, _)| n.clone())
        else {
            // A receipt, a stray leave, or a reply that came too late.
            return;
        };
        let Some(ch) = self.channels.get_mut(&name) else {
            return;
        };
        let mut out = Vec::new();
        let retry = now.saturating_add(std::time::Duration::from_millis(
            self.config.resend_backoff_ms * 2,
        ));
        if ch.join.is_some_and(|(r, _)| r == req) {
            ch.join = None;
            match reply {
                Ok(Ack::Join(ack)) if ack.channel_id == name => {
                    ch.joined(ack, &mut out);
                    ch.resync_at = self.config.resync_interval.map(|d| now.saturating_add(d));
                }
                Err(e) if e.code == ErrorCode::Forbidden => {
                    ch.maybe_joined = false;
                    ch.set_sub(Sub::Failed(e.code), &mut out);
                    for id in self.outbox.drain_channel(&name) {
                        out.push(ClientEvent::Outcome {
                            channel: name.clone(),
                            id,
                            outcome: Outcome::Failed(SendFailure::SubscriptionFailed(e.code)),
                        });
                    }
                }
                // Rate limited, unavailable, a stale join (`invalid`): later.
                _ => {
                    if ch.sub != Sub::Joined {
                        // Refused: the server undid whatever it had begun.
                        ch.maybe_joined = false;
                    }
                    ch.join_retry_at = Some(retry);
                    if ch.sub == Sub::Joining {
                        ch.set_sub(Sub::Idle, &mut out);
                    }
                }
            }
        } else if ch.leave.is_some_and(|(r, _)| r == req) {
            ch.leave = None;
            if let Ok(Ack::Leave) = reply {
                ch.maybe_joined = false;
                ch.set_sub(Sub::Idle, &mut out);
            }
        } else {
            match reply {
                Ok(Ack::History(page)) if page.channel_id == name => ch.paged(page, &mut out),
                Err(e) if e.code == ErrorCode::NotJoined => {
                    ch.fill = None;
                    ch.set_sub(Sub::Idle, &mut out);
                }
                _ => {
                    ch.fill = None;
                    ch.fill_retry_at = Some(retry);
                }
            }
        }
        self.events.extend(out);
        self.reconcile(now, &name);
    }
}
