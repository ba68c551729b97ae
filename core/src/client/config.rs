//! Every client tunable in one documented place.

use std::time::Duration;

use crate::Rng;

/// Exponential backoff with jitter: `base * factor^(attempt-1)`, capped, then
/// shortened by a random fraction up to `jitter`.
///
/// Jitter spreads a crowd of clients that lost the same server so they do not
/// reconnect in lockstep; it is drawn from the client's injected RNG.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Longest delay, whatever the attempt.
    pub cap: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Fraction in `[0, 1]` of the delay that may be taken off at random.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based), with jitter drawn
    /// from `rng`. Never panics on extreme configurations.
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1).min(64)).unwrap_or(64);
        let raw = self.base.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = raw.min(self.cap.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let secs = capped * (1.0 - jitter * rng.unit());
        // Whole milliseconds: the clock's resolution.
        Duration::from_millis((secs * 1000.0) as u64)
    }
}

/// Half-open detection for transports without their own liveness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// How often a `ping` is sent while connected.
    pub interval: Duration,
    /// How long after a `ping` the server may stay silent before the
    /// transport is presumed dead and replaced.
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Every default of the client, in one type, so an app tunes one value and
/// reads all the others here rather than in scattered constants.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Longest time from `Open` to `welcome` before the attempt is abandoned.
    pub connect_timeout: Duration,
    /// Pause between connection attempts.
    pub reconnect_backoff: Backoff,
    /// Attempts before giving up with `Failed`; `None` retries forever.
    pub max_connect_attempts: Option<u32>,
    /// Offline longer than this, the client reports `Suspended`.
    pub suspend_after: Duration,
    /// Retry pace while suspended.
    pub suspended_retry: Duration,
    /// Ping-based liveness; `None` trusts the transport to report closes.
    pub heartbeat: Option<Heartbeat>,
    /// On a transport that can lose frames (datagrams), how often every
    /// joined channel is refreshed with an idempotent re-join from its
    /// position: the reply brings the missed tail of the log and a fresh
    /// member list, so a lost broadcast or presence change cannot leave the
    /// view stale for good. `None` (the default) on reliable transports.
    pub resync_interval: Option<Duration>,
    /// Longest wait for a `channel:join` reply before retrying.
    pub join_timeout: Duration,
    /// Pause between join attempts of one channel.
    pub join_backoff: Backoff,
    /// Longest wait for any other reply (send, update, delete, history, read).
    pub request_timeout: Duration,
    /// Pause after a retryable refusal of a send, before the outbox resumes.
    pub send_backoff: Backoff,
    /// Unacknowledged outbox requests in flight per connection (pipelining).
    /// Per-sender order rests on the transport delivering one connection's
    /// frames in order (TCP, WebSocket, Socket.IO). On a transport that can
    /// reorder frames (datagrams), set it to 1, or later sends may overtake
    /// earlier ones on the wire and get lower seqs.
    pub send_window: usize,
    /// Most entries the outbox holds; `send` beyond it is refused.
    pub outbox_max: usize,
    /// Timeouts or retryable refusals one outbox entry survives before it
    /// fails. Resends after a reconnect do not count: the connection
    /// machine owns that failure.
    pub max_send_failures: u32,
    /// Most out-of-order events buffered per channel; past it the buffer is
    /// dropped and refilled from history.
    pub inbox_buffer_max: usize,
    /// Events asked for per `channel:history` page.
    pub history_page: u64,
    /// Recent events loaded on the first join of a channel (and after a reset).
    pub initial_backlog: u64,
    /// How long a typing indicator lives without a refresh, both ways.
    pub typing_ttl: Duration,
    /// Shortest pause between two `typing: true` frames for one channel.
    pub typing_resend: Duration,
    /// Most channels the app may want subscribed at once.
    pub max_channels: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(30),
                factor: 2.0,
                jitter: 0.5,
            },
            max_connect_attempts: None,
            suspend_after: Duration::from_secs(120),
            suspended_retry: Duration::from_secs(60),
            heartbeat: None,
            resync_interval: None,
            join_timeout: Duration::from_secs(5),
            join_backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(30),
                factor: 2.0,
                jitter: 0.5,
            },
            request_timeout: Duration::from_secs(10),
            send_backoff: Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(10),
                factor: 2.0,
                jitter: 0.5,
            },
            send_window: 32,
            outbox_max: 1_000,
            max_send_failures: 10,
            inbox_buffer_max: 1_024,
            history_page: 500,
            initial_backlog: 50,
            typing_ttl: Duration::from_secs(5),
            typing_resend: Duration::from_secs(3),
            max_channels: 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let b = ClientConfig::default().reconnect_backoff;
        let mut rng = Rng::new(1);
        for attempt in 1..40 {
            let d = b.delay(attempt, &mut rng);
            let full = (1u64 << (attempt - 1).min(10)).min(30) * 1000;
            assert!(d.as_millis() as u64 <= full, "{attempt}: {d:?}");
            assert!(d.as_millis() as u64 >= full / 2, "{attempt}: {d:?}");
        }
        let wild = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
            factor: f64::NAN,
            jitter: 9.0,
        };
        let _ = wild.delay(u32::MAX, &mut rng);
    }
}
