//! Store completions: answer the waiting requests and broadcast what was
//! committed. A completion whose connection closed still has its effect on
//! the room (a committed message is broadcast); only the reply is dropped.

use std::collections::BTreeMap;

use tracing::warn;

use crate::ids::{ChannelId, Seq};
use crate::ids::{Epoch, UserId};
use crate::server::conn::{JoinAttempt, Membership};
use crate::server::ops::{AppendOrigin, Done, JoinStep, PendingOp, SendKey, Waiter};
use crate::server::{AccessPolicy, ConnId, Denied, Relay, Server};
use crate::store::{AppendOutcome, Existing, Page, Refusal, StoreError, StoreOpId, StoreReply};
use crate::wire::{Ack, ErrorCode, HistoryAck, JoinAck, LogEvent, ReadReceipt, SendAck};

fn unavailable(e: &StoreError) -> Denied {
    Denied::new(ErrorCode::Unavailable, e.to_string())
}

fn unexpected(reply: &StoreReply) -> Denied {
    warn!(?reply, "store reply does not match its command");
    out_of_contract()
}

fn unexpected_outcome(outcome: &AppendOutcome) -> Denied {
    warn!(?outcome, "append outcome does not match its entry");
    out_of_contract()
}

fn out_of_contract() -> Denied {
    Denied::new(ErrorCode::Unavailable, "store answered out of contract")
}

impl<P: AccessPolicy> Server<P> {
    pub(super) fn complete(
        &mut self,
        op: StoreOpId,
        pending: PendingOp,
        result: Result<StoreReply, StoreError>,
    ) {
        match pending {
            PendingOp::Join {
                waiter,
                channel,
                attempt,
                step,
            } => {
                self.complete_join(waiter, channel, attempt, step, result);
            }
            PendingOp::History { waiter, channel } => {
                let answer = match result {
                    Ok(StoreReply::Events(page)) => Ok(Ack::History(HistoryAck {
                        channel_id: channel,
                        epoch: page.epoch,
                        events: page.events,
                        head_seq: page.head,
                        more: page.more,
                    })),
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(unavailable(&e)),
                };
                self.answer(waiter, answer);
            }
            PendingOp::Receipt {
                waiter,
                channel,
                user,
            } => self.complete_receipt(waiter, channel, user, result),
            PendingOp::Tail { channel } => self.complete_tail_read(&channel, op, result),
            PendingOp::Append { channel, origins } => {
                let pipeline = self.config.pipeline();
                let done = Done { origins, result };
                for done in self.appends.finish(&channel, op, done, pipeline) {
                    self.complete_append(&channel, done);
                }
            }
        }
    }

    /// Answers and broadcasts one append command's outcome (in issue order
    /// within its channel).
    fn complete_append(&mut self, channel: &ChannelId, Done { origins, result }: Done) {
        let outcomes: Vec<Result<AppendOutcome, Denied>> = match result {
            Ok(StoreReply::Appended(outcomes)) if outcomes.len() == origins.len() => {
                outcomes.into_iter().map(Ok).collect()
            }
            Ok(other) => origins.iter().map(|_| Err(unexpected(&other))).collect(),
            Err(e) => origins.iter().map(|_| Err(unavailable(&e))).collect(),
        };
        let mut seqs = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok()?.appended().map(LogEvent::seq));
        if let Some(first) = seqs.next() {
            let last = seqs.next_back().unwrap_or(first);
            self.announce(channel, first, last);
        }
        // In entry order, so broadcasts go out in seq order.
        for (origin, outcome) in origins.into_iter().zip(outcomes) {
            match origin {
                AppendOrigin::Send(key) => self.complete_send(key, outcome),
                AppendOrigin::Modify(waiter) => {
                    self.complete_modify(waiter, channel, outcome);
                }
            }
        }
    }

    /// Sends one store-backed answer if the connection is still open.
    fn answer(&mut self, w: Waiter, answer: Result<Ack, Denied>) {
        if !self.settle(w) {
            return;
        }
        match answer {
            Ok(body) => self.ack(w, body),
            Err(denied) => self.nack(w, denied),
        }
    }

    fn complete_send(&mut self, key: SendKey, outcome: Result<AppendOutcome, Denied>) {
        let waiters = self.sends.remove(&key).unwrap_or_default();
        let answer = match outcome {
            Ok(AppendOutcome::Appended(LogEvent::Message(m))) => {
                let ack = SendAck {
                    message_id: m.message_id.clone(),
                    seq: m.seq,
                    ts: m.ts,
                };
                self.deliver_committed(&key.channel, LogEvent::Message(m));
                Ok(ack)
            }
            Ok(AppendOutcome::Duplicate(Existing::Message(ack))) => Ok(ack),
            Ok(other) => Err(unexpected_outcome(&other)),
            Err(denied) => Err(denied),
        };
        let gated: Vec<_> = waiters.iter().map(|(w, a)| (*w, *a)).collect();
        if answer.is_ok() {
            for (w, _) in &gated {
                self.note_committed(w.conn, &key.channel, &key.client_msg_id);
            }
        }
        for (w, _) in waiters {
            let one = match &answer {
                Ok(ack) => Ok(Ack::Send(ack.clone())),
                Err(Denied(code, message)) => Err(Denied(*code, message.clone())),
            };
            self.answer(w, one);
        }
        if let Err(Denied(code, _)) = &answer {
            // The send waits again, at its place on each connection that
            // sent it: its earliest attempt's there.
            let mut places: BTreeMap<ConnId, u64> = BTreeMap::new();
            for (w, place) in &gated {
                let p = places.entry(w.conn).or_insert(*place);
                *p = (*p).min(*place);
            }
            for (conn, place) in places {
                // A retry of a message this connection already had committed
                // holds no place in the order (lab seed 12942).
                if !self.was_committed(conn, &key.channel, &key.client_msg_id) {
                    self.close_order_gate(conn, place, &key.channel, &key.client_msg_id, *code);
                }
            }
        }
    }

    fn complete_modify(
        &mut self,
        w: Waiter,
        channel: &ChannelId,
        outcome: Result<AppendOutcome, Denied>,
    ) {
        let answer = match outcome {
            Ok(AppendOutcome::Appended(event @ (LogEvent::Updated(_) | LogEvent::Deleted(_)))) => {
                let seq = event.seq();
                let ack = match event {
                    LogEvent::Updated(_) => Ack::Update { seq },
                    _ => Ack::Delete { seq },
                };
                self.deliver_committed(channel, event);
                Ok(ack)
            }
            Ok(AppendOutcome::Duplicate(Existing::Deletion { seq })) => Ok(Ack::Delete { seq }),
            Ok(AppendOutcome::Refused(Refusal::NotFound)) => {
                Err(Denied::new(ErrorCode::NotFound, "no such message"))
            }
            Ok(AppendOutcome::Refused(Refusal::Forbidden)) => Err(Denied::new(
                ErrorCode::Forbidden,
                "only the author may change this message",
            )),
            Ok(other) => Err(unexpected_outcome(&other)),
            Err(denied) => Err(denied),
        };
        self.answer(w, answer);
    }

    fn complete_receipt(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        user: UserId,
        result: Result<StoreReply, StoreError>,
    ) {
        let answer = match result {
            Ok(StoreReply::Receipt { up_to, advanced }) => {
                if advanced {
                    let receipt = ReadReceipt {
                        channel_id: channel.clone(),
                        user_id: user,
                        up_to,
                    };
                    self.share(Relay::Read(receipt));
                }
                Ok(Ack::Read { up_to })
            }
            Ok(StoreReply::Refused(Refusal::BeyondHead { head })) => Err(Denied::new(
                ErrorCode::Invalid,
                format!("upTo is beyond the head {head}"),
            )),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(unavailable(&e)),
        };
        self.answer(w, answer);
    }

    fn complete_join(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        attempt: JoinAttempt,
        step: JoinStep,
        result: Result<StoreReply, StoreError>,
    ) {
        if !self.conns.contains_key(&w.conn) {
            return;
        }
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return self.fail_join(w, &channel, attempt, unavailable(&e)),
        };
        let read_at = match &reply {
            StoreReply::Head { epoch, head } => Some((*epoch, *head)),
            StoreReply::Events(page) => Some((page.epoch, page.head)),
            _ => None,
        };
        if read_at.is_some_and(|(epoch, head)| self.tail_jumped_past(&channel, epoch, head)) {
            // The room's cursor jumped past this read without broadcasting
            // what it skipped: read again, so the answer reaches it.
            return self.issue_join_step(w, channel, attempt, step);
        }
        match (step, reply) {
            (JoinStep::Head, StoreReply::Head { epoch, head }) => {
                self.finish_join(w, channel, attempt, epoch, head, Vec::new(), false);
            }
            (JoinStep::Since { epoch, since }, StoreReply::Events(page)) => {
                if page.epoch != epoch || since > page.head || page.more {
                    // Not recoverable exactly: answer with the latest page.
                    self.issue_join_step(w, channel, attempt, JoinStep::Latest);
                } else {
                    let recovered = !gap_before(&page, since);
                    let Page {
                        epoch,
                        events,
                        head,
                        ..
                    } = page;
                    self.finish_join(w, channel, attempt, epoch, head, events, recovered);
                }
            }
            (JoinStep::Latest, StoreReply::Events(page)) => {
                let Page {
                    epoch,
                    events,
                    head,
                    ..
                } = page;
                self.finish_join(w, channel, attempt, epoch, head, events, false);
            }
            (_, other) => self.fail_join(w, &channel, attempt, unexpected(&other)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_join(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        attempt: JoinAttempt,
        epoch: Epoch,
        head_seq: Seq,
        events: Vec<LogEvent>,
        recovered: bool,
    ) {
        if let Some(c) = self.conns.get_mut(&w.conn) {
            if let Some(m @ Membership::Joining(_)) = c.channels.get_mut(&channel) {
                if *m == Membership::Joining(attempt) {
                    *m = Membership::Joined;
                }
            }
        }
        self.tail_learned(&channel, epoch, head_seq);
        let members = self.presence.users(&channel);
        let ack = JoinAck {
            channel_id: channel,
            epoch,
            head_seq,
            members,
            events,
            recovered,
        };
        self.answer(w, Ok(Ack::Join(ack)));
    }

    /// A join whose log read failed is undone (if no newer attempt took over)
    /// so the server never keeps a membership the client was told failed.
    fn fail_join(&mut self, w: Waiter, channel: &ChannelId, attempt: JoinAttempt, denied: Denied) {
        if self.membership(w.conn, channel) == Some(Membership::Joining(attempt)) {
            if let Some(c) = self.conns.get_mut(&w.conn) {
                c.channels.remove(channel);
                let user = c.user.clone();
                self.leave_channel(w.conn, &user, channel, true);
            }
        }
        self.answer(w, Err(denied));
    }
}

/// True when events right after `since` were dropped from retention.
fn gap_before(page: &Page, since: Seq) -> bool {
    since.0.saturating_add(1) < page.oldest_retained.0
}
