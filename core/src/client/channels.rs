//! Subscriptions (desired vs actual, reconciled) and the inbound log stream.

use std::collections::BTreeSet;

use crate::Instant;
use crate::ids::{ChannelId, Epoch, Seq, UserId};
use crate::wire::{Ack, ClientFrame, JoinAck, LogEvent, ReqId};

use super::channel::{Channel, LocalTyping, Sub};
use super::events::{
    ClientEvent, ConnectionState, EntryId, Outcome, ProtocolError, SendFailure, SubscribeError,
};
use super::frames::Reply;
use super::inbox::{InboxOut, Position};
use super::requests::Request;
use super::timers::TimerKey;
use super::{Client, STRAYS_MAX, Stray};

/// Most users tracked per channel in each of the member, typing and
/// receipt views, so a hostile server cannot grow them without bound.
pub(super) const PEOPLE_MAX: usize = 10_000;

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
        let after = sub.view();
        if before != after {
            self.emit(ClientEvent::Subscription {
                channel: channel.clone(),
                state: after,
            });
        }
    }

    fn sub_of(&self, channel: &ChannelId) -> Option<Sub> {
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
    fn join_from_position(
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
        let req = self.requests.start(request);
        self.send_frame(ClientFrame::Join {
            req,
            channel_id: channel.clone(),
            epoch,
            since,
        });
        self.timers.arm(
            TimerKey::Request(req),
            now.saturating_add(self.config.join_timeout),
        );
        Some(req)
    }

    fn send_leave(&mut self, now: Instant, channel: &ChannelId) {
        let req = self.requests.start(Request::Leave(channel.clone()));
        self.send_frame(ClientFrame::Leave {
            req,
            channel_id: channel.clone(),
        });
        self.timers.arm(
            TimerKey::Request(req),
            now.saturating_add(self.config.request_timeout),
        );
        self.clear_live_view(channel);
        self.set_sub(channel, Sub::Leaving { req });
    }

    /// Drops what is only valid while joined: members, typers, the history
    /// request in flight.
    fn clear_live_view(&mut self, channel: &ChannelId) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        ch.members.clear();
        let typers: Vec<UserId> = std::mem::take(&mut ch.typing).into_keys().collect();
        let history = ch.history.take();
        if let Some(req) = history {
            self.requests.retire(req);
            self.timers.cancel(&TimerKey::Request(req));
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
    fn join_failed(&mut self, now: Instant, channel: &ChannelId, attempt: u32, maybe_joined: bool) {
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

    fn on_joined(&mut self, now: Instant, channel: ChannelId, ack: JoinAck) {
        self.set_sub(&channel, Sub::Joined);
        let backlog = self.config.initial_backlog;
        let buffer_max = self.config.inbox_buffer_max;
        let mut out = Vec::new();
        let members: BTreeSet<UserId> = ack.members.into_iter().take(PEOPLE_MAX).collect();
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
        if self.strays.get(&channel) == Some(&Stray::Leaving(req)) {
            self.strays.insert(channel.clone(), Stray::Asked(now));
        }
        self.left(now, &channel, req);
    }

    fn left(&mut self, now: Instant, channel: &ChannelId, req: ReqId) {
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

    /// Hands the inbox's output to the app, reconciling our own messages
    /// with the outbox, then asks for history if a gap remains.
    fn apply_inbox(&mut self, now: Instant, channel: &ChannelId, out: Vec<InboxOut>) {
        for o in out {
            match o {
                InboxOut::Deliver(event) => self.deliver(now, channel, event),
                InboxOut::Truncated { from, to } => self.emit(ClientEvent::Truncated {
                    channel: channel.clone(),
                    from,
                    to,
                }),
                InboxOut::Reset(epoch) => self.emit(ClientEvent::Reset {
                    channel: channel.clone(),
                    epoch,
                }),
            }
        }
        self.ensure_history(now, channel);
    }

    fn deliver(&mut self, now: Instant, channel: &ChannelId, event: LogEvent) {
        if let LogEvent::Message(m) = &event {
            let mine = self.user_id() == Some(&m.author_id);
            let id = EntryId::Message(m.client_msg_id.clone());
            if mine && self.outbox.contains(&id) {
                let outcome = Outcome::Sent {
                    seq: m.seq,
                    message_id: m.message_id.clone(),
                };
                self.resolve(now, channel.clone(), id, outcome);
            }
        }
        self.emit(ClientEvent::Log {
            channel: channel.clone(),
            event,
        });
    }

    pub(super) fn ensure_history(&mut self, now: Instant, channel: &ChannelId) {
        let page = self.config.history_page;
        let Some(ch) = self.channels.get(channel) else {
            return;
        };
        if ch.sub != Sub::Joined
            || ch.history.is_some()
            || !ch.inbox.has_gap()
            || self
                .timers
                .is_armed(&TimerKey::HistoryRetry(channel.clone()))
        {
            return;
        }
        let after = ch.inbox.last();
        let req = self.requests.start(Request::History(channel.clone()));
        self.send_frame(ClientFrame::History {
            req,
            channel_id: channel.clone(),
            after: Some(after),
            limit: Some(page),
        });
        self.timers.arm(
            TimerKey::Request(req),
            now.saturating_add(self.config.request_timeout),
        );
        if let Some(ch) = self.channels.get_mut(channel) {
            ch.history = Some(req);
        }
    }

    pub(super) fn on_history_reply(
        &mut self,
        now: Instant,
        req: ReqId,
        channel: ChannelId,
        reply: Reply,
    ) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        if ch.history != Some(req) {
            return;
        }
        ch.history = None;
        match reply {
            Reply::Ack(Ack::History(mut page)) if page.channel_id == channel => {
                page.events = keep_own_events(&channel, page.events, &mut self.events);
                let Some(ch) = self.channels.get_mut(&channel) else {
                    return;
                };
                let before = ch.inbox.last();
                let mut out = Vec::new();
                ch.inbox.on_history(
                    page,
                    self.config.initial_backlog,
                    self.config.inbox_buffer_max,
                    &mut out,
                );
                if ch.inbox.last() == before && ch.inbox.has_gap() {
                    // A stale page (read before the missing events were
                    // committed) or a peer that cannot fill the hole: ask
                    // again later, not at once, so nothing spins.
                    self.retry_history_later(now, &channel);
                }
                self.apply_inbox(now, &channel, out);
            }
            Reply::Ack(Ack::History(page)) => {
                self.emit(ClientEvent::Protocol(ProtocolError::WrongChannel {
                    req,
                    expected: channel,
                    got: page.channel_id,
                }));
            }
            Reply::Ack(other) => self.wrong_kind(req, &Request::History(channel), &other),
            Reply::Nack(e) => {
                // Ask again later; a quiet channel has no next event to
                // trigger it (found by the lab: seed 272, mixed transports,
                // a store failure refused the backlog read).
                tracing::debug!(code = %e.code, "history refused; retrying later");
                self.retry_history_later(now, &channel);
            }
        }
    }

    /// Asks for a channel's missing events again after a jittered pause.
    fn retry_history_later(&mut self, now: Instant, channel: &ChannelId) {
        let delay = self.config.join_backoff.delay(1, &mut self.rng);
        self.timers.arm(
            TimerKey::HistoryRetry(channel.clone()),
            now.saturating_add(delay),
        );
    }

    pub(super) fn on_live_event(&mut self, now: Instant, event: LogEvent) {
        let channel = event.channel_id().clone();
        if !self.known_channel(&channel) || !self.is_joined(&channel) {
            return;
        }
        let buffer_max = self.config.inbox_buffer_max;
        let mut out = Vec::new();
        if let Some(ch) = self.channels.get_mut(&channel) {
            #[cfg(feature = "sabotage")]
            if sabotaged!(self.config, InboxSkipsGapCheck) {
                ch.inbox.skip_gap_before(event.seq());
            }
            ch.inbox.ingest(event, buffer_max, &mut out);
        }
        self.apply_inbox(now, &channel, out);
    }

    /// Whether the client ever asked for `channel`; reports it if not.
    pub(super) fn known_channel(&mut self, channel: &ChannelId) -> bool {
        if self.channels.contains_key(channel) {
            return true;
        }
        self.emit(ClientEvent::Protocol(ProtocolError::UnknownChannel(
            channel.clone(),
        )));
        if self.strays.len() < STRAYS_MAX {
            self.strays.entry(channel.clone()).or_insert(Stray::Seen);
        }
        false
    }

    /// The server sends events of channels we do not want: a join that
    /// arrived after our leave (a datagram delayed or duplicated), say. Ask
    /// it to leave, once per channel at a time, so it stops announcing us
    /// present there. Found by the lab (seed 157, datagrams).
    pub(super) fn leave_strays(&mut self, now: Instant) {
        let quiet = self.config.join_timeout;
        self.strays.retain(|_, s| match s {
            Stray::Asked(at) => now.saturating_since(*at) < quiet * 12,
            _ => true,
        });
        let due: Vec<ChannelId> = self
            .strays
            .iter()
            .filter(|(_, s)| match s {
                Stray::Seen => true,
                Stray::Leaving(_) => false,
                Stray::Asked(at) => now.saturating_since(*at) >= quiet,
            })
            .map(|(ch, _)| ch.clone())
            .collect();
        for channel in due {
            if self.channels.contains_key(&channel) || !self.is_connected() {
                self.strays.remove(&channel);
                continue;
            }
            let req = self.requests.start(Request::Leave(channel.clone()));
            self.send_frame(ClientFrame::Leave {
                req,
                channel_id: channel.clone(),
            });
            self.timers.arm(
                TimerKey::Request(req),
                now.saturating_add(self.config.request_timeout),
            );
            self.strays.insert(channel, Stray::Leaving(req));
        }
    }

    /// A request's reply is overdue: abandon it and recover.
    pub(super) fn on_request_timeout(&mut self, now: Instant, req: ReqId) {
        let Some(request) = self.requests.retire(req) else {
            return;
        };
        tracing::debug!(?req, kind = request.kind(), "request timed out");
        match request {
            Request::Join(channel) => {
                if let Some(Sub::Joining { attempt, req: r }) = self.sub_of(&channel) {
                    if r == req {
                        self.join_failed(now, &channel, attempt, true);
                    }
                }
            }
            Request::Leave(channel) if self.strays.get(&channel) == Some(&Stray::Leaving(req)) => {
                // A stray leave timed out: a later stray event asks again.
                self.strays.insert(channel, Stray::Asked(now));
            }
            Request::Leave(channel) => {
                // The leave or its reply was lost. The server may still have
                // us joined (and announce us present) for as long as the
                // connection lives, so ask again: leaving is idempotent.
                // Found by the lab (seed 2, datagrams).
                if self.sub_of(&channel) == Some(Sub::Leaving { req }) && self.is_connected() {
                    self.send_leave(now, &channel);
                } else {
                    self.left(now, &channel, req);
                }
            }
            Request::Outbox(channel, id) => self.on_outbox_timeout(now, channel, id),
            Request::History(channel) => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    if ch.history == Some(req) {
                        ch.history = None;
                    }
                }
                self.ensure_history(now, &channel);
            }
            Request::Read(..) => {}
            Request::Refresh(channel) => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    if ch.refresh == Some(req) {
                        ch.refresh = None;
                    }
                }
            }
        }
    }

    /// The resync timer fired: re-join every joined channel from its
    /// position, unless a refresh is already in flight, and re-arm.
    pub(super) fn on_resync_due(&mut self, now: Instant) {
        let Some(every) = self.config.resync_interval else {
            return;
        };
        if !self.is_connected() {
            return;
        }
        self.timers.arm(TimerKey::Resync, now.saturating_add(every));
        let due: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, c)| c.sub == Sub::Joined && c.refresh.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        for channel in due {
            let req = self.join_from_position(now, &channel, Request::Refresh(channel.clone()));
            if let Some(ch) = self.channels.get_mut(&channel) {
                ch.refresh = req;
            }
        }
    }

    /// A refresh came back: take its member list and the events it carries,
    /// as a re-join would, without touching the subscription state.
    pub(super) fn on_refresh_reply(
        &mut self,
        now: Instant,
        req: ReqId,
        channel: ChannelId,
        reply: Reply,
    ) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        if ch.refresh != Some(req) {
            return;
        }
        // Answered: the next refresh may go, whatever the reply (found by
        // the lab: seed 904, datagrams, a refresh answered while the channel
        // was re-joining stayed "in flight" forever).
        ch.refresh = None;
        if ch.sub != Sub::Joined {
            return;
        }
        match reply {
            Reply::Ack(Ack::Join(ack)) if ack.channel_id == channel => {
                self.on_joined(now, channel, ack);
            }
            Reply::Ack(other) => {
                self.wrong_kind(req, &Request::Refresh(channel), &other);
            }
            Reply::Nack(e) => {
                tracing::debug!(code = %e.code, "refresh refused; the next one retries");
            }
        }
    }
}

/// Drops the events of a join or history reply that belong to another
/// channel, reporting each: a peer must not be able to slip one channel's
/// events into another's stream (found by fuzzing: the `client` target).
fn keep_own_events(
    channel: &ChannelId,
    events: Vec<LogEvent>,
    out: &mut std::collections::VecDeque<ClientEvent>,
) -> Vec<LogEvent> {
    let (own, foreign): (Vec<_>, Vec<_>) =
        events.into_iter().partition(|e| e.channel_id() == channel);
    for _ in foreign {
        out.push_back(ClientEvent::Protocol(ProtocolError::BadEvent {
            channel: channel.clone(),
            detail: "a reply carried an event of another channel",
        }));
    }
    own
}
