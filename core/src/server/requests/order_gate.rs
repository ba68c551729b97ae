//! The send-order gate: pipelined sends of one connection keep their order
//! through retryable refusals (rate limits, store failures, overload).
//!
//! When a send fails retryably, every later send of the same connection to
//! the same channel is refused with the same code: those already queued at
//! once, those still arriving until the failed one is sent again. The client
//! resends in order, so the failed message is stored before any later one.
//! Found by the lab: a rate-limited send was overtaken by a later one (seed
//! 45, calm streams), and a retried send by a later one still queued from
//! before the failure (seed 250, streams with store failures).

use crate::ids::{ChannelId, ClientMsgId};
use crate::server::conn::OrderGate;
use crate::server::resend_rounds::ResendRounds;
use crate::server::{AccessPolicy, ConnId, Denied, Server};
use crate::wire::ErrorCode;

/// Sends per connection remembered as committed (oldest forgotten first).
const ACCEPTED_REMEMBERED_MAX: usize = 512;

fn refusal(gate: &OrderGate) -> Denied {
    Denied::new(
        gate.code,
        format!(
            "an earlier send ({}) to this channel failed; resend it first",
            gate.blocked_by
        ),
    )
}

impl<P: AccessPolicy> Server<P> {
    /// Lets a new send through unless it would overtake a failed one.
    /// `Ok(true)` when it is the failed one coming again: the gate opens
    /// once it is admitted (a retry refused again keeps the gate closed).
    /// Expired gates open by themselves.
    pub(super) fn pass_order_gate(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        id: &ClientMsgId,
    ) -> Result<bool, Denied> {
        let now = self.now;
        let ttl = self.config.order_gate_ttl;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(false);
        };
        let Some(gate) = c.gates.get_mut(channel) else {
            return Ok(false);
        };
        if gate.until <= now {
            // The failed send was given up. Hand the gate to the sender's
            // oldest waiting message instead of opening it mid-resend
            // (found by the lab: seed 1273, mixed; seed 10125, streams).
            match gate.rounds.successor(id) {
                Some(next) => {
                    gate.blocked_by = next;
                    gate.until = now.saturating_add(ttl);
                }
                None => {
                    c.gates.remove(channel);
                    return Ok(false);
                }
            }
        }
        if &gate.blocked_by == id {
            return Ok(true);
        }
        gate.rounds.note(id);
        Err(refusal(gate))
    }

    /// The failed send came again and was admitted: later sends may follow.
    pub(super) fn open_order_gate(&mut self, conn: ConnId, channel: &ChannelId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.gates.remove(channel);
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

    /// After a retryable refusal of `id` (the `arrival`-th send of `conn`),
    /// closes the gate and refuses the later sends of `conn` to `channel`
    /// that are already queued. The gate names the earliest failed send:
    /// that is the one the client resends first.
    pub(crate) fn close_order_gate(
        &mut self,
        conn: ConnId,
        arrival: u64,
        channel: &ChannelId,
        id: &ClientMsgId,
        code: ErrorCode,
    ) {
        if !code.retryable() || sabotaged!(self.config, ServerIgnoresOrderGate) {
            return;
        }
        let now = self.now;
        let until = now.saturating_add(self.config.order_gate_ttl);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(g) = c.gates.get_mut(channel) {
            if &g.blocked_by == id {
                // The failed send failed again: it is still being resent,
                // so the gate lives on (found by the lab: seed 1273, mixed,
                // a gate expired while its send kept failing).
                g.until = until;
            }
        }
        let keep = c
            .gates
            .get(channel)
            .is_some_and(|g| g.until > now && g.arrival <= arrival);
        if !keep {
            c.gates.insert(
                channel.clone(),
                OrderGate {
                    blocked_by: id.clone(),
                    arrival,
                    code,
                    until,
                    rounds: ResendRounds::new(id),
                },
            );
        }
        let Some(gate) = c.gates.get(channel).cloned() else {
            return;
        };
        self.refuse_queued_after(conn, channel, &gate);
    }

    /// Refuses the queued sends of `conn` to `channel` that arrived after
    /// the gate's failed send; an append left with no waiter is dropped.
    /// They are the sender's next messages, in its order, so the gate
    /// learns that order from them first (lab seed 30397: otherwise sends
    /// refused later at the gate looked older than these).
    fn refuse_queued_after(&mut self, conn: ConnId, channel: &ChannelId, gate: &OrderGate) {
        let mut refused_ids = Vec::new();
        for key in self.appends.queued_sends(channel) {
            let Some(waiters) = self.sends.get_mut(&key) else {
                continue;
            };
            let (refused, kept): (Vec<_>, Vec<_>) = waiters
                .drain(..)
                .partition(|(w, arrival)| w.conn == conn && *arrival > gate.arrival);
            let orphaned = kept.is_empty();
            *waiters = kept;
            if orphaned {
                self.sends.remove(&key);
                self.appends.remove_send(channel, &key);
            }
            if !refused.is_empty() {
                refused_ids.push(key.client_msg_id.clone());
            }
            for (w, _) in refused {
                if self.settle(w) {
                    self.nack(w, refusal(gate));
                }
            }
        }
        if let Some(g) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.gates.get_mut(channel))
        {
            for id in &refused_ids {
                g.rounds.note(id);
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
