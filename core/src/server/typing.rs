//! Typing indicators: ephemeral, per (channel, user), expiring by timer.

use std::collections::BTreeMap;

use crate::Instant;
use crate::ids::{ChannelId, UserId};
use crate::server::ConnId;

/// An active indicator: which connection set it and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Typer {
    pub(crate) conn: ConnId,
    pub(crate) deadline: Instant,
}

/// Active typing indicators. Never stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Typing {
    active: BTreeMap<(ChannelId, UserId), Typer>,
}

impl Typing {
    /// Starts or refreshes an indicator; returns the replaced one, whose
    /// timer the caller cancels.
    pub(crate) fn start(
        &mut self,
        channel: &ChannelId,
        user: &UserId,
        typer: Typer,
    ) -> Option<Typer> {
        self.active.insert((channel.clone(), user.clone()), typer)
    }

    /// Stops an indicator; returns it when there was one.
    pub(crate) fn stop(&mut self, channel: &ChannelId, user: &UserId) -> Option<Typer> {
        self.active.remove(&(channel.clone(), user.clone()))
    }

    /// Stops the indicator only if `conn` set it (a leave or disconnect of
    /// another connection of the same user leaves it alone).
    pub(crate) fn stop_by(
        &mut self,
        channel: &ChannelId,
        user: &UserId,
        conn: ConnId,
    ) -> Option<Typer> {
        let key = (channel.clone(), user.clone());
        match self.active.get(&key) {
            Some(t) if t.conn == conn => self.active.remove(&key),
            _ => None,
        }
    }

    /// Expires the indicator if `deadline` is still its deadline.
    pub(crate) fn expire(&mut self, channel: &ChannelId, user: &UserId, deadline: Instant) -> bool {
        let key = (channel.clone(), user.clone());
        match self.active.get(&key) {
            Some(t) if t.deadline == deadline => self.active.remove(&key).is_some(),
            _ => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.active.len()
    }
}
