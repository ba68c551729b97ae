//! Subscriptions: what the app wants is kept apart from what is, and
//! reconciled one step at a time (join, back off, leave, forget), in any
//! connection state.

use super::vecmap::VecSet;

use crate::Instant;
use crate::ids::{ChannelId, Epoch, Seq, UserId};
use crate::wire::{Ack, ClientFrame, JoinAck, ReqId};

use super::Client;
use super::channel::{Channel, LocalTyping, Sub};
use super::delivery::keep_own_events;
use super::events::{ClientEvent, ConnectionState, ProtocolError, SendFailure, SubscribeError};
use super::inbox::Position;
use super::presence::PEOPLE_MAX;
use super::requests::{Reply, Request};
use super::timers::TimerKey;

impl Client {
    /// Asks for `channel` to be subscribed, now and after every reconnect,
    /// until `unsubscribe`. Works in any connection state; a channel that
    /// failed for good is tried again.
    pub fn subscribe(&mut self, now: Instant, channel: ChannelId) -> Result<(), SubscribeError> {
        self.subscribe_at(now, channel, None)
    }

    /// Like [`subscribe`](Client::subscribe), resuming from a position the
    /// app already has: every event of log `epoch` up to `last` was
    /// delivered before (by an earlier machine, rebuilt after a crash, or
    /// kept across a restart), so the join asks for exactly what follows
    /// and nothing is delivered twice. A channel the client already follows
    /// keeps its own position, which is at least as recent.
    pub fn subscribe_from(
        &mut self,
        now: Instant,
        channel: ChannelId,
        epoch: Epoch,
        last: Seq,
    ) -> Result<(), SubscribeError> {
        self.subscribe_at(now, channel, Some((epoch, last)))
    }

    fn subscribe_at(
        &mut self,
        now: Instant,
        channel: ChannelId,
        from: Option<(Epoch, Seq)>,
    ) -> Result<(), SubscribeError> {
        if self.state == ConnectionState::Closed {
            return Err(SubscribeError::Closed);
        }
        let wanted = self.channels.values().filter(|c| c.desired).count();
        match self.channels.get_mut(&channel) {
            Some(ch) => {
                ch.desired = true;
                if matches!(ch.sub, Sub::Failed(_)) {
                    self.set_sub(&channel, Sub::Idle);
                }
            }
            None => {
                if wanted >= self.config.max_channels {
                    return Err(SubscribeError::TooManyChannels(self.config.max_channels));
                }
                let mut ch = Channel::new();
                if let Some((epoch, last)) = from {
                    ch.inbox.resume(epoch, last);
                }
                self.channels.insert(channel.clone(), ch);
            }
        }
        self.reconcile(now, &channel);
        Ok(())
    }

    /// Asks for `channel` to be left. Its unsent outbox entries fail with
    /// [`SendFailure::Unsubscribed`]; its position is forgotten once left.
    pub fn unsubscribe(&mut self, now: Instant, channel: ChannelId) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        ch.desired = false;
        ch.local_typing = LocalTyping::Idle;
        self.timers.cancel(&TimerKey::LocalTyping(channel.clone()));
        // Entries already in flight keep their chance: their replies come
        // before the leave's. Whatever is left when the channel is
        // forgotten fails then.
        self.fail_channel_outbox(&channel, SendFailure::Unsubscribed, false);
        self.reconcile(now, &channel);
    }

    /// Moves the actual subscription one step toward the desired one.
    pub(super) fn reconcile(&mut self, now: Instant, channel: &ChannelId) {
        let Some(ch) = self.channels.get(channel) else {
            return;
        };
        match (ch.desired, ch.sub) {
            (true, Sub::Idle) if self.is_connected() => self.send_join(now, channel, 1),
            (false, Sub::Idle | Sub::Failed(_)) => self.forget(channel),
            (false, Sub::Backoff { .. }) => {
                self.timers.cancel(&TimerKey::JoinRetry(channel.clone()));
                if self.is_connected() {
                    // The failed attempt may have joined us (its reply was
                    // lost): leave, which is harmless if it did not (found by
                    // the lab: seed 1248, datagrams).
                    self.send_leave(now, channel);
                } else {
                    self.set_sub(channel, Sub::Idle);
                    self.forget(channel);
                }
            }
            (false, Sub::Joined) => self.send_leave(now, channel),
            _ => {}
        }
    }

    pub(super) fn reconcile_all(&mut self, now: Instant) {
        let names: Vec<ChannelId> = self.channels.keys().cloned().collect();
        for c in names {
            self.reconcile(now, &c);
        }
    }

    fn forget(&mut self, channel: &ChannelId) {
        self.channels.remove(channel);
        self.fail_channel_outbox(channel, SendFailure::Unsubscribed, true);
        self.timers.retain(|k| match k {
            TimerKey::JoinRetry(c) | TimerKey::LocalTyping(c) | TimerKey::RemoteTyping(c, _) => {
                c != channel
            }
            _ => true,
        });
    }

    pub(super) fn set_sub(&mut self, channel: &ChannelId, sub: Sub) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        let before = ch.sub.view();
        ch.sub = sub;
        if !matches!(sub, Sub::Joining { .. }) {
            ch.held.clear();
        }
        let after = sub.view();
        if before != after {
            self.emit(ClientEvent::Subscription {
                channel: channel.clone(),
                state: after,
            });
        }
    }

    pub(super) fn sub_of(&self, channel: &ChannelId) -> Option<Sub> {
        self.channels.get(channel).map(|c| c.sub)
    }

    /// Whether `channel` is joined on the live connection.
    pub(super) fn is_joined(&self, channel: &ChannelId) -> bool {
        self.sub_of(channel) == Some(Sub::Joined)
    }

    fn send_join(&mut self, now: Instant, channel: &ChannelId, attempt: u32) {
        let Some(req) = self.join_from_position(now, channel, Request::Join(channel.clone()))
        else {
            return;
        };
        self.set_sub(channel, Sub::Joining { attempt, req });
    }

    /// Sends `channel:join` from the channel's position (a join attempt or a
    /// refresh, as `request` says) with its timeout; `None` if unknown.
    pub(super) fn join_from_position(
        &mut self,
        now: Instant,
        channel: &ChannelId,
        request: Request,
    ) -> Option<ReqId> {
        let ch = self.channels.get(channel)?;
        let (epoch, since) = match ch.inbox.position() {
            Position::Fresh => (None, None),
            Position::At { epoch, last } => (Some(epoch), Some(last)),
        };
        let deadline = now.saturating_add(self.config.join_timeout);
        let req = self.requests.start(&mut self.timers, request, deadline);
        self.send_frame(ClientFrame::Join {
            req,
            channel_id: channel.clone(),
            epoch,
            since,
        });
        Some(req)
    }

    pub(super) fn send_leave(&mut self, now: Instant, channel: &ChannelId) {
        let req = self.start_leave(now, channel);
        self.clear_live_view(channel);
        self.set_sub(channel, Sub::Leaving { req });
    }

    /// Sends `channel:leave` with its timeout.
    pub(super) fn start_leave(&mut self, now: Instant, channel: &ChannelId) -> ReqId {
        let deadline = now.saturating_add(self.config.request_timeout);
        let req = self
            .requests
            .start(&mut self.timers, Request::Leave(channel.clone()), deadline);
        self.send_frame(ClientFrame::Leave {
            req,
            channel_id: channel.clone(),
        });
        req
    }

    /// Drops what is only valid while joined: members, typers, the history
    /// request in flight.
    pub(super) fn clear_live_view(&mut self, channel: &ChannelId) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        ch.members.clear();
        let typers: Vec<UserId> = std::mem::take(&mut ch.typing).into_keys().collect();
        let history = ch.history.take();
        if let Some(req) = history {
            self.requests.retire(&mut self.timers, req);
        }
        for user in typers {
            self.timers
                .cancel(&TimerKey::RemoteTyping(channel.clone(), user.clone()));
            self.emit(ClientEvent::Typing {
                channel: channel.clone(),
                user,
                active: false,
            });
        }
    }

    /// The connection is gone: nothing is joined any more.
    pub(super) fn reset_channels_offline(&mut self) {
        let names: Vec<ChannelId> = self.channels.keys().cloned().collect();
        for c in names {
            self.clear_live_view(&c);
            if let Some(ch) = self.channels.get_mut(&c) {
                ch.history = None;
                ch.refresh = None;
                ch.local_typing = LocalTyping::Idle;
                if !matches!(ch.sub, Sub::Failed(_)) {
                    self.set_sub(&c, Sub::Idle);
                }
            }
            if self.channels.get(&c).is_some_and(|ch| !ch.desired) {
                self.forget(&c);
            }
        }
    }

    pub(super) fn on_join_reply(
        &mut self,
        now: Instant,
        req: ReqId,
        channel: ChannelId,
        reply: Reply,
    ) {
        let Some(Sub::Joining {
            attempt,
            req: current,
        }) = self.sub_of(&channel)
        else {
            return;
        };
        if current != req {
            return;
        }
        match reply {
            Reply::Ack(Ack::Join(ack)) if ack.channel_id == channel => {
                self.on_joined(now, channel, ack);
            }
            Reply::Ack(Ack::Join(ack)) => {
                self.emit(ClientEvent::Protocol(ProtocolError::WrongChannel {
                    req,
                    expected: channel.clone(),
                    got: ack.channel_id,
                }));
                self.join_failed(now, &channel, attempt, true);
            }
            Reply::Ack(other) => {
                self.wrong_kind(req, &Request::Join(channel.clone()), &other);
                self.join_failed(now, &channel, attempt, true);
            }
            Reply::Nack(e) if e.retryable => self.join_failed(now, &channel, attempt, false),
            Reply::Nack(e) => {
                self.set_sub(&channel, Sub::Failed(e.code));
                let failure = SendFailure::SubscriptionFailed(e.code);
                self.fail_channel_outbox(&channel, failure, true);
                self.reconcile(now, &channel);
                self.pump(now);
            }
        }
    }

    /// A join attempt failed retryably: back off and try again, or leave if
    /// the app no longer wants the channel (the server may have joined us).
    pub(super) fn join_failed(
        &mut self,
        now: Instant,
        channel: &ChannelId,
        attempt: u32,
        maybe_joined: bool,
    ) {
        let desired = self.channels.get(channel).is_some_and(|c| c.desired);
        if !desired {
            if maybe_joined {
                self.send_leave(now, channel);
            } else {
                self.set_sub(channel, Sub::Idle);
                self.reconcile(now, channel);
            }
            return;
        }
        let delay = self.config.join_backoff.delay(attempt, &mut self.rng);
        self.timers.arm(
            TimerKey::JoinRetry(channel.clone()),
            now.saturating_add(delay),
        );
        self.set_sub(channel, Sub::Backoff { attempt });
    }

    pub(super) fn on_join_retry(&mut self, now: Instant, channel: ChannelId) {
        if let Some(Sub::Backoff { attempt }) = self.sub_of(&channel) {
            if self.is_connected() && self.channels.get(&channel).is_some_and(|c| c.desired) {
                self.send_join(now, &channel, attempt.saturating_add(1));
            } else {
                self.set_sub(&channel, Sub::Idle);
                self.reconcile(now, &channel);
            }
        }
    }

    pub(super) fn on_joined(&mut self, now: Instant, channel: ChannelId, ack: JoinAck) {
        let held = self
            .channels
            .get_mut(&channel)
            .map(|ch| std::mem::take(&mut ch.held))
            .unwrap_or_default();
        self.set_sub(&channel, Sub::Joined);
        let backlog = self.config.initial_backlog;
        let buffer_max = self.config.inbox_buffer_max;
        let mut out = std::mem::take(&mut self.inbox_out);
        let members: VecSet<UserId> = ack.members.into_iter().take(PEOPLE_MAX).collect();
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        ch.members = members.clone();
        let events = keep_own_events(&channel, ack.events, &mut self.events);
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        ch.inbox.on_join(
            ack.epoch,
            ack.head_seq,
            events,
            backlog,
            buffer_max,
            &mut out,
        );
        // Then the live events that came before the ack: those past its
        // head are next in line (found by the lab: seed 272, streams, an
        // append's completion handled before the join read's).
        for event in held {
            ch.inbox.ingest(event, buffer_max, &mut out);
        }
        let read = (ch.read_mark > ch.read_sent).then_some(ch.read_mark);
        self.emit(ClientEvent::Members {
            channel: channel.clone(),
            members: members.into_iter().collect(),
        });
        self.apply_inbox(now, &channel, out);
        if let Some(up_to) = read {
            self.send_read(now, &channel, up_to);
        }
        self.reconcile(now, &channel);
        self.pump(now);
    }

    pub(super) fn on_leave_reply(
        &mut self,
        now: Instant,
        req: ReqId,
        channel: ChannelId,
        reply: Reply,
    ) {
        if let Reply::Ack(ack) = &reply {
            if !matches!(ack, Ack::Leave) {
                self.wrong_kind(req, &Request::Leave(channel.clone()), ack);
            }
        }
        self.stray_leave_ended(now, &channel, req);
        self.left(now, &channel, req);
    }

    pub(super) fn left(&mut self, now: Instant, channel: &ChannelId, req: ReqId) {
        if self.sub_of(channel) == Some(Sub::Leaving { req }) {
            self.set_sub(channel, Sub::Idle);
            self.reconcile(now, channel);
            // Forgetting the channel failed its sends still in flight: their
            // window slots go to other channels now (found by the lab: seed
            // 2502, streams, where a full window of a left channel's sends
            // kept another channel's outbox waiting forever).
            self.pump(now);
        }
    }

    /// A join attempt's reply is overdue: the attempt may have joined us.
    pub(super) fn on_join_timeout(&mut self, now: Instant, channel: ChannelId, req: ReqId) {
        if let Some(Sub::Joining { attempt, req: r }) = self.sub_of(&channel) {
            if r == req {
                self.join_failed(now, &channel, attempt, true);
            }
        }
    }

    /// A leave's reply is overdue: the leave or its reply was lost. The
    /// server may still have us joined (and announce us present) for as
    /// long as the connection lives, so ask again: leaving is idempotent.
    /// Found by the lab (seed 2, datagrams).
    pub(super) fn on_leave_timeout(&mut self, now: Instant, channel: ChannelId, req: ReqId) {
        if self.sub_of(&channel) == Some(Sub::Leaving { req }) && self.is_connected() {
            self.send_leave(now, &channel);
        } else {
            self.left(now, &channel, req);
        }
    }
}
