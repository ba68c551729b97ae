//! `message:send`: validate, deduplicate in flight, queue the append.

use crate::ids::{ChannelId, ClientMsgId};
use crate::server::limits::Kind;
use crate::server::ops::{PendingOp, QueuedAppend, SendKey, Waiter};
use crate::server::{AccessPolicy, Denied, Server};
use crate::store::StoreCommand;
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
        let key = SendKey {
            channel: channel.clone(),
            author: user,
            client_msg_id,
        };
        // A retry of a send still in flight or already committed here keeps
        // its first attempt's place: it cannot be overtaken, and the client
        // may never resend it (its outcome may arrive another way), so it
        // passes the gate and never waits in it (lab seeds 12282, 12942).
        let in_flight = self.sends.contains_key(&key);
        let settled =
            |s: &Self| in_flight || s.was_committed(w.conn, &key.channel, &key.client_msg_id);
        let place = self.pass_order_gate(w.conn, &channel, &key.client_msg_id, arrival, settled)?;
        let admitted = self
            .take_message_token(w)
            .and_then(|()| self.check_capacity(w.conn, if in_flight { 0 } else { 1 }));
        if let Err(denied) = admitted {
            if !in_flight && !self.was_committed(w.conn, &channel, &key.client_msg_id) {
                self.close_order_gate(w.conn, place, &channel, &key.client_msg_id, denied.0);
            }
            return Err(denied);
        }
        self.order_gate_admitted(w.conn, &channel, &key.client_msg_id);
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
        }
        if let Some(waiters) = self.sends.get_mut(&key) {
            // Already accepted: answer this retry with the same outcome.
            waiters.push((w, place));
            return Ok(());
        }
        self.sends.insert(key.clone(), vec![(w, place)]);
        let pipeline = self.config.pipeline();
        self.appends
            .push(&channel, QueuedAppend::Send { key, body }, pipeline);
        Ok(())
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

    /// `rate_limited` when the message budget of the connection or of its
    /// user is spent.
    pub(super) fn take_message_token(&mut self, w: Waiter) -> Result<(), Denied> {
        self.take_token(w.conn, Kind::Message)
    }

    /// Issues an append command for every channel that has appends waiting
    /// and room in its pipeline.
    pub(crate) fn pump(&mut self) {
        let ts = self.now.as_millis();
        let pipeline = self.config.pipeline();
        while let Some(batch) = self.appends.next_batch(pipeline) {
            let n = batch.appends.len();
            let (entries, origins) = batch.appends.into_iter().map(|a| a.into_entry(ts)).unzip();
            let op = self.issue(
                StoreCommand::Append {
                    channel: batch.channel.clone(),
                    entries,
                    chain: batch.chain,
                },
                PendingOp::Append {
                    channel: batch.channel.clone(),
                    origins,
                },
            );
            self.appends.started(&batch.channel, op, n, pipeline);
        }
    }
}
