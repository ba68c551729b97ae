//! # lockstep-core
//!
//! Sans-IO state machines and wire frames for reliable realtime channels.
//!
//! **This crate is deterministic.** It opens no sockets, reads no clock, draws
//! no ambient randomness and spawns no threads. Time enters as an
//! [`Instant`] argument to every `handle_*` call; randomness enters as a seed.
//! The same sequence of inputs produces the same outputs, bit for bit, which is
//! what lets the simulator replay any world from its seed.
//!
//! The shape follows quinn-proto and str0m: input goes in through `handle_*`
//! methods and application commands; output comes out through `poll_*`
//! methods, which a driver drains after every input until they return `None`,
//! then re-arms its single timer from `poll_timeout`.
//!
//! Modules, in dependency order:
//! - [`time`], [`rng`], [`ids`]: the vocabulary;
//! - [`wire`]: frames, events, error codes and their encoding;
//! - [`client`]: the client state machine (connection, subscriptions, message sync);
//! - [`store`]: the store commands the server issues, and [`store::MemStore`];
//! - [`server`]: the server state machine.
//!
//! # Cargo features
//!
//! - `sabotage` (**unstable, test-only, never for production**): adds
//!   `sabotage::Sabotage`, a set of deliberate bugs, and a `set_sabotage`
//!   method on the client, the server and `MemStore` to switch them on, so
//!   the simulator can prove its oracle catches each broken guarantee. It
//!   adds methods only: no config struct changes shape with it, so feature
//!   unification cannot break a dependent's struct literal. It makes the
//!   machines wrong on purpose and its shape may change in any release.
//! - `test-util`: adds `client::FakeServer`, a small in-memory peer to
//!   drive a client against without I/O (examples, benches, fuzzing, an
//!   adapter's tests); no part of the API an app builds on.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Whether the deliberate bug `Break::$b` is switched on in `$machine` (a
/// machine with a `sabotage` field, set by its `set_sabotage`); always
/// `false`, with `$machine` not even evaluated, when the `sabotage` feature
/// is off.
#[cfg(feature = "sabotage")]
macro_rules! sabotaged {
    ($machine:expr, $b:ident) => {
        $machine.sabotage.has($crate::sabotage::Break::$b)
    };
}
#[cfg(not(feature = "sabotage"))]
macro_rules! sabotaged {
    ($machine:expr, $b:ident) => {
        false
    };
}

pub mod client;
pub mod ids;
pub mod rng;
#[cfg(feature = "sabotage")]
pub mod sabotage;
pub mod server;
pub mod store;
pub mod time;
pub mod wire;

pub use rng::Rng;
pub use time::Instant;
