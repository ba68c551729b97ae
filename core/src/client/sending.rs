//! The outbox at work: accepting sends, pumping them out in order within
//! the window, and turning replies into exactly one outcome each.

use crate::Instant;
use crate::ids::{ChannelId, ClientMsgId, MessageId};
use crate::wire::{Body, ClientFrame, ErrorCode, ReqId};

use super::Client;
use super::events::{ClientEvent, ConnectionState, EntryId, OpId, Outcome, SendError, SendFailure};
use super::outbox::{Command, EntryState, outcome_of};
use super::requests::{Reply, Request};
use super::timers::TimerKey;

impl Client {
    /// Queues a message for `channel` and returns its id at once: the app
    /// shows it as pending and later gets exactly one
    /// [`ClientEvent::Outcome`] for it. It goes out, in order, whenever the
    /// channel is subscribed, and is retried with the same id until stored.
    pub fn send(
        &mut self,
        now: Instant,
        channel: ChannelId,
        body: Body,
    ) -> Result<ClientMsgId, SendError> {
        self.check_accept(&channel)?;
        self.next_local += 1;
        let id = ClientMsgId::local(self.instance, self.next_local);
        self.outbox.push(
            channel,
            Command::Send {
                client_msg_id: id.clone(),
                body,
            },
        );
        self.pump(now);
        Ok(id)
    }

    /// Queues an edit of `message_id`; its outcome comes as
    /// [`ClientEvent::Outcome`] with [`EntryId::Op`].
    pub fn update(
        &mut self,
        now: Instant,
        channel: ChannelId,
        message_id: MessageId,
        body: Body,
    ) -> Result<OpId, SendError> {
        let op = self.next_op(&channel)?;
        self.outbox.push(
            channel,
            Command::Update {
                op,
                message_id,
                body,
            },
        );
        self.pump(now);
        Ok(op)
    }

    /// Queues a deletion of `message_id`; like [`Client::update`].
    pub fn delete(
        &mut self,
        now: Instant,
        channel: ChannelId,
        message_id: MessageId,
    ) -> Result<OpId, SendError> {
        let op = self.next_op(&channel)?;
        self.outbox
            .push(channel, Command::Delete { op, message_id });
        self.pump(now);
        Ok(op)
    }

    fn next_op(&mut self, channel: &ChannelId) -> Result<OpId, SendError> {
        self.check_accept(channel)?;
        self.next_local += 1;
        Ok(OpId::compose(self.instance, self.next_local))
    }

    fn check_accept(&self, channel: &ChannelId) -> Result<(), SendError> {
        if self.state == ConnectionState::Closed {
            return Err(SendError::Closed);
        }
        match self.channels.get(channel) {
            Some(c) if !c.desired => return Err(SendError::NotSubscribed(channel.clone())),
            None => return Err(SendError::NotSubscribed(channel.clone())),
            Some(c) => {
                if let super::channel::Sub::Failed(code) = c.sub {
                    return Err(SendError::SubscriptionFailed(channel.clone(), code));
                }
            }
        }
        if self.outbox.len() >= self.config.outbox_max {
            return Err(SendError::OutboxFull(self.config.outbox_max));
        }
        Ok(())
    }

    /// Sends pending entries of joined channels, oldest first, while the
    /// window has room.
    pub(super) fn pump(&mut self, now: Instant) {
        if !self.is_connected() || self.timers.is_armed(&TimerKey::OutboxPause) {
            return;
        }
        let mut room = self.window.saturating_sub(self.outbox.in_flight());
        let deadline = now.saturating_add(self.config.request_timeout);
        let mut frames = Vec::new();
        for entry in self.outbox.iter_mut() {
            if room == 0 {
                break;
            }
            if entry.state != EntryState::Pending
                || self
                    .channels
                    .get(&entry.channel)
                    .is_none_or(|c| c.sub != super::channel::Sub::Joined)
            {
                continue;
            }
            let request = Request::Outbox(entry.channel.clone(), entry.command.id());
            let req = self.requests.start(&mut self.timers, request, deadline);
            entry.state = EntryState::InFlight { req };
            frames.push(frame_for(req, &entry.channel, &entry.command));
            room -= 1;
        }
        for f in frames {
            self.send_frame(f);
        }
    }

    pub(super) fn on_outbox_reply(
        &mut self,
        now: Instant,
        req: ReqId,
        channel: ChannelId,
        id: EntryId,
        reply: Reply,
    ) {
        if !self.outbox.contains(&id) {
            return;
        }
        match reply {
            Reply::Ack(ack) => match outcome_of(&id, &ack) {
                Some(outcome) if self.window < self.config.send_window => {
                    self.window += 1;
                    self.resolve(now, channel, id, outcome);
                }
                Some(outcome) => self.resolve(now, channel, id, outcome),
                None => {
                    self.wrong_kind(req, &Request::Outbox(channel.clone(), id.clone()), &ack);
                    self.entry_failed(now, &id);
                }
            },
            Reply::Nack(e) if e.code == ErrorCode::NotJoined => {
                // The server lost our join: count it, then join again.
                self.entry_failed(now, &id);
                if self.is_joined(&channel) {
                    self.requeue_channel(&channel);
                    self.set_sub(&channel, super::channel::Sub::Idle);
                    self.reconcile(now, &channel);
                }
            }
            Reply::Nack(e) if e.retryable => {
                // The server refuses every later send of this channel until
                // this one comes again (its order gate): put them all back
                // in line so they go out again in send order after the pause.
                self.requeue_channel(&channel);
                self.entry_failed(now, &id);
                if let Some(entry) = self.outbox.get_mut(&id) {
                    let delay = self
                        .config
                        .send_backoff
                        .delay(entry.failures, &mut self.rng);
                    self.timers
                        .arm(TimerKey::OutboxPause, now.saturating_add(delay));
                }
            }
            Reply::Nack(e) => self.resolve(
                now,
                channel,
                id,
                Outcome::Failed(SendFailure::Refused {
                    code: e.code,
                    message: e.message,
                }),
            ),
        }
        self.pump(now);
    }

    /// A send timed out: count it against the entry, and put the whole
    /// channel's in-flight entries back in line so they go out again in order.
    pub(super) fn on_outbox_timeout(&mut self, now: Instant, channel: ChannelId, id: EntryId) {
        if !self.outbox.contains(&id) {
            return;
        }
        self.requeue_channel(&channel);
        self.entry_failed(now, &id);
        self.pump(now);
    }

    /// Puts the channel's in-flight entries back in line, retiring their
    /// requests so a late reply is recognised as late.
    fn requeue_channel(&mut self, channel: &ChannelId) {
        let reqs: Vec<ReqId> = self
            .outbox
            .iter()
            .filter(|e| e.channel == *channel)
            .filter_map(|e| match e.state {
                EntryState::InFlight { req } => Some(req),
                EntryState::Pending => None,
            })
            .collect();
        for req in reqs {
            self.requests.retire(&mut self.timers, req);
        }
        self.outbox.requeue_channel(channel);
    }

    /// Counts one failure; fails the entry when it has had too many,
    /// otherwise puts it back in line.
    fn entry_failed(&mut self, now: Instant, id: &EntryId) {
        let max = self.config.max_send_failures;
        let Some(entry) = self.outbox.get_mut(id) else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        let failures = entry.failures;
        let channel = entry.channel.clone();
        if failures >= max {
            self.resolve(
                now,
                channel,
                id.clone(),
                Outcome::Failed(SendFailure::Exhausted(failures)),
            );
        } else {
            entry.state = EntryState::Pending;
        }
    }

    /// Removes an entry and reports its one outcome. An attempt still in
    /// flight is retired, so its reply is recognised as late, and its window
    /// slot goes to the next pending entry at once: the broadcast of one's
    /// own message may resolve it before its ack, and that ack then finds
    /// nothing to do (found by the lab: seed 212, streams).
    pub(super) fn resolve(
        &mut self,
        now: Instant,
        channel: ChannelId,
        id: EntryId,
        outcome: Outcome,
    ) {
        let Some(entry) = self.outbox.remove(&id) else {
            return;
        };
        self.emit(ClientEvent::Outcome {
            channel,
            id,
            outcome,
        });
        if let EntryState::InFlight { req } = entry.state {
            self.requests.retire(&mut self.timers, req);
            self.pump(now);
        }
    }

    /// Fails the entries of `channel` (unsubscribed or refused for good):
    /// all of them, or only those not in flight.
    pub(super) fn fail_channel_outbox(
        &mut self,
        channel: &ChannelId,
        failure: SendFailure,
        in_flight_too: bool,
    ) {
        for entry in self.outbox.drain_channel(channel, in_flight_too) {
            if let EntryState::InFlight { req } = entry.state {
                self.requests.retire(&mut self.timers, req);
            }
            self.emit(ClientEvent::Outcome {
                channel: channel.clone(),
                id: entry.command.id(),
                outcome: Outcome::Failed(failure.clone()),
            });
        }
    }
}

fn frame_for(req: ReqId, channel: &ChannelId, command: &Command) -> ClientFrame {
    match command {
        Command::Send {
            client_msg_id,
            body,
        } => ClientFrame::Send {
            req,
            channel_id: channel.clone(),
            client_msg_id: client_msg_id.clone(),
            body: body.clone(),
        },
        Command::Update {
            message_id, body, ..
        } => ClientFrame::Update {
            req,
            channel_id: channel.clone(),
            message_id: message_id.clone(),
            body: body.clone(),
        },
        Command::Delete { message_id, .. } => ClientFrame::Delete {
            req,
            channel_id: channel.clone(),
            message_id: message_id.clone(),
        },
    }
}
