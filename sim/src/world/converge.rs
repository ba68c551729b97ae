//! The liveness check: has the healed world settled on the truth? While it
//! has not, [`World::pending`] says what is still missing, in words.

use std::fmt;

use lockstep_core::client::SubscriptionState;
use lockstep_core::ids::{ChannelId, Seq, UserId};
use lockstep_core::wire::ErrorCode;

use super::World;
use crate::net::ClientIx;
use crate::oracle::{ClientView, Invariant, allowed};

/// Something the world has not converged on yet, and which invariant it
/// would break if it never does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The invariant at stake.
    pub invariant: Invariant,
    /// The client concerned, if any.
    pub client: Option<ClientIx>,
    /// The channel concerned, if any.
    pub channel: Option<ChannelId>,
    /// What is missing.
    pub what: String,
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.client {
            write!(f, "{c} ")?;
        }
        if let Some(ch) = &self.channel {
            write!(f, "{ch} ")?;
        }
        write!(f, "{} ({})", self.what, self.invariant)
    }
}

fn pending(
    invariant: Invariant,
    client: Option<ClientIx>,
    channel: Option<&ChannelId>,
    what: String,
) -> Option<Pending> {
    Some(Pending {
        invariant,
        client,
        channel: channel.cloned(),
        what,
    })
}

impl World {
    /// Users truly present in `channel`: a client of theirs is online and
    /// subscribed to it (through process `node`, when given).
    fn present_truth(&self, channel: &ChannelId, node: Option<usize>) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .clients
            .iter()
            .filter(|c| c.machine.is_connected())
            .filter(|c| node.is_none() || self.node_of(c.ix) == node)
            .filter(|c| {
                c.machine
                    .channel(channel)
                    .is_some_and(|v| v.subscription == SubscriptionState::Subscribed)
            })
            .map(|c| c.user.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// The first thing not converged yet, or `None` when the world has
    /// settled: every online client connected, subscriptions as desired, at
    /// the head of every log, outbox empty, presence true, no typing left,
    /// no store work pending.
    #[must_use]
    pub fn pending(&self) -> Option<Pending> {
        if self.store.in_flight() > 0 {
            return pending(
                Invariant::Convergence,
                None,
                None,
                format!("{} store operations in flight", self.store.in_flight()),
            );
        }
        if let Some(node) = self.nodes.iter().position(|n| n.server.is_none()) {
            let what = if self.nodes.len() == 1 {
                "the server is down".into()
            } else {
                format!("server s{node} is down")
            };
            return pending(Invariant::Convergence, None, None, what);
        }
        let multi = self.cluster.as_ref();
        if let Some(calls) = multi.map(|c| c.calls_in_flight()).filter(|n| *n > 0) {
            return pending(
                Invariant::PresenceIsUnion,
                None,
                None,
                format!("{calls} presence commands at the arbiter"),
            );
        }
        for host in &self.clients {
            let ix = Some(host.ix);
            let m = &host.machine;
            if !host.app.online || m.gave_up() {
                continue;
            }
            if !m.is_connected() {
                return pending(
                    Invariant::Convergence,
                    ix,
                    None,
                    format!("is {}, not connected", m.state_name()),
                );
            }
            if let Some((channel, first)) = m.first_unresolved() {
                let outbox = m.unresolved();
                return pending(
                    Invariant::OneOutcome,
                    ix,
                    Some(&channel),
                    format!(
                        "has {outbox} unresolved outbox entries, the first {first}; its channel {:?}",
                        m.channel(&channel),
                    ),
                );
            }
            for ch in &m.channels() {
                if !host.app.desired.contains(ch) {
                    let state = m.channel(ch).map(|v| v.subscription);
                    if state
                        .as_ref()
                        .is_some_and(|s| *s != SubscriptionState::Unsubscribed)
                    {
                        return pending(
                            Invariant::Convergence,
                            ix,
                            Some(ch),
                            format!("is {state:?} but not desired"),
                        );
                    }
                }
            }
            for ch in &host.app.desired {
                let Some(view) = m.channel(ch) else {
                    return pending(
                        Invariant::Convergence,
                        ix,
                        Some(ch),
                        "is desired but unknown to the client".into(),
                    );
                };
                if !allowed(&host.user, ch) {
                    if view.subscription
                        != (SubscriptionState::Failed {
                            code: ErrorCode::Forbidden,
                        })
                    {
                        return pending(
                            Invariant::Convergence,
                            ix,
                            Some(ch),
                            format!("is {:?}, expected forbidden", view.subscription),
                        );
                    }
                    continue;
                }
                if view.subscription != SubscriptionState::Subscribed {
                    return pending(
                        Invariant::Convergence,
                        ix,
                        Some(ch),
                        format!("is {:?}, not subscribed", view.subscription),
                    );
                }
                let (epoch, head) = self
                    .store
                    .store
                    .head(ch)
                    .map_or((None, Seq::ZERO), |(e, h)| (Some(e), h));
                if view.last_seq != head || (head > Seq::ZERO && view.epoch != epoch) {
                    let invariant = if multi.is_some() {
                        Invariant::EveryProcessDelivers
                    } else {
                        Invariant::InOrderDelivery
                    };
                    return pending(
                        invariant,
                        ix,
                        Some(ch),
                        format!(
                            "delivered up to {:?}{}, the log's head is {epoch:?}{head}",
                            view.epoch, view.last_seq
                        ),
                    );
                }
                // Across processes a join's member list is the serving
                // process's and relays may be lost (docs/DESIGN.md §5):
                // members' views are judged with one process only.
                let truth = self.present_truth(ch, None);
                if multi.is_none() && view.members != truth {
                    return pending(
                        Invariant::Convergence,
                        ix,
                        Some(ch),
                        format!("shows members {:?}, truth is {truth:?}", view.members),
                    );
                }
                if !view.typing.is_empty() {
                    return pending(
                        Invariant::Convergence,
                        ix,
                        Some(ch),
                        format!("still shows {:?} typing", view.typing),
                    );
                }
            }
        }
        for ch in self.params.channels.iter() {
            let truth = self.present_truth(ch, None);
            if let Some(cluster) = multi {
                let claimed = cluster.arbiter.claimed(ch);
                if claimed != truth {
                    return pending(
                        Invariant::PresenceIsUnion,
                        None,
                        Some(ch),
                        format!("the arbiter's claims {claimed:?}, truth is {truth:?}"),
                    );
                }
            }
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(server) = &node.server else { continue };
                let (truth, invariant) = match multi {
                    Some(_) => (self.present_truth(ch, Some(i)), Invariant::PresenceIsUnion),
                    None => (truth.clone(), Invariant::Convergence),
                };
                let server_view = server.present_users(ch);
                if server_view != truth {
                    return pending(
                        invariant,
                        None,
                        Some(ch),
                        format!("server s{i} presence {server_view:?}, truth is {truth:?}"),
                    );
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(server) = &node.server else { continue };
            if server.pending_store_ops() > 0 {
                return pending(
                    Invariant::NoLeaks,
                    None,
                    None,
                    format!(
                        "server s{i} has {} store operations pending",
                        server.pending_store_ops()
                    ),
                );
            }
        }
        None
    }
}
