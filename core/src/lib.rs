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
//!   `sabotage::Sabotage`, a set of deliberate bugs carried in the client,
//!   server and store configurations, so the simulator can prove its oracle
//!   catches each broken guarantee. It makes the machines wrong on purpose
//!   and its shape may change in any release.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Whether the deliberate bug `Break::$b` is switched on in `$config` (a
/// config with a `sabotage` field); always `false`, with `$config` not even
/// evaluated, when the `sabotage` feature is off.
#[cfg(feature = "sabotage")]
macro_rules! sabotaged {
    ($config:expr, $b:ident) => {
        $config.sabotage.has($crate::sabotage::Break::$b)
    };
}
#[cfg(not(feature = "sabotage"))]
macro_rules! sabotaged {
    ($config:expr, $b:ident) => {
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
