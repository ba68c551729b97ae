//! The liveness check: has the healed world settled on the truth? While it
//! has not, [`World::pending`] says what is still missing, in words.

use std::collections::BTreeMap;
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
    /// subscribed to it.
    fn present_truth(&self, channel: &ChannelId) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .clients
            .iter()
            .filter(|c| c.machine.is_connected())
            .filter(|c| c.machine.subscription(channel) == Some(SubscriptionState::Subscribed))
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
        self.first_pending(Find { describe: true })
    }

    /// Whether the world has settled: [`World::pending`] is `None`, found
    /// the same way without describing what is missing.
    #[must_use]
    pub fn converged(&self) -> bool {
        self.first_pending(Find { describe: false }).is_none()
    }

    fn first_pending(&self, find: Find) -> Option<Pending> {
        if self.store.in_flight() > 0 {
            return find.found(Invariant::Convergence, None, None, || {
                format!("{} store operations in flight", self.store.in_flight())
            });
        }
        let Some(server) = self.server.as_ref() else {
            return find.found(Invariant::Convergence, None, None, || {
                "the server is down".into()
            });
        };
        // Each channel's truth is asked for by every client in it: work it
        // out once per check.
        let mut truths: BTreeMap<&ChannelId, Vec<UserId>> = BTreeMap::new();
        for host in &self.clients {
            let ix = Some(host.ix);
            let m = &host.machine;
            if !host.app.online || m.gave_up() {
                continue;
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
            for ch in &m.channels() {
                if !host.app.desired.contains(ch) {
                    let state = m.subscription(ch);
                    if state
                        .as_ref()
                        .is_some_and(|s| *s != SubscriptionState::Unsubscribed)
                    {
                        return find.found(Invariant::Convergence, ix, Some(ch), || {
                            format!("is {state:?} but not desired")
                        });
                    }
                }
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
                    return find.found(Invariant::InOrderDelivery, ix, Some(ch), || {
                        format!(
                            "delivered up to {:?}{}, the log's head is {epoch:?}{head}",
                            view.epoch, view.last_seq
                        )
                    });
                }
                let truth = truths.entry(ch).or_insert_with(|| self.present_truth(ch));
                if view.members != *truth {
                    return find.found(Invariant::Convergence, ix, Some(ch), || {
                        format!("shows members {:?}, truth is {truth:?}", view.members)
                    });
                }
                if !view.typing.is_empty() {
                    return find.found(Invariant::Convergence, ix, Some(ch), || {
                        format!("still shows {:?} typing", view.typing)
                    });
                }
            }
        }
        for ch in self.params.channels.iter() {
            let truth = truths.entry(ch).or_insert_with(|| self.present_truth(ch));
            let server_view = server.present_users(ch);
            if server_view != *truth {
                return find.found(Invariant::Convergence, None, Some(ch), || {
                    format!("server presence {server_view:?}, truth is {truth:?}")
                });
            }
        }
        if server.pending_store_ops() > 0 {
            return find.found(Invariant::NoLeaks, None, None, || {
                format!(
                    "server has {} store operations pending",
                    server.pending_store_ops()
                )
            });
        }
        None
    }
}
