//! The liveness check: has the healed world settled on the truth? While it
//! has not, [`World::pending`] says what is still missing, in words.

use std::collections::BTreeMap;
use std::fmt;

use lockstep_core::client::SubscriptionState;
use lockstep_core::ids::{ChannelId, Seq, UserId};
use lockstep_core::wire::ErrorCode;

use super::World;
use super::client_host::ClientHost;
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

/// How a convergence check reports what it finds: in words, or (for the
/// check every 250 virtual ms, whose answer is only "settled or not") with
/// no words, which saves formatting views and outboxes nobody reads.
#[derive(Clone, Copy)]
struct Find {
    describe: bool,
}

impl Find {
    fn found(
        self,
        invariant: Invariant,
        client: Option<ClientIx>,
        channel: Option<&ChannelId>,
        what: impl FnOnce() -> String,
    ) -> Option<Pending> {
        Some(Pending {
            invariant,
            client,
            channel: channel.cloned(),
            what: if self.describe { what() } else { String::new() },
        })
    }
}

impl World {
    /// Users truly present in `channel`: a client of theirs is online and
    /// subscribed to it (through process `node`, when given).
    fn present_truth(&self, channel: &ChannelId, node: Option<usize>) -> Vec<&UserId> {
        let present = |c: &&ClientHost| {
            c.machine.is_connected()
                && (node.is_none() || self.node_of(c.ix) == node)
                && c.machine.subscription(channel) == Some(SubscriptionState::Subscribed)
        };
        // Users in name order, each once.
        self.by_user
            .iter()
            .filter_map(|clients| {
                let mut hosts = clients.iter().map(|&i| &self.clients[i]);
                hosts.find(present).map(|c| &c.user)
            })
            .collect()
    }

    /// The first thing not converged yet, or `None` when the world has
    /// settled: every online client connected, subscriptions as desired, at
    /// the head of every log, outbox empty, presence true, no typing left,
    /// no store work pending.
    #[must_use]
    pub fn pending(&self) -> Option<Pending> {
        self.first_pending(Find { describe: true })
    }

    /// Whether the world has settled: [`World::pending`] is `None`, found
    /// the same way without describing what is missing.
    ///
    /// Any one thing not settled answers it, so the client found unsettled
    /// by the last check (which usually still is) is asked first.
    #[must_use]
    pub fn converged(&self) -> bool {
        let find = Find { describe: false };
        let hint = self
            .unsettled
            .get()
            .and_then(|ix| self.clients.get(ix.index()));
        if let Some(host) = hint {
            if self
                .client_pending(host, find, &mut BTreeMap::new())
                .is_some()
            {
                return false;
            }
        }
        let pending = self.first_pending(find);
        self.unsettled.set(pending.as_ref().and_then(|p| p.client));
        pending.is_none()
    }

    fn first_pending(&self, find: Find) -> Option<Pending> {
        if self.store.in_flight() > 0 {
            return find.found(Invariant::Convergence, None, None, || {
                format!("{} store operations in flight", self.store.in_flight())
            });
        }
        if let Some(node) = self.nodes.iter().position(|n| n.server.is_none()) {
            return find.found(Invariant::Convergence, None, None, || {
                if self.nodes.len() == 1 {
                    "the server is down".into()
                } else {
                    format!("server s{node} is down")
                }
            });
        }
        let multi = self.cluster.as_ref();
        if let Some(calls) = multi.map(|c| c.calls_in_flight()).filter(|n| *n > 0) {
            return find.found(Invariant::PresenceIsUnion, None, None, || {
                format!("{calls} presence commands at the arbiter")
            });
        }
        // Each channel's truth is asked for by every client in it: work it
        // out once per check.
        let mut truths: BTreeMap<&ChannelId, Vec<&UserId>> = BTreeMap::new();
        for host in &self.clients {
            if let Some(pending) = self.client_pending(host, find, &mut truths) {
                return Some(pending);
            }
        }
        for ch in self.params.channels.iter() {
            let truth = truths
                .entry(ch)
                .or_insert_with(|| self.present_truth(ch, None));
            if let Some(cluster) = multi {
                let claimed = cluster.arbiter.claimed(ch);
                if !claimed.iter().eq(truth.iter().copied()) {
                    return find.found(Invariant::PresenceIsUnion, None, Some(ch), || {
                        format!("the arbiter's claims {claimed:?}, truth is {truth:?}")
                    });
                }
            }
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(server) = &node.server else { continue };
                // A process knows who is present everywhere in a channel it
                // has members in, and nothing of one it has none in.
                let (expected, invariant) = match multi {
                    Some(_) if self.present_truth(ch, Some(i)).is_empty() => {
                        (&[][..], Invariant::PresenceIsUnion)
                    }
                    Some(_) => (truth.as_slice(), Invariant::PresenceIsUnion),
                    None => (truth.as_slice(), Invariant::Convergence),
                };
                let server_view = server.present_users(ch);
                if !server_view.iter().eq(expected.iter().copied()) {
                    return find.found(invariant, None, Some(ch), || {
                        format!("server s{i} presence {server_view:?}, truth is {expected:?}")
                    });
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(server) = &node.server else { continue };
            if server.pending_store_ops() > 0 {
                return find.found(Invariant::NoLeaks, None, None, || {
                    format!(
                        "server s{i} has {} store operations pending",
                        server.pending_store_ops()
                    )
                });
            }
        }
        None
    }

    /// What `host`'s client has not settled on yet, if anything; `truths`
    /// keeps each channel's present users, worked out once per check.
    fn client_pending<'w>(
        &'w self,
        host: &'w ClientHost,
        find: Find,
        truths: &mut BTreeMap<&'w ChannelId, Vec<&'w UserId>>,
    ) -> Option<Pending> {
        let multi = self.cluster.as_ref();
        let ix = Some(host.ix);
        let m = &host.machine;
        if !host.app.online || m.gave_up() {
            return None;
        }
        if !m.is_connected() {
            return find.found(Invariant::Convergence, ix, None, || {
                format!("is {}, not connected", m.state_name())
            });
        }
        if let Some(channel) = m.first_unresolved_channel() {
            return find.found(Invariant::OneOutcome, ix, Some(&channel), || {
                let first = m.first_unresolved().map(|(_, first)| first);
                format!(
                    "has {} unresolved outbox entries, the first {}; its channel {:?}",
                    m.unresolved(),
                    first.unwrap_or_default(),
                    m.channel(&channel),
                )
            });
        }
        if let Some((ch, state)) = m.first_undesired_subscription(&host.app.desired) {
            return find.found(Invariant::Convergence, ix, Some(ch), || {
                format!("is {state:?} but not desired")
            });
        }
        for ch in &host.app.desired {
            let Some(view) = m.channel(ch) else {
                return find.found(Invariant::Convergence, ix, Some(ch), || {
                    "is desired but unknown to the client".into()
                });
            };
            if !allowed(&host.user, ch) {
                if view.subscription
                    != (SubscriptionState::Failed {
                        code: ErrorCode::Forbidden,
                    })
                {
                    return find.found(Invariant::Convergence, ix, Some(ch), || {
                        format!("is {:?}, expected forbidden", view.subscription)
                    });
                }
                continue;
            }
            if view.subscription != SubscriptionState::Subscribed {
                return find.found(Invariant::Convergence, ix, Some(ch), || {
                    format!("is {:?}, not subscribed", view.subscription)
                });
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
                return find.found(invariant, ix, Some(ch), || {
                    format!(
                        "delivered up to {:?}{}, the log's head is {epoch:?}{head}",
                        view.epoch, view.last_seq
                    )
                });
            }
            // Across processes too: a join lists the users of every
            // process, and lost relays are made good by the resync.
            let truth = truths
                .entry(ch)
                .or_insert_with(|| self.present_truth(ch, None));
            if !view.members.iter().eq(truth.iter().copied()) {
                let invariant = if multi.is_some() {
                    Invariant::PresenceIsUnion
                } else {
                    Invariant::Convergence
                };
                return find.found(invariant, ix, Some(ch), || {
                    format!("shows members {:?}, truth is {truth:?}", view.members)
                });
            }
            if !view.typing.is_empty() {
                return find.found(Invariant::Convergence, ix, Some(ch), || {
                    format!("still shows {:?} typing", view.typing)
                });
            }
        }
        None
    }
}
