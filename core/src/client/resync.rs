//! Resync: on transports that lose frames, every joined channel is
//! re-joined from its position now and then (an idempotent refresh), so a
//! lost event or presence change cannot go unnoticed for long.

use crate::Instant;
use crate::ids::ChannelId;
use crate::wire::{Ack, ReqId};

use super::Client;
use super::channel::{Sub, end_request};
use super::requests::{Reply, Request};
use super::timers::TimerKey;

impl Client {
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
        // Answered: the next refresh may go, whatever the reply (found by
        // the lab: seed 904, datagrams, a refresh answered while the channel
        // was re-joining stayed "in flight" forever).
        if !end_request(&mut ch.refresh, req) {
            return;
        }
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

    /// A refresh's reply is overdue: the next resync may send another.
    pub(super) fn on_refresh_timeout(&mut self, channel: &ChannelId, req: ReqId) {
        if let Some(ch) = self.channels.get_mut(channel) {
            end_request(&mut ch.refresh, req);
        }
    }
}
