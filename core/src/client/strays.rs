//! Stray channels: the server sends events of a channel we do not want
//! (a join that arrived after our leave, a datagram delayed or
//! duplicated). Each is remembered, within a bound, and asked to leave.

use crate::Instant;
use crate::ids::ChannelId;
use crate::wire::ReqId;

use super::Client;
use super::events::{ClientEvent, ProtocolError};

/// Most stray channels tracked at once; more are only reported.
pub(super) const STRAYS_MAX: usize = 64;

/// Where the leave of a stray channel stands. A server that keeps sending
/// after the leave is asked again at most once per `join_timeout`, so a
/// confused peer cannot drive a leave storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stray {
    /// Seen; no leave sent yet.
    Seen,
    /// A leave is in flight.
    Leaving(ReqId),
    /// The last leave was answered (or timed out) at this time.
    Asked(Instant),
}

impl Client {
    /// Whether the client ever asked for `channel`; reports it if not.
    pub(super) fn known_channel(&mut self, channel: &ChannelId) -> bool {
        if self.channels.contains_key(channel) {
            return true;
        }
        self.emit(ClientEvent::Protocol(ProtocolError::UnknownChannel(
            channel.clone(),
        )));
        if self.strays.len() < STRAYS_MAX {
            self.strays.get_or_insert(channel.clone(), Stray::Seen);
        }
        false
    }

    /// The server sends events of channels we do not want: a join that
    /// arrived after our leave (a datagram delayed or duplicated), say. Ask
    /// it to leave, once per channel at a time, so it stops announcing us
    /// present there. Found by the lab (seed 157, datagrams).
    pub(super) fn leave_strays(&mut self, now: Instant) {
        let quiet = self.config.join_timeout;
        self.strays.retain(|_, s| match s {
            Stray::Asked(at) => now.saturating_since(*at) < quiet * 12,
            _ => true,
        });
        let due: Vec<ChannelId> = self
            .strays
            .iter()
            .filter(|(_, s)| match s {
                Stray::Seen => true,
                Stray::Leaving(_) => false,
                Stray::Asked(at) => now.saturating_since(*at) >= quiet,
            })
            .map(|(ch, _)| ch.clone())
            .collect();
        for channel in due {
            if self.channels.contains_key(&channel) || !self.is_connected() {
                self.strays.remove(&channel);
                continue;
            }
            let req = self.start_leave(now, &channel);
            self.strays.insert(channel, Stray::Leaving(req));
        }
    }

    /// A leave ended (answered or timed out): if it was a stray's, a later
    /// stray event may ask again after a quiet period. Whether it was.
    pub(super) fn stray_leave_ended(
        &mut self,
        now: Instant,
        channel: &ChannelId,
        req: ReqId,
    ) -> bool {
        if self.strays.get(channel) == Some(&Stray::Leaving(req)) {
            self.strays.insert(channel.clone(), Stray::Asked(now));
            true
        } else {
            false
        }
    }
}
