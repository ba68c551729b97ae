//! Fixtures shared by the lockstep criterion benches.
//!
//! Benches must measure the machines, not their set-up, so everything that
//! brings a machine into the state a bench needs (a handshake, joins, a
//! pre-filled store) lives here and runs outside the timed region. The
//! fixtures drive the real machines through their public API only, the way
//! a driver would.

pub mod client;
pub mod frames;
pub mod server;
