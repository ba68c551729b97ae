//! `message:send`: validate, deduplicate in flight, queue the append.

use crate::ids::{ChannelId, ClientMsgId};
use crate::server::conn::OrderGate;
use crate::server::ops::{QueuedAppend, SendKey, Waiter};
use crate::server::{AccessPolicy, ConnId, Denied, Server};
use crate::wire::{Body, ErrorCode};

impl<P: AccessPolicy> Server<P> {
    pub(super) fn post(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        client_msg_id: ClientMsgId,
        body: Body,
    ) -> Result<(), Denied> {
        self.require_joined(w.conn, &channel)?;
        let Some(user) = self.user_of(w.conn).cloned() else {
            return Ok(());
        };
        if !self.policy.may_post(&user, &channel) {
            return Err(Denied::new(
                ErrorCode::Forbidden,
                format!("may not post to {channel}"),
            ));
        }
        self.check_body(&body)?;
        let arrival = match self.conns.get_mut(&w.conn) {
            Some(c) => {
                c.arrivals += 1;
                c.arrivals
            }
            None => return Ok(()),
        };
        self.pass_order_gate(w.conn, &channel, &client_msg_id)?;
        let key = SendKey {
            channel: channel.clone(),
            author: user,
            client_msg_id,
        };
        let in_flight = self.sends.contains_key(&key);
        let admitted = self
            .take_message_token(w)
            .and_then(|()| self.check_capacity(w.conn, if in_flight { 0 } else { 1 }));
        if let Err(denied) = admitted {
            self.close_order_gate(w.conn, arrival, &channel, &key.client_msg_id, denied.0);
            return Err(denied);
        }
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
        }
        if let Some(waiters) = self.sends.get_mut(&key) {
            // Already accepted: answer this retry with the same outcome.
            waiters.push((w, arrival));
            return Ok(());
        }
        self.sends.insert(key.clone(), vec![(w, arrival)]);
        self.appends
            .push(&channel, QueuedAppend::Send { key, body });
        self.pump(&channel);
        Ok(())
    }

    /// Refuses a send that would overtake an earlier one of the same
    /// connection and channel which failed retryably; the retry of that one
    /// opens the gate. Expired gates open by themselves.
    fn pass_order_gate(
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
        Err(Denied::new(
            gate.code,
            format!(
                "an earlier send ({}) to this channel failed; resend it first",
                gate.blocked_by
            ),
        ))
    }

    /// After a retryable refusal of `id` (the `arrival`-th send of `conn`),
    /// refuses the sends of `conn` to `channel` that arrived after it until
    /// `id` comes again, so a sender's order survives rate limits and store
    /// failures even with pipelined sends. The gate names the earliest
    /// failed send: that is the one the client resends first.
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
        let until = self.now.saturating_add(self.config.order_gate_ttl);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let gate = OrderGate {
            blocked_by: id.clone(),
            arrival,
            code,
            until,
        };
        match c.gates.get(channel) {
            Some(g) if g.arrival <= arrival && g.until > self.now => {}
            _ => {
                c.gates.insert(channel.clone(), gate);
            }
        }
    }

    /// Whether `conn`'s gate on `channel` blocks a queued send that arrived
    /// as the `arrival`-th (accepted, but after a send that failed since).
    fn gated(
        &self,
        conn: ConnId,
        arrival: u64,
        channel: &ChannelId,
        id: &ClientMsgId,
    ) -> Option<Denied> {
        let gate = self.conns.get(&conn)?.gates.get(channel)?;
        (&gate.blocked_by != id && arrival > gate.arrival && gate.until > self.now).then(|| {
            Denied::new(
                gate.code,
                format!(
                    "an earlier send ({}) to this channel failed; resend it first",
                    gate.blocked_by
                ),
            )
        })
    }

    /// `too_large` past the body limit.
    pub(super) fn check_body(&self, body: &Body) -> Result<(), Denied> {
        let len = body.encoded_len();
        if len > self.config.max_body_bytes {
            return Err(Denied::new(
                ErrorCode::TooLarge,
                format!(
                    "body of {len} bytes exceeds {} bytes",
                    self.config.max_body_bytes
                ),
            ));
        }
        Ok(())
    }

    /// `rate_limited` when the connection's message bucket is empty.
    pub(super) fn take_message_token(&mut self, w: Waiter) -> Result<(), Denied> {
        let now = self.now;
        let allowed = self
            .conns
            .get_mut(&w.conn)
            .is_none_or(|c| c.messages.try_take(now));
        if allowed {
            Ok(())
        } else {
            Err(Denied::new(
                ErrorCode::RateLimited,
                "too many messages, slow down",
            ))
        }
    }

    /// Issues the channel's next queued append if none is at the store.
    /// A queued send whose every waiter is now behind a closed order gate is
    /// refused instead (its sender will resend it after the earlier one).
    pub(crate) fn pump(&mut self, channel: &ChannelId) {
        while let Some(next) = self.appends.next_ready(channel) {
            if let QueuedAppend::Send { key, .. } = &next {
                if self.refuse_gated(key) {
                    self.appends.finish(channel);
                    continue;
                }
            }
            let (entry, origin) = next.into_entry(self.now.as_millis());
            self.issue(
                crate::store::StoreCommand::Append {
                    channel: channel.clone(),
                    entry,
                },
                crate::server::ops::PendingOp::Append {
                    channel: channel.clone(),
                    origin,
                },
            );
            return;
        }
    }

    /// Refuses the waiters of `key` that a gate now blocks; true when none
    /// is left (the append is dropped).
    fn refuse_gated(&mut self, key: &SendKey) -> bool {
        let waiters = self.sends.remove(key).unwrap_or_default();
        let mut left = Vec::new();
        for (w, arrival) in waiters {
            match self.gated(w.conn, arrival, &key.channel, &key.client_msg_id) {
                Some(denied) => {
                    if self.settle(w) {
                        self.nack(w, denied);
                    }
                }
                None => left.push((w, arrival)),
            }
        }
        if left.is_empty() {
            return true;
        }
        self.sends.insert(key.clone(), left);
        false
    }
}
