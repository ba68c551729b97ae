//! # lockstep-turmoil
//!
//! The turmoil harness: the REAL tokio drivers (`lockstep-tokio`) as
//! turmoil hosts, over the framed transport on turmoil's simulated TCP,
//! judged by the same oracle as the lab.
//!
//! One server host (its [`SharedMemStore`](lockstep_tokio::server::SharedMemStore)
//! lives outside the host, so a bounce loses the server's memory and
//! connections but keeps the log) and 2-3 client hosts. A [`Plan`] says what
//! the apps do (subscribe, unsubscribe, send) and which faults strike
//! (partition/repair, hold/release, link latency, server bounce); the test
//! thread steps the simulation and plays the plan; every event a client's
//! handle delivers is fed to the oracle as it is read. At the end every
//! fault is healed and the world must settle within a bounded virtual time.
//!
//! What the oracle judges here: invariants 1, 3, 4, 5 and 9 on every event
//! read, 8 on every connection-state event (from the machine's pending
//! requests and armed timers, which the driver reads in the step that
//! produced the event: `ClientDriverConfig::record_internals`), 7 on every
//! frame a client connection carries (a tap in the connector sees joins,
//! leaves and channel frames), 2 on the store's final logs, and liveness
//! after healing (every client connected, subscribed as desired, at each
//! log's head, every send resolved, presence views true: 3, 4 and 6).
//!
//! Turmoil is seeded ([`Plan::seed`]), the clients too, and no wall clock
//! is read; still, a tokio `select!` without `biased` draws from tokio's
//! own RNG, so two runs of one plan are not promised to be identical. A
//! failure prints the plan, which is what proptest shrinks.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod hosts;
mod lab;
mod plan;
mod run;
mod strategy;
mod tap;

pub use plan::{Action, CHANNELS, CLIENTS_MAX, Plan, Step, channel, host_name};
pub use run::{Failure, FailureKind, HEAL_MAX, Report, Tweaks, run, run_with};
pub use strategy::{AFTER_MS_MAX, BURST_MAX, LATENCY_MS_MAX, STEPS_MAX, plan};
