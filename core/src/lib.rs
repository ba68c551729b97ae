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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod ids;
pub mod rng;
pub mod server;
pub mod store;
pub mod time;
pub mod wire;

pub use rng::Rng;
pub use time::Instant;
