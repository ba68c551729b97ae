//! Server machine tests: named scenarios snapshotted as traces, and a
//! property test over random frames.

mod arbiter;
mod batching;
mod harness;
mod idle;
mod limits;
mod order_gate;
mod props;
mod scenarios;
mod scenarios_more;
mod shared;
mod stale_join;
