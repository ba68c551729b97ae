//! # lockstep-server
//!
//! The lockstep chat server as a library (the `lockstep-server` binary is
//! a thin `main` over it): the Socket.IO front of `lockstep-socketioxide`
//! on axum, the SQLite store of `lockstep-sqlite` (or memory), JWT HS256
//! auth ([`jwt`]), and every setting as a flag with an environment
//! variable ([`cli`]). [`serve::serve`] runs it until a cancellation token
//! fires, then shuts down gracefully.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod health;
pub mod jwt;
mod listen;
pub mod metered;
pub mod serve;
pub mod web;
