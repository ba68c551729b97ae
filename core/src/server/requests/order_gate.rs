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
use crate::server::{AccessPolicy, ConnId, Denied, Server};
use crate::wire::ErrorCode;

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
    /// Lets a new send through unless it would overtake a failed one; the
    /// failed one coming again opens the gate. Expired gates open by
    /// themselves.
    pub(super) fn pass_order_gate(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        id: &ClientMsgId,
    ) -> Result<(), Denied> {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let Some(gate) = c.gates.get(channel) else {
            return Ok(());
        };
        if &gate.blocked_by == id || gate.until <= now {
            c.gates.remove(channel);
            return Ok(());
        }
        Err(refusal(gate))
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
    fn refuse_queued_after(&mut self, conn: ConnId, channel: &ChannelId, gate: &OrderGate) {
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
            for (w, _) in refused {
                if self.settle(w) {
                    self.nack(w, refusal(gate));
                }
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
