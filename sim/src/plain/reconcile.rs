//! Bringing each channel toward what the app wants (join from the
//! position, leave, page the gaps in) and sending what the outbox has due.

use lockstep_core::Instant;
use lockstep_core::client::ClientEvent;
use lockstep_core::ids::ChannelId;
use lockstep_core::wire::{ClientFrame, ReqId};

use super::PlainClient;
use super::channel::Sub;

impl PlainClient {
    /// Brings one channel toward what the app wants: join it (from its
    /// position) when wanted and connected, leave it when not, page in
    /// what is missing, forget it once left.
    pub(super) fn reconcile(&mut self, now: Instant, name: &ChannelId) {
        let connected = self.is_connected();
        let Some(ch) = self.channels.get(name) else {
            return;
        };
        let (desired, sub, busy) = (ch.desired, ch.sub, ch.join.is_some() || ch.leave.is_some());
        if !connected || busy {
            if !desired && !connected {
                self.forget(name);
            }
            return;
        }
        match (desired, sub) {
            // Wanted again (a leave may or may not have landed), or a join
            // that failed: join, once its retry is due.
            (true, Sub::Idle | Sub::Joining | Sub::Leaving)
                if ch.join_retry_at.is_none_or(|at| at <= now) =>
            {
                self.send_join(now, name);
            }
            (true, Sub::Joined) => {
                if ch.join_retry_at.is_some_and(|at| at <= now) {
                    // A resync: join again from the position, still joined.
                    self.send_join(now, name);
                } else {
                    self.fill(now, name);
                }
            }
            (false, _) if ch.maybe_joined => {
                let req = self.req();
                let deadline = now.saturating_add(self.config.request_timeout);
                let mut out = Vec::new();
                if let Some(ch) = self.channels.get_mut(name) {
                    ch.leave = Some((req, deadline));
                    ch.fill = None;
                    ch.set_sub(Sub::Leaving, &mut out);
                }
                self.events.extend(out);
                self.frame(ClientFrame::Leave {
                    req,
                    channel_id: name.clone(),
                });
            }
            (false, _) => self.forget(name),
            _ => {}
        }
    }

    pub(super) fn send_join(&mut self, now: Instant, name: &ChannelId) {
        let req = self.req();
        let deadline = now.saturating_add(self.config.join_timeout);
        let mut out = Vec::new();
        let Some(ch) = self.channels.get_mut(name) else {
            return;
        };
        ch.join = Some((req, deadline));
        ch.maybe_joined = true;
        ch.join_retry_at = None;
        ch.join_attempt = ch.join_attempt.saturating_add(1);
        if ch.sub != Sub::Joined {
            ch.set_sub(Sub::Joining, &mut out);
        }
        let position = ch.position();
        self.events.extend(out);
        self.frame(ClientFrame::Join {
            req,
            channel_id: name.clone(),
            epoch: position.map(|(e, _)| e),
            since: position.map(|(_, s)| s),
        });
    }

    /// Asks the next history page when the channel has a gap.
    pub(super) fn fill(&mut self, now: Instant, name: &ChannelId) {
        let Some(after) = self.channels.get(name).and_then(|c| c.gap(now)) else {
            return;
        };
        let req = self.req();
        let deadline = now.saturating_add(self.config.request_timeout);
        if let Some(ch) = self.channels.get_mut(name) {
            ch.fill = Some((req, deadline));
            ch.fill_retry_at = None;
        }
        self.frame(ClientFrame::History {
            req,
            channel_id: name.clone(),
            after: Some(after),
            limit: Some(self.config.history_page),
        });
    }

    /// The app left the channel and the leave is done: it is forgotten.
    pub(super) fn forget(&mut self, name: &ChannelId) {
        if let Some(ch) = self.channels.remove(name) {
            if ch.sub != Sub::Idle {
                self.events.push_back(ClientEvent::Subscription {
                    channel: name.clone(),
                    state: lockstep_core::client::SubscriptionState::Unsubscribed,
                });
            }
        }
    }

    /// Sends what the outbox has due, on joined channels.
    pub(super) fn pump(&mut self, now: Instant) {
        if !self.is_connected() {
            return;
        }
        let channels = &self.channels;
        let next_req = &mut self.next_req;
        let frames = self.outbox.due(
            now,
            &self.config,
            |c| channels.get(c).is_some_and(|c| c.sub == Sub::Joined),
            || {
                *next_req += 1;
                ReqId(*next_req)
            },
        );
        for f in frames {
            self.frame(f);
        }
    }
}
