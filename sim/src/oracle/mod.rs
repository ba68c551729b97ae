//! The oracle: every invariant of docs/DESIGN.md §4, checked after every step.
//!
//! The world reports what happens (appends, client events, frames on the
//! wire, closes); the oracle compares it with the store's log, the only
//! ground truth, and with its own memory of what was promised. Each check
//! costs in proportion to the step (map lookups), never to the history.

mod invariant;
mod view;
mod violation;

use std::collections::{BTreeMap, BTreeSet};

use lockstep_core::Instant;
use lockstep_core::client::{
    Client, ClientEvent, ConnectionState, EntryId, Outcome, SubscriptionState,
};
use lockstep_core::ids::{ChannelId, ClientMsgId, Seq, UserId};
use lockstep_core::store::MemStore;
use lockstep_core::wire::{Body, LogEvent, ReqId, ServerFrame};

pub use invariant::Invariant;
pub use view::{ClientView, Internals};
pub use violation::{Failure, Violation};

use crate::net::ClientIx;

/// What the oracle remembers; see the module docs.
#[derive(Debug, Default)]
pub struct Oracle {
    violations: Vec<Violation>,
    checks: u64,
    /// Invariant 2: the dedupe keys of every message appended, per channel.
    keys: BTreeMap<ChannelId, BTreeSet<(UserId, ClientMsgId)>>,
    /// Invariant 1: the body each message or edit was committed with, by
    /// channel and seq (the latest epoch's), to check the copy a member
    /// got once a later edit or deletion left only a tombstone in the
    /// store. Filled by `on_append` as commits happen.
    bodies: BTreeMap<(ChannelId, Seq), Body>,
    /// Invariant 3: the last seq each client delivered per channel, in the
    /// client's current incarnation and subscription; indexed by client, so
    /// a delivery's lookup compares channel names only.
    positions: Vec<BTreeMap<ChannelId, Seq>>,
    /// Invariant 4: entries that got their outcome (across app restarts).
    outcomes: BTreeSet<(ClientIx, EntryId)>,
    /// Invariants 4 and 5: every send, with its channel and send order.
    sends: BTreeMap<(ClientIx, ClientMsgId), (ChannelId, u64)>,
    next_send: u64,
    /// Invariant 5: the seqs of sent messages by send order.
    sent_seqs: BTreeMap<(ClientIx, ChannelId), BTreeMap<u64, Seq>>,
    /// Invariant 7: channels each connection asked to join (by net serial),
    /// with the number of the latest join request.
    /// By serial, then channel: a delivery looks its channel up without
    /// building a key.
    joins: BTreeMap<u64, BTreeMap<ChannelId, u64>>,
    /// Invariant 7: leave requests awaiting their ack on stream connections,
    /// by (serial, req): the channel and the request's number.
    leaves: BTreeMap<(u64, ReqId), (ChannelId, u64)>,
    /// Numbers joins and leaves, so a leave's ack knows whether a join was
    /// asked for after it.
    membership_requests: u64,
    /// Invariant 9: each client's last connection state.
    states: BTreeMap<ClientIx, ConnectionState>,
}

/// Whether `user` may see `channel` under the lab's access policy
/// (`private:<user>` is only for that user).
#[must_use]
pub fn allowed(user: &UserId, channel: &ChannelId) -> bool {
    channel
        .as_str()
        .strip_prefix("private:")
        .is_none_or(|owner| owner == user.as_str())
}

impl Oracle {
    /// Every violation so far, in the order found.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many individual checks ran.
    #[must_use]
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Records a broken invariant.
    pub fn violate(
        &mut self,
        invariant: Invariant,
        at: Instant,
        client: Option<ClientIx>,
        channel: Option<&ChannelId>,
        detail: impl Into<String>,
    ) {
        self.fail(Failure::Broken(invariant), at, client, channel, detail);
    }

    /// Records a failure of any kind.
    pub fn fail(
        &mut self,
        failure: Failure,
        at: Instant,
        client: Option<ClientIx>,
        channel: Option<&ChannelId>,
        detail: impl Into<String>,
    ) {
        self.violations.push(Violation {
            failure,
            at,
            client,
            channel: channel.cloned(),
            detail: detail.into(),
        });
    }

    fn check(
        &mut self,
        ok: bool,
        invariant: Invariant,
        at: Instant,
        client: Option<ClientIx>,
        channel: Option<&ChannelId>,
        detail: impl FnOnce() -> String,
    ) {
        self.checks += 1;
        if !ok {
            self.violate(invariant, at, client, channel, detail());
        }
    }

    /// The store committed `event` (invariants 1 and 2).
    pub fn on_append(&mut self, now: Instant, event: &LogEvent) {
        if let Some(body) = event.body() {
            self.bodies
                .insert((event.channel_id().clone(), event.seq()), body.clone());
        }
        if let LogEvent::Message(m) = event {
            let fresh = self
                .keys
                .entry(m.channel_id.clone())
                .or_default()
                .insert((m.author_id.clone(), m.client_msg_id.clone()));
            self.check(
                fresh,
                Invariant::NoDuplicates,
                now,
                None,
                Some(&m.channel_id),
                || {
                    format!(
                        "{} stored twice: {} {} by {}",
                        m.client_msg_id, m.seq, m.message_id, m.author_id
                    )
                },
            );
        }
    }

    /// The app called `send` and got `id` (invariants 4 and 5).
    pub fn on_send(&mut self, client: ClientIx, id: ClientMsgId, channel: ChannelId) {
        self.next_send += 1;
        self.sends.insert((client, id), (channel, self.next_send));
    }

    /// The client sent `frame` on connection `serial` (invariant 7 learns
    /// which channels the connection asked for).
    pub fn on_join_sent(&mut self, serial: u64, channel: &ChannelId) {
        self.membership_requests += 1;
        self.joins
            .entry(serial)
            .or_default()
            .insert(channel.clone(), self.membership_requests);
    }

    /// The client asked to leave `channel` on stream connection `serial`
    /// (invariant 7). Only streams: their order makes the leave's ack a
    /// clean cut, after which nothing of the channel may arrive.
    pub fn on_leave_sent(&mut self, serial: u64, req: ReqId, channel: &ChannelId) {
        self.membership_requests += 1;
        self.leaves
            .insert((serial, req), (channel.clone(), self.membership_requests));
    }

    /// The leave `req` on stream connection `serial` was acknowledged: every
    /// later frame was sent after the server processed it, so, unless a
    /// join was asked for since, the channel counts as not joined any more.
    pub fn on_leave_acked(&mut self, serial: u64, req: ReqId) {
        let Some((channel, number)) = self.leaves.remove(&(serial, req)) else {
            return;
        };
        let Some(joins) = self.joins.get_mut(&serial) else {
            return;
        };
        if joins.get(&channel).is_some_and(|join| *join < number) {
            joins.remove(&channel);
        }
    }

    /// A channel-scoped frame reached `client` on connection `serial`
    /// (invariant 7).
    pub fn on_frame_delivered(
        &mut self,
        now: Instant,
        client: ClientIx,
        user: &UserId,
        serial: u64,
        frame: &ServerFrame,
    ) {
        let channel = match frame {
            ServerFrame::MessageNew(m) => &m.channel_id,
            ServerFrame::MessageUpdated(u) => &u.channel_id,
            ServerFrame::MessageDeleted(d) => &d.channel_id,
            ServerFrame::PresenceJoin(p) | ServerFrame::PresenceLeave(p) => &p.channel_id,
            ServerFrame::Typing(t) => &t.channel_id,
            ServerFrame::Read(r) => &r.channel_id,
            _ => return,
        };
        let asked = self
            .joins
            .get(&serial)
            .is_some_and(|joins| joins.contains_key(channel));
        let ok = asked && allowed(user, channel);
        self.check(
            ok,
            Invariant::OnlyJoined,
            now,
            Some(client),
            Some(channel),
            || {
                if asked {
                    format!("{user} may not see this channel, yet got {frame:?}")
                } else {
                    format!("connection k{serial} never joined or has left, yet got {frame:?}")
                }
            },
        );
    }

    /// The positions of `client`'s channels (see `positions`).
    fn positions_of(&mut self, client: ClientIx) -> &mut BTreeMap<ChannelId, Seq> {
        let i = client.index();
        if self.positions.len() <= i {
            self.positions.resize_with(i + 1, BTreeMap::new);
        }
        &mut self.positions[i]
    }

    /// `client`'s next delivery in `channel` starts a new stream.
    fn forget_position(&mut self, client: ClientIx, channel: &ChannelId) {
        if let Some(positions) = self.positions.get_mut(client.index()) {
            positions.remove(channel);
        }
    }

    /// The client machine was rebuilt (app restart): its deliveries start
    /// over, its state chart starts at idle.
    pub fn on_client_restart(&mut self, client: ClientIx) {
        if let Some(positions) = self.positions.get_mut(client.index()) {
            positions.clear();
        }
        self.states.remove(&client);
    }

    /// The app gave a channel up, or the client reported it unsubscribed: if
    /// the client forgot the channel (its documented behaviour once the
    /// leave is done), its next subscription is a new stream that starts
    /// wherever its backlog starts.
    pub fn on_unsubscribed<V: ClientView + ?Sized>(
        &mut self,
        ix: ClientIx,
        client: &V,
        channel: &ChannelId,
    ) {
        if client.channel(channel).is_none_or(|v| !v.desired) {
            self.forget_position(ix, channel);
        }
    }

    /// The app closed the client: nothing may stay armed (invariant 8).
    pub fn on_client_closed(&mut self, now: Instant, ix: ClientIx, client: &Client) {
        let (timers, requests) = (client.armed_timers(), client.pending_requests());
        self.check(
            timers == 0 && requests == 0 && client.poll_timeout().is_none(),
            Invariant::NoLeaks,
            now,
            Some(ix),
            None,
            || format!("after close: {timers} timers armed, {requests} requests pending"),
        );
    }

    /// One event the client handed its app (invariants 1, 3, 4, 5, 8, 9).
    pub fn on_client_event<V: ClientView + ?Sized>(
        &mut self,
        now: Instant,
        ix: ClientIx,
        client: &V,
        store: &MemStore,
        event: &ClientEvent,
    ) {
        match event {
            ClientEvent::Log { channel, event } => {
                self.on_delivered(now, ix, store, channel, event)
            }
            ClientEvent::Truncated { channel, from, to } => {
                let oldest = store.oldest_retained(channel).unwrap_or(Seq(1));
                self.check(
                    oldest > *to,
                    Invariant::InOrderDelivery,
                    now,
                    Some(ix),
                    Some(channel),
                    || format!("reported {from}..={to} truncated, but the store still has {to} (oldest retained {oldest})"),
                );
                self.positions_of(ix).insert(channel.clone(), *to);
            }
            ClientEvent::Reset { channel, .. } => self.forget_position(ix, channel),
            ClientEvent::Subscription {
                channel,
                state: SubscriptionState::Unsubscribed,
            } => self.on_unsubscribed(ix, client, channel),
            ClientEvent::Outcome {
                channel,
                id,
                outcome,
            } => self.on_outcome(now, ix, store, channel, id, outcome),
            ClientEvent::State(state) => self.on_state(now, ix, client, state),
            _ => {}
        }
    }

    fn on_delivered(
        &mut self,
        now: Instant,
        ix: ClientIx,
        store: &MemStore,
        channel: &ChannelId,
        event: &LogEvent,
    ) {
        let seq = event.seq();
        let log = store.log(channel);
        // 1: what a member sees was committed, exactly as stored; or, once
        // a later edit or deletion left a tombstone in the store, exactly
        // as stored but for the body, which is the one committed.
        let stored = log.and_then(|l| l.event(seq));
        let retained = log.is_some_and(|l| seq >= l.oldest_retained());
        let superseded = stored.is_some_and(|s| {
            s.body().is_none()
                && event.body().is_some_and(|body| {
                    let mut tomb = event.clone();
                    tomb.drop_body();
                    &tomb == s
                        && self
                            .bodies
                            .get(&(channel.clone(), seq))
                            .is_none_or(|committed| committed == body)
                })
        });
        self.check(
            stored == Some(event)
                || superseded
                || (!retained && log.is_some_and(|l| seq <= l.head().1)),
            Invariant::AckedIsStored,
            now,
            Some(ix),
            Some(channel),
            || match stored {
                Some(s) => format!("delivered {event:?}, the store has {s:?}"),
                None => format!("delivered {event:?}, which the store never committed"),
            },
        );
        // 3: strictly the next seq.
        let positions = self.positions_of(ix);
        let prev = match positions.get_mut(channel) {
            Some(at) => Some(std::mem::replace(at, seq)),
            None => {
                positions.insert(channel.clone(), seq);
                None
            }
        };
        if let Some(prev) = prev {
            self.check(
                seq == prev.next(),
                Invariant::InOrderDelivery,
                now,
                Some(ix),
                Some(channel),
                || {
                    if seq <= prev {
                        format!("delivered {seq} again after {prev} (duplicate)")
                    } else {
                        format!("delivered {seq} after {prev} (gap)")
                    }
                },
            );
        }
    }

    fn on_outcome(
        &mut self,
        now: Instant,
        ix: ClientIx,
        store: &MemStore,
        channel: &ChannelId,
        id: &EntryId,
        outcome: &Outcome,
    ) {
        // 4: at most one outcome per entry, ever.
        let first = self.outcomes.insert((ix, id.clone()));
        self.check(
            first,
            Invariant::OneOutcome,
            now,
            Some(ix),
            Some(channel),
            || format!("second outcome for {id:?}: {outcome:?}"),
        );
        let (EntryId::Message(cm), Outcome::Sent { seq, message_id }) = (id, outcome) else {
            return;
        };
        // 1: the acked message is in the log, at the acked seq.
        let log = store.log(channel);
        let stored = log.and_then(|l| l.event(*seq));
        let matches = matches!(stored, Some(LogEvent::Message(m))
            if &m.message_id == message_id && &m.client_msg_id == cm);
        let retained = log.is_some_and(|l| *seq >= l.oldest_retained());
        self.check(
            matches || !retained && log.is_some_and(|l| *seq <= l.head().1),
            Invariant::AckedIsStored,
            now,
            Some(ix),
            Some(channel),
            || format!("{cm} acked as {seq} {message_id}, the store has {stored:?}"),
        );
        // 5: send order is seq order.
        let Some((sent_channel, order)) = self.sends.get(&(ix, cm.clone())).cloned() else {
            return;
        };
        let seqs = self.sent_seqs.entry((ix, sent_channel)).or_default();
        let before = seqs.range(..order).next_back().map(|(_, s)| *s);
        let after = seqs.range(order + 1..).next().map(|(_, s)| *s);
        seqs.insert(order, *seq);
        let ok = before.is_none_or(|b| b < *seq) && after.is_none_or(|a| a > *seq);
        self.check(
            ok,
            Invariant::SenderOrder,
            now,
            Some(ix),
            Some(channel),
            || {
                format!(
                    "{cm} got {seq}, but an earlier send got {before:?} / a later one {after:?}"
                )
            },
        );
    }

    fn on_state<V: ClientView + ?Sized>(
        &mut self,
        now: Instant,
        ix: ClientIx,
        client: &V,
        state: &ConnectionState,
    ) {
        let to = state.name();
        let from = self
            .states
            .insert(ix, state.clone())
            .unwrap_or(ConnectionState::Idle);
        self.check(
            state.may_follow(&from),
            Invariant::StateChart,
            now,
            Some(ix),
            None,
            || format!("{} -> {to} is not in the state chart", from.name()),
        );
        // 8 needs the machine as of this event; a lagging view cannot say.
        let Some(internals) = client.internals() else {
            return;
        };
        // 8: offline means no request is waiting for a reply.
        if !matches!(state, ConnectionState::Connected { .. }) {
            let pending = internals.pending_requests;
            self.check(
                pending == 0,
                Invariant::NoLeaks,
                now,
                Some(ix),
                None,
                || format!("{pending} requests pending while {to}"),
            );
        }
        // 8: a lost connection leaves only the timer of the next attempt;
        // a failed or closed client has none.
        let timers_max = match internals.state {
            ConnectionState::Reconnecting { .. } | ConnectionState::Suspended { .. } => 1,
            ConnectionState::Failed { .. } | ConnectionState::Closed => 0,
            _ => usize::MAX,
        };
        let timers = internals.armed_timers;
        self.check(
            timers <= timers_max,
            Invariant::NoLeaks,
            now,
            Some(ix),
            None,
            || {
                format!(
                    "{timers} timers armed while {}, at most {timers_max} may be",
                    internals.state.name()
                )
            },
        );
    }
}
