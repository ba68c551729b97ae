//! The machine's side of sharing a store with other processes
//! ([`Writers::Shared`]): hints and resyncs in, committed events through
//! the channel's cursor ([`tail`](super::tail)) out, gap reads issued.

use crate::Instant;
use crate::ids::{ChannelId, Seq};
use crate::server::ops::PendingOp;
use crate::server::tail::{CommitHint, Relay, SharedTail, Step, Then, Writers};
use crate::server::timers::TimerKey;
use crate::server::{AccessPolicy, Except, Server, ServerOutput};
use crate::store::{ReadFrom, StoreCommand, StoreError, StoreReply};
use crate::wire::{LogEvent, ServerFrame};

impl<P: AccessPolicy> Server<P> {
    /// Another process committed events of `hint.channel` (a wake-up, the
    /// events themselves are read from the store). Ignored for a channel
    /// without local members, and when the store is not shared.
    pub fn handle_hint(&mut self, now: Instant, hint: CommitHint) {
        self.tick(now);
        let Some(cfg) = self.shared().cloned() else {
            return;
        };
        let step = self.tails.hinted(&hint.channel, hint.last, &cfg, self.now);
        self.apply_step(&hint.channel, step);
    }

    /// Reads every tailed channel past its cursor and, with arbitrated
    /// presence, asks who is present in it: the safety net for lost hints
    /// and relays, to be called when the hint listener (re)connects and
    /// periodically. A no-op when the store is not shared.
    pub fn handle_resync(&mut self, now: Instant) {
        self.tick(now);
        if self.shared().is_none() {
            return;
        }
        let channels: Vec<ChannelId> = self.tails.channels().cloned().collect();
        let arbitrated = self.arbitrated();
        for channel in channels {
            if let Then::Read(after) = self.tails.resync(&channel) {
                self.issue_tail_read(&channel, after);
            }
            if arbitrated {
                self.ask_members(&channel);
            }
        }
    }

    /// Typing, a read receipt or a presence change of another process's
    /// members: relayed to this process's members of the channel, if it
    /// has any (a presence change only when it is news here). Ignored
    /// when the store is not shared.
    pub fn handle_relay(&mut self, now: Instant, relay: Relay) {
        self.tick(now);
        if self.shared().is_none() || !self.presence.has_conns(relay.channel()) {
            return;
        }
        let news = match &relay {
            Relay::PresenceJoin(c) => self.presence.relayed(&c.channel_id, &c.user_id, true),
            Relay::PresenceLeave(c) => self.presence.relayed(&c.channel_id, &c.user_id, false),
            Relay::Typing(_) | Relay::Read(_) => true,
        };
        if news {
            self.broadcast_relay(relay);
        }
    }

    /// Broadcasts typing or a receipt to the local room and, when the
    /// store is shared, to the other processes.
    pub(super) fn share(&mut self, relay: Relay) {
        if self.shared().is_some() {
            self.outputs.push_back(ServerOutput::Relay(relay.clone()));
        }
        self.broadcast_relay(relay);
    }

    fn broadcast_relay(&mut self, relay: Relay) {
        let channel = relay.channel().clone();
        let (frame, except) = match relay {
            Relay::Typing(notice) => {
                let except = Except::User(notice.user_id.clone());
                (ServerFrame::Typing(notice), except)
            }
            Relay::Read(receipt) => (ServerFrame::Read(receipt), Except::Nobody),
            Relay::PresenceJoin(change) => {
                let except = Except::User(change.user_id.clone());
                (ServerFrame::PresenceJoin(change), except)
            }
            Relay::PresenceLeave(change) => (ServerFrame::PresenceLeave(change), Except::Nobody),
        };
        self.broadcast(&channel, frame, except);
    }

    /// The settings of a shared store, `None` when this machine writes alone.
    pub(super) fn shared(&self) -> Option<&SharedTail> {
        match &self.config.writers {
            Writers::Alone => None,
            Writers::Shared(cfg) => Some(cfg),
        }
    }

    /// This process committed `event`: broadcast at once when it writes
    /// alone, else through the channel's cursor.
    pub(super) fn deliver_committed(&mut self, channel: &ChannelId, event: LogEvent) {
        let Some(cfg) = self.shared().cloned() else {
            self.broadcast(channel, ServerFrame::from(event), Except::Nobody);
            return;
        };
        let step = self.tails.offer(channel, event, &cfg, self.now);
        self.apply_step(channel, step);
    }

    /// Announces this process's commits `first..=last` of `channel` to the
    /// others (shared stores only).
    pub(super) fn announce(&mut self, channel: &ChannelId, first: Seq, last: Seq) {
        if self.shared().is_some() {
            self.outputs.push_back(ServerOutput::Committed(CommitHint {
                channel: channel.clone(),
                first,
                last,
            }));
        }
    }

    /// A join read found `channel` at `epoch`, `head`.
    pub(super) fn tail_learned(
        &mut self,
        channel: &ChannelId,
        epoch: crate::ids::Epoch,
        head: Seq,
    ) {
        let Some(cfg) = self.shared().cloned() else {
            return;
        };
        let step = self.tails.learned(channel, epoch, head, &cfg, self.now);
        self.apply_step(channel, step);
    }

    /// True when `channel`'s cursor was set past `head` of `epoch` without
    /// broadcasting what it skipped (a join read, a reset): a join that
    /// read `head` would miss those events.
    pub(super) fn tail_jumped_past(
        &self,
        channel: &ChannelId,
        epoch: crate::ids::Epoch,
        head: Seq,
    ) -> bool {
        self.tails.jumped_past(channel, epoch, head)
    }

    /// `channel`'s gap timer armed for `at` fired.
    pub(super) fn tail_timer(&mut self, channel: &ChannelId, at: Instant) {
        let Some(cfg) = self.shared().cloned() else {
            return;
        };
        let step = self.tails.timer(channel, at, &cfg, self.now);
        self.apply_step(channel, step);
    }

    /// A gap read of `channel` completed.
    pub(super) fn complete_tail_read(
        &mut self,
        channel: &ChannelId,
        op: crate::store::StoreOpId,
        result: Result<StoreReply, StoreError>,
    ) {
        let Some(cfg) = self.shared().cloned() else {
            return;
        };
        let page = match result {
            Ok(StoreReply::Events(page)) => Some(page),
            Ok(other) => {
                tracing::warn!(?other, "store reply does not match a gap read");
                None
            }
            Err(error) => {
                tracing::debug!(%channel, %error, "gap read failed: retried after the wait");
                None
            }
        };
        let step = self.tails.read(channel, op, page, &cfg, self.now);
        self.apply_step(channel, step);
        self.start_queued_tail_reads();
    }

    /// `channel` may have lost its last local member: stop tailing it.
    pub(super) fn tail_maybe_close(&mut self, channel: &ChannelId) {
        if self.presence.has_conns(channel) {
            return;
        }
        if let Some(at) = self.tails.close(channel) {
            self.timers.cancel(at, TimerKey::TailGap(channel.clone()));
        }
    }

    /// `channel` has a local member: tail it (shared stores only).
    pub(super) fn tail_open(&mut self, channel: &ChannelId) {
        if self.shared().is_some() {
            self.tails.open(channel);
        }
    }

    fn apply_step(&mut self, channel: &ChannelId, step: Step) {
        for event in step.deliver {
            self.broadcast(channel, ServerFrame::from(event), Except::Nobody);
        }
        match step.then {
            Then::Nothing => {}
            Then::Read(after) => self.issue_tail_read(channel, after),
            Then::Arm(at) => self.timers.arm(at, TimerKey::TailGap(channel.clone())),
        }
    }

    /// Reads `channel` past `after` when a slot is free, else queues it.
    fn issue_tail_read(&mut self, channel: &ChannelId, after: Seq) {
        let max = self.shared().map_or(1, |cfg| cfg.reads_max);
        if !self.tails.slot_free(max) {
            if let Some(at) = self.tails.queue(channel) {
                self.timers.cancel(at, TimerKey::TailGap(channel.clone()));
            }
            return;
        }
        self.start_tail_read(channel, after);
    }

    /// Starts queued reads while slots are free.
    fn start_queued_tail_reads(&mut self) {
        let max = self.shared().map_or(1, |cfg| cfg.reads_max);
        while self.tails.slot_free(max) {
            let Some((channel, after)) = self.tails.next_queued() else {
                return;
            };
            self.start_tail_read(&channel, after);
        }
    }

    fn start_tail_read(&mut self, channel: &ChannelId, after: Seq) {
        let cmd = StoreCommand::Read {
            channel: channel.clone(),
            from: ReadFrom::After(after),
            limit: self.config.join_events_max,
            max_bytes: self.config.reply_bytes_max,
        };
        let op = self.issue(
            cmd,
            PendingOp::Tail {
                channel: channel.clone(),
            },
        );
        if let Some(at) = self.tails.reading(channel, op) {
            self.timers.cancel(at, TimerKey::TailGap(channel.clone()));
        }
    }
}
