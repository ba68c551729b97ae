//! The send-order gate: pipelined sends of one connection keep their order
//! through retryable refusals (rate limits, store failures, overload).
//!
//! When a send fails retryably, it waits in its connection's gate for the
//! channel (see [`OrderGate`]), and every later send of that connection to
//! that channel is refused with the same code: those already queued at
//! once, those still arriving until every earlier waiting send was
//! admitted. A send is let through only when nothing earlier in its
//! sender's order waits, so a client that resends each refused message
//! (in any rhythm, as long as it resends them) has its messages stored in
//! the order it first sent them.
//! Found by the lab: a rate-limited send was overtaken by a later one (seed
//! 45, calm streams), and a retried send by a later one still queued from
//! before the failure (seed 250, streams with store failures).

use crate::ids::{ChannelId, ClientMsgId};
use crate::server::gate::{OrderGate, Verdict};
use crate::server::{AccessPolicy, ConnId, Denied, Server};
use crate::wire::ErrorCode;

/// Sends per connection remembered as committed (oldest forgotten first).
const ACCEPTED_REMEMBERED_MAX: usize = 512;

fn refusal(code: ErrorCode) -> Denied {
    Denied::new(
        code,
        "an earlier refused send to this channel must be resent first",
    )
}

impl<P: AccessPolicy> Server<P> {
    /// Lets a new send through unless an earlier send of its connection to
    /// the channel waits in the gate; returns its place in the sender's
    /// order. `settled` says it is already stored or under way (a retry of
    /// a send in flight or committed on this connection): its place is
    /// taken, so it passes, and no longer waits.
    pub(super) fn pass_order_gate(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        id: &ClientMsgId,
        arrival: u64,
        settled: impl FnOnce(&Self) -> bool,
    ) -> Result<u64, Denied> {
        let open = self
            .conns
            .get(&conn)
            .is_none_or(|c| !c.gates.contains_key(channel));
        if open {
            return Ok(arrival);
        }
        let settled = settled(self);
        let (now, ttl) = (self.now, self.config.order_gate_ttl);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(arrival);
        };
        let Some(gate) = c.gates.get_mut(channel) else {
            return Ok(arrival);
        };
        let verdict = if settled {
            gate.admitted(id, now);
            Verdict::Pass { place: arrival }
        } else {
            gate.judge(id, arrival, now, ttl)
        };
        if gate.is_empty() {
            c.gates.remove(channel);
        }
        match verdict {
            Verdict::Pass { place } => Ok(place),
            Verdict::Hold { code } => Err(refusal(code)),
        }
    }

    /// The send passed every check: it waits no more.
    pub(super) fn order_gate_admitted(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        id: &ClientMsgId,
    ) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(gate) = c.gates.get_mut(channel) {
            gate.admitted(id, now);
            if gate.is_empty() {
                c.gates.remove(channel);
            }
        }
    }

    /// Remembers (bounded, per connection) that this send was committed
    /// and answered here, so a late retry of it refused by a limit does not
    /// close the gate.
    pub(crate) fn note_committed(&mut self, conn: ConnId, channel: &ChannelId, id: &ClientMsgId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.accepted.len() >= ACCEPTED_REMEMBERED_MAX {
            c.accepted.pop_front();
        }
        c.accepted.push_back((channel.clone(), id.clone()));
    }

    /// Whether this send was committed and answered on `conn`.
    pub(crate) fn was_committed(
        &self,
        conn: ConnId,
        channel: &ChannelId,
        id: &ClientMsgId,
    ) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.accepted.iter().any(|(ch, cm)| ch == channel && cm == id))
    }

    /// After a retryable refusal of `id` (at `place` in its sender's
    /// order), makes it wait in the gate and refuses the later sends of
    /// `conn` to `channel` that are already queued: they wait behind it.
    pub(crate) fn close_order_gate(
        &mut self,
        conn: ConnId,
        place: u64,
        channel: &ChannelId,
        id: &ClientMsgId,
        code: ErrorCode,
    ) {
        if !code.retryable() || sabotaged!(self, ServerIgnoresOrderGate) {
            return;
        }
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.channels.contains_key(channel) {
            c.gates
                .entry(channel.clone())
                .or_insert_with(OrderGate::default)
                .refused(id, place, code, now);
        }
        // A connection that left the channel gets no gate: one left behind
        // would hold the channel's next sends for messages no one resends
        // (found by the lab: seed 2156, streams, store failures and
        // unsubscribes). Its later sends still queued are refused all the
        // same: a client that subscribed again before the leave's ack kept
        // them, and resends them behind this one (found by the lab: seed
        // 877, streams, a leave and a join while a store failure was
        // refusing the first of a burst).
        self.refuse_queued_after(conn, channel, place, code);
    }

    /// Refuses the queued sends of `conn` to `channel` that come after
    /// `place` in the sender's order; an append left with no waiter is
    /// dropped. They wait in the gate at their own places.
    fn refuse_queued_after(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        place: u64,
        code: ErrorCode,
    ) {
        let now = self.now;
        let mut waiting = Vec::new();
        for key in self.appends.queued_sends(channel) {
            if self.was_committed(conn, channel, &key.client_msg_id) {
                // A retry of a message already stored holds no place: the
                // store answers it with the original, and a refusal would
                // leave it waiting in the gate for a resend its client, who
                // has its outcome, never sends (found by the lab: seed 298,
                // mixed, an app restart resending what had just been
                // committed).
                continue;
            }
            let Some(waiters) = self.sends.get_mut(&key) else {
                continue;
            };
            // The key's place on this connection is its earliest waiter's.
            let first = waiters
                .iter()
                .filter(|(w, _)| w.conn == conn)
                .map(|(_, p)| *p)
                .min();
            let Some(first) = first.filter(|p| *p > place) else {
                continue;
            };
            let (refused, kept): (Vec<_>, Vec<_>) =
                waiters.drain(..).partition(|(w, _)| w.conn == conn);
            let orphaned = kept.is_empty();
            *waiters = kept;
            if orphaned {
                self.sends.remove(&key);
                self.appends.remove_send(channel, &key);
            }
            waiting.push((key.client_msg_id.clone(), first));
            for (w, _) in refused {
                if self.settle(w) {
                    self.nack(w, refusal(code));
                }
            }
        }
        if let Some(gate) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.gates.get_mut(channel))
        {
            for (id, p) in &waiting {
                gate.refused(id, *p, code, now);
            }
        }
    }

    /// A connection closed: its sends still waiting in a channel queue
    /// (not yet at the store, never acknowledged) are dropped, so they can
    /// never be stored after a later message the client resends on its next
    /// connection (lab seed 262: a dead connection's queued send outlived
    /// the failure of an earlier one). The client resends them in order.
    pub(crate) fn drop_queued_sends_of(&mut self, conn: ConnId) {
        let channels: std::collections::BTreeSet<ChannelId> = self
            .sends
            .iter()
            .filter(|(_, waiters)| waiters.iter().any(|(w, _)| w.conn == conn))
            .map(|(key, _)| key.channel.clone())
            .collect();
        for channel in channels {
            for key in self.appends.queued_sends(&channel) {
                let Some(waiters) = self.sends.get_mut(&key) else {
                    continue;
                };
                waiters.retain(|(w, _)| w.conn != conn);
                if waiters.is_empty() {
                    self.sends.remove(&key);
                    self.appends.remove_send(&channel, &key);
                }
            }
        }
    }
}
