//! # lockstep-sim
//!
//! The deterministic lab in which lockstep's machines are proven.
//!
//! **One seed, one trace.** Nothing in this crate reads a clock, draws ambient
//! randomness, spawns a thread or iterates a hash map. Virtual time is an
//! [`Instant`](lockstep_core::Instant) passed in by the caller; every random
//! choice comes from a [`lockstep_core::Rng`] forked from the run's seed; ties
//! are broken by insertion order. Running a seed twice, on any machine, gives
//! the same sequence of events bit for bit, so a seed is a complete bug report.
//!
//! The pieces here are generic building blocks the world is assembled from:
//! - [`queue`]: a discrete-event queue ordered by (time, insertion);
//! - [`net`]: a sans-IO virtual network (VOPR-style packet simulator) with a
//!   stream model (TCP / WebSocket / Socket.IO) and a datagram model, and
//!   fault verbs (delay, loss, duplication, reordering, drops, partitions);
//! - [`fault`]: the fault vocabulary the lab and the turmoil harness share;
//! - [`plain`]: a model of a plain socket.io-client app that follows the
//!   protocol's guidance, mixed into the worlds beside the client machine;
//! - [`op`], [`swarm`], [`scenario`], [`strategy`]: the workload and fault
//!   vocabulary, the per-seed swarm parameters, the generated scenario and a
//!   proptest strategy that shrinks failures to few ops, clients and faults.
//!
//! The turmoil harness, where the real tokio drivers run over turmoil's
//! simulated TCP under the same oracle, is its own crate
//! (`lockstep-turmoil`, `sim/turmoil`), so the lab builds from core alone.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fault;
pub mod net;
pub mod op;
pub mod oracle;
pub mod plain;
pub mod queue;
pub mod run;
pub mod scenario;
pub mod strategy;
pub mod swarm;
pub mod trace;
pub mod world;
