//! The connection lifecycle: attempts, handshake, backoff, suspension,
//! heartbeat, close.

use crate::Instant;
use crate::ids::UserId;
use crate::wire::{ClientFrame, ErrorBody, PROTOCOL_VERSION};

use super::Client;
use super::events::{
    ClientEvent, CloseReason, ConnectionState, FailReason, ProtocolError, Transmit, TransportEvent,
};
use super::timers::TimerKey;

impl Client {
    /// Starts connecting. Single flight: while connecting or connected this
    /// does nothing; while waiting to retry it retries now; after `Failed`
    /// it starts over (a failure is never cached). Ignored once closed.
    pub fn connect(&mut self, now: Instant) {
        match self.state {
            ConnectionState::Connecting { .. }
            | ConnectionState::Connected { .. }
            | ConnectionState::Closed => {}
            ConnectionState::Idle | ConnectionState::Failed { .. } => {
                self.offline_since = Some(now);
                self.start_attempt(now, 1);
            }
            ConnectionState::Reconnecting { .. } | ConnectionState::Suspended { .. } => {
                self.timers.cancel(&TimerKey::Reconnect);
                self.start_attempt(now, self.attempt.max(1));
            }
        }
    }

    /// Closes the client for good: the transport is closed and every timer
    /// and pending request is dropped. Outbox entries stay exportable.
    pub fn close(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        self.close_transport(CloseReason::ClientClosed);
        if !sabotaged!(self, CloseKeepsTimers) {
            self.drop_connection(now);
            self.timers.clear();
        }
        self.set_state(ConnectionState::Closed);
    }

    /// Feeds what a transport reported. Events from a transport other than
    /// the current one are stale and ignored.
    pub fn handle_transport(&mut self, now: Instant, event: TransportEvent) {
        let generation = match &event {
            TransportEvent::Opened { generation }
            | TransportEvent::Frame { generation, .. }
            | TransportEvent::Undecodable { generation, .. }
            | TransportEvent::Closed { generation, .. } => *generation,
        };
        if self.live_generation() != Some(generation) {
            tracing::debug!(
                generation,
                current = self.generation,
                "stale transport event"
            );
            return;
        }
        match event {
            TransportEvent::Opened { .. } => self.on_opened(),
            TransportEvent::Frame { frame, .. } => {
                self.timers.cancel(&TimerKey::PingDeadline);
                self.on_frame(now, frame);
                self.leave_strays(now);
            }
            TransportEvent::Undecodable { error, .. } => {
                self.emit(ClientEvent::Protocol(ProtocolError::Undecodable(error)));
            }
            TransportEvent::Closed { reason, .. } => {
                tracing::debug!(%reason, "transport closed");
                self.connection_lost(now);
            }
        }
    }

    /// The generation whose events count now.
    fn live_generation(&self) -> Option<u64> {
        match self.state {
            ConnectionState::Connecting { generation, .. }
            | ConnectionState::Connected { generation, .. } => Some(generation),
            _ => None,
        }
    }

    fn start_attempt(&mut self, now: Instant, attempt: u32) {
        self.generation += 1;
        self.attempt = attempt;
        let generation = self.generation;
        self.transmits.push_back(Transmit::Open { generation });
        self.timers.arm(
            TimerKey::Connect,
            now.saturating_add(self.config.connect_timeout),
        );
        let state = ConnectionState::Connecting {
            attempt,
            generation,
        };
        if sabotaged!(self, SkipConnectingEvent) {
            self.state = state;
        } else {
            self.set_state(state);
        }
    }

    fn on_opened(&mut self) {
        if !matches!(self.state, ConnectionState::Connecting { .. })
            || self.opened == self.generation
        {
            self.emit(ClientEvent::Protocol(ProtocolError::UnexpectedFrame {
                frame: "opened",
                state: self.state.name(),
            }));
            return;
        }
        self.opened = self.generation;
        let frame = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            token: self.token.0.clone(),
        };
        self.send_frame(frame);
    }

    /// Queues a frame on the live transport.
    pub(super) fn send_frame(&mut self, frame: ClientFrame) {
        if let Some(generation) = self.live_generation() {
            self.transmits
                .push_back(Transmit::Frame { generation, frame });
        }
    }

    /// Whether the handshake succeeded on the live transport.
    pub(super) fn is_connected(&self) -> bool {
        matches!(self.state, ConnectionState::Connected { .. })
    }

    pub(super) fn on_welcome(&mut self, now: Instant, version: u32, user_id: UserId) {
        let ConnectionState::Connecting { generation, .. } = self.state else {
            self.unexpected("welcome");
            return;
        };
        if self.opened != generation {
            self.unexpected("welcome");
            return;
        }
        if version != PROTOCOL_VERSION {
            self.emit(ClientEvent::Protocol(ProtocolError::Version(version)));
            self.close_transport(CloseReason::Refused);
            self.connection_lost(now);
            return;
        }
        self.timers.cancel(&TimerKey::Connect);
        self.offline_since = None;
        self.attempt = 0;
        self.set_state(ConnectionState::Connected {
            generation,
            user_id,
        });
        if let Some(hb) = &self.config.heartbeat {
            self.timers
                .arm(TimerKey::Ping, now.saturating_add(hb.interval));
        }
        if let Some(every) = self.config.resync_interval {
            self.timers.arm(TimerKey::Resync, now.saturating_add(every));
        }
        self.reconcile_all(now);
        self.pump(now);
    }

    pub(super) fn on_refused(&mut self, now: Instant, error: ErrorBody) {
        if !matches!(self.state, ConnectionState::Connecting { .. }) {
            self.unexpected("refused");
            return;
        }
        self.close_transport(CloseReason::Refused);
        if error.retryable {
            self.connection_lost(now);
        } else {
            self.fail(
                now,
                FailReason::Refused {
                    code: error.code,
                    message: error.message,
                },
            );
        }
    }

    pub(super) fn unexpected(&mut self, frame: &'static str) {
        let state = self.state.name();
        self.emit(ClientEvent::Protocol(ProtocolError::UnexpectedFrame {
            frame,
            state,
        }));
    }

    fn close_transport(&mut self, reason: CloseReason) {
        if let Some(generation) = self.live_generation() {
            self.transmits
                .push_back(Transmit::Close { generation, reason });
        }
    }

    pub(super) fn on_connect_timeout(&mut self, now: Instant) {
        if matches!(self.state, ConnectionState::Connecting { .. }) {
            self.close_transport(CloseReason::ConnectTimeout);
            self.connection_lost(now);
        }
    }

    pub(super) fn on_reconnect_due(&mut self, now: Instant) {
        if matches!(
            self.state,
            ConnectionState::Reconnecting { .. } | ConnectionState::Suspended { .. }
        ) {
            self.start_attempt(now, self.attempt.max(1));
        }
    }

    /// The live transport failed (closed, timed out, refused retryably):
    /// tear down what belonged to it and schedule the next attempt. A lost
    /// connection is always retried at least once (`connected` is followed
    /// by `reconnecting`, whatever `suspend_after` and
    /// `max_connect_attempts` say); failed attempts count against them.
    fn connection_lost(&mut self, now: Instant) {
        let (next, was_connected) = match self.state {
            ConnectionState::Connecting { attempt, .. } => (attempt.saturating_add(1), false),
            ConnectionState::Connected { .. } => (1, true),
            _ => return,
        };
        self.drop_connection(now);
        self.timers.cancel(&TimerKey::Connect);
        if let Some(max) = self.config.max_connect_attempts {
            if next > max && !was_connected {
                self.fail(now, FailReason::AttemptsExhausted { attempts: max });
                return;
            }
        }
        let since = *self.offline_since.get_or_insert(now);
        self.attempt = next;
        if now.saturating_since(since) >= self.config.suspend_after && !was_connected {
            let retry_at = now.saturating_add(self.config.suspended_retry);
            self.timers.arm(TimerKey::Reconnect, retry_at);
            self.set_state(ConnectionState::Suspended { retry_at });
        } else {
            // The first retry of a streak waits `base`, then it grows.
            let retry = next.saturating_sub(1).max(1);
            let delay = self.config.reconnect_backoff.delay(retry, &mut self.rng);
            let retry_at = now.saturating_add(delay);
            self.timers.arm(TimerKey::Reconnect, retry_at);
            self.set_state(ConnectionState::Reconnecting {
                attempt: next,
                retry_at,
            });
        }
    }

    fn fail(&mut self, now: Instant, reason: FailReason) {
        self.drop_connection(now);
        self.timers
            .retain(|k| !matches!(k, TimerKey::Connect | TimerKey::Reconnect));
        self.attempt = 0;
        self.set_state(ConnectionState::Failed { reason });
    }

    /// Drops everything that lived on the connection: pending requests,
    /// their timers, joins, presence and typing. Desired subscriptions,
    /// inbox positions and the outbox survive for the next connection.
    fn drop_connection(&mut self, _now: Instant) {
        if self.outbox.in_flight() > 0 {
            // The transport died with sends in flight: perhaps the burst was
            // more than it could buffer. Halve the window so the resend after
            // the reconnect cannot overflow it again (found by the lab: seed
            // 106, a 22-frame stream buffer and a 32-send window reconnected
            // forever). Acks grow it back one by one.
            self.window = (self.window / 2).max(1);
        }
        self.requests.clear(&mut self.timers);
        self.strays.clear();
        if !sabotaged!(self, OutboxForgetsResend) {
            self.outbox.requeue_all();
        }
        if !sabotaged!(self, LostConnectionKeepsTimers) {
            self.timers
                .retain(|k| matches!(k, TimerKey::Connect | TimerKey::Reconnect));
        }
        self.reset_channels_offline();
    }

    pub(super) fn on_ping_due(&mut self, now: Instant) {
        let Some(hb) = self.config.heartbeat.clone() else {
            return;
        };
        if !self.is_connected() {
            return;
        }
        self.ping_nonce += 1;
        self.send_frame(ClientFrame::Ping {
            nonce: self.ping_nonce,
        });
        self.timers
            .arm(TimerKey::Ping, now.saturating_add(hb.interval));
        if !self.timers.is_armed(&TimerKey::PingDeadline) {
            self.timers
                .arm(TimerKey::PingDeadline, now.saturating_add(hb.timeout));
        }
    }

    pub(super) fn on_heartbeat_timeout(&mut self, now: Instant) {
        if self.is_connected() {
            tracing::debug!("heartbeat timeout: presuming the transport half-open");
            self.close_transport(CloseReason::HeartbeatTimeout);
            self.connection_lost(now);
        }
    }
}
