//! The socket: socket.io-client's connect, reconnection with backoff, and
//! what is lost with a connection.

use lockstep_core::Instant;
use lockstep_core::client::{CloseReason, Transmit};
use lockstep_core::ids::ChannelId;
use lockstep_core::wire::{ClientFrame, ReqId};

use super::{Link, PlainClient};

impl PlainClient {
    pub(super) fn open(&mut self, now: Instant, attempt: u32) {
        self.generation += 1;
        self.link = Link::Opening {
            generation: self.generation,
            attempt,
            deadline: now.saturating_add(self.config.connect_timeout),
        };
        self.transmits.push_back(Transmit::Open {
            generation: self.generation,
        });
    }

    /// The handshake or the connection took too long, or went silent:
    /// closed, and tried again as after a loss.
    pub(super) fn abandon(&mut self, now: Instant) {
        if let Link::Opening { generation, .. } | Link::Open { generation, .. } = self.link {
            self.transmits.push_back(Transmit::Close {
                generation,
                reason: CloseReason::HeartbeatTimeout,
            });
        }
        self.lost(now);
    }

    /// The transport is gone: socket.io-client reconnects after its delay.
    pub(super) fn lost(&mut self, now: Instant) {
        let attempt = match self.link {
            Link::Opening { attempt, .. } => attempt.saturating_add(1),
            Link::Open { .. } => 1,
            _ => return,
        };
        self.went_offline(now);
        let base = self
            .config
            .reconnect_delay_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
        let delay = base.min(self.config.reconnect_delay_max_ms);
        // randomizationFactor 0.5: ±50%.
        let ms = delay / 2 + self.rng.below(delay + 1);
        self.link = Link::Waiting {
            retry_at: now.saturating_add(std::time::Duration::from_millis(ms)),
            attempt,
        };
    }

    /// Whatever lived on the connection is gone; positions and unsent
    /// messages stay.
    pub(super) fn went_offline(&mut self, _now: Instant) {
        let mut out = Vec::new();
        for ch in self.channels.values_mut() {
            ch.offline(&mut out);
        }
        self.events.extend(out);
        let forgotten: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.desired)
            .map(|(n, _)| n.clone())
            .collect();
        for name in forgotten {
            self.forget(&name);
        }
        self.strays.clear();
        self.outbox.connection_lost();
    }

    pub(super) fn req(&mut self) -> ReqId {
        self.next_req += 1;
        ReqId(self.next_req)
    }

    pub(super) fn frame(&mut self, frame: ClientFrame) {
        if let Link::Opening { generation, .. } | Link::Open { generation, .. } = self.link {
            self.transmits
                .push_back(Transmit::Frame { generation, frame });
        }
    }
}
