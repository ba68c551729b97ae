//! A scenario: swarm parameters plus a time-ordered list of ops.
//!
//! The lab runs a scenario's ops at their virtual times during the safety
//! phase, then heals everything and waits for convergence. A scenario comes
//! either from a seed ([`Scenario::generate`], the VOPR way) or from the
//! proptest strategy in [`crate::strategy`], which can shrink it.

mod generate;

use std::fmt;

use lockstep_core::Instant;

use crate::op::Op;
use crate::swarm::{SwarmError, SwarmOverrides, SwarmParams};

/// Everything one run does, fixed before it starts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Scenario {
    /// The seed of the run: parameters, network and machines draw from it.
    pub seed: u64,
    /// The world and its fault mix.
    pub params: SwarmParams,
    /// Ops with their virtual time in ms, in non-decreasing time order;
    /// ops at the same time run in list order.
    pub ops: Vec<(u64, Op)>,
}

/// Why a scenario is malformed (a hand-written or edited one).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Op times go backwards.
    #[error("op {index} at {at_ms} ms comes before its predecessor")]
    Unordered {
        /// Position in `ops`.
        index: usize,
        /// Its time.
        at_ms: u64,
    },
    /// An op names a client the world does not have.
    #[error("op {index} names client {client} of {clients}")]
    UnknownClient {
        /// Position in `ops`.
        index: usize,
        /// The client named.
        client: u32,
        /// How many clients there are.
        clients: u32,
    },
    /// An op names a channel that is not in the parameters.
    #[error("op {index} names unknown channel {channel}")]
    UnknownChannel {
        /// Position in `ops`.
        index: usize,
        /// The channel named.
        channel: String,
    },
    /// A partition names nobody.
    #[error("op {index} partitions no client")]
    EmptyPartition {
        /// Position in `ops`.
        index: usize,
    },
}

impl Scenario {
    /// Draws parameters and ops from `seed`; the same seed and overrides
    /// always give the same scenario.
    pub fn generate(seed: u64, overrides: &SwarmOverrides) -> Result<Self, SwarmError> {
        let params = SwarmParams::draw(seed, overrides)?;
        Ok(Self::from_params(params))
    }

    /// Draws the ops for given parameters, from `params.seed`.
    #[must_use]
    pub fn from_params(params: SwarmParams) -> Self {
        let ops = generate::ops(&params);
        Scenario {
            seed: params.seed,
            params,
            ops,
        }
    }

    /// Adds process crashes, restarts and listener drops for a world of
    /// `servers` processes (none for one): drawn from the seed on a stream
    /// of their own and merged in time order, the other ops unchanged.
    #[must_use]
    pub fn with_servers(mut self, servers: usize) -> Self {
        let extra = generate::process_ops(&self.params, servers);
        if !extra.is_empty() {
            self.ops.extend(extra);
            self.ops.sort_by_key(|(at_ms, _)| *at_ms);
            self.ops.truncate(crate::swarm::OPS_MAX);
        }
        self
    }

    /// Checks that ops are in time order and name only existing clients and
    /// channels.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let clients = self.params.clients;
        let mut prev_ms = 0;
        for (index, (at_ms, op)) in self.ops.iter().enumerate() {
            if *at_ms < prev_ms {
                return Err(ScenarioError::Unordered {
                    index,
                    at_ms: *at_ms,
                });
            }
            prev_ms = *at_ms;
            let mut named = op.client().into_iter().collect::<Vec<_>>();
            if let Op::Partition { clients: cut, .. } = op {
                if cut.is_empty() {
                    return Err(ScenarioError::EmptyPartition { index });
                }
                named.extend(cut.iter().copied());
            }
            if let Some(c) = named.into_iter().find(|c| c.0 >= clients) {
                return Err(ScenarioError::UnknownClient {
                    index,
                    client: c.0,
                    clients,
                });
            }
            if let Some(ch) = op.channel() {
                if !self.params.channels.contains(ch) {
                    return Err(ScenarioError::UnknownChannel {
                        index,
                        channel: ch.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// How many ops are faults (the rest is workload).
    #[must_use]
    pub fn fault_count(&self) -> usize {
        self.ops.iter().filter(|(_, op)| op.is_fault()).count()
    }
}

impl fmt::Display for Scenario {
    /// The parameters, a count line, then one line per op with its time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.params)?;
        let faults = self.fault_count();
        writeln!(
            f,
            "  ops: {} ({} workload, {} faults)",
            self.ops.len(),
            self.ops.len() - faults,
            faults
        )?;
        for (at_ms, op) in &self.ops {
            writeln!(f, "  {:>9} {op}", Instant::from_millis(*at_ms).to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
