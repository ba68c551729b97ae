//! Rate budgets of every request kind, per connection and per user.
//!
//! Each connection has a token bucket per kind; so has each user, scaled
//! by `ServerConfig::user_budget_factor`, shared by all its connections. A
//! request takes a token from both or from neither, so neither a flood on
//! one connection nor one spread over many connections passes its budget.

use crate::Instant;
use crate::server::ServerConfig;
use crate::server::rate::{ByteBucket, TokenBucket};

/// The request kinds with a budget of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `message:send`, `message:update`, `message:delete`: store writes.
    Message,
    /// `channel:join`: a store read and a presence broadcast.
    Join,
    /// `channel:leave`: a presence broadcast after the grace.
    Leave,
    /// `channel:history`: a store read.
    History,
    /// `message:read`: a store write and a broadcast.
    Receipt,
    /// `typing`: a broadcast.
    Typing,
}

impl Kind {
    const COUNT: usize = 6;

    fn index(self) -> usize {
        match self {
            Kind::Message => 0,
            Kind::Join => 1,
            Kind::Leave => 2,
            Kind::History => 3,
            Kind::Receipt => 4,
            Kind::Typing => 5,
        }
    }

    /// What the refusal says.
    pub(crate) fn refusal(self) -> &'static str {
        match self {
            Kind::Message => "too many messages, slow down",
            Kind::Join => "too many joins, slow down",
            Kind::Leave => "too many leaves, slow down",
            Kind::History => "too many history requests, slow down",
            Kind::Receipt => "too many read receipts, slow down",
            Kind::Typing => "too many typing notices",
        }
    }

    /// (per second, burst) of one connection.
    fn rate(self, config: &ServerConfig) -> (u32, u32) {
        match self {
            Kind::Message => (config.messages_per_sec, config.messages_burst),
            Kind::Join => (config.joins_per_sec, config.joins_burst),
            Kind::Leave => (config.leaves_per_sec, config.leaves_burst),
            Kind::History => (config.history_per_sec, config.history_burst),
            Kind::Receipt => (config.receipts_per_sec, config.receipts_burst),
            Kind::Typing => (config.typing_per_sec, config.typing_burst),
        }
    }

    const ALL: [Kind; Kind::COUNT] = [
        Kind::Message,
        Kind::Join,
        Kind::Leave,
        Kind::History,
        Kind::Receipt,
        Kind::Typing,
    ];
}

/// One token bucket per request kind.
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    buckets: [TokenBucket; Kind::COUNT],
}

impl Budgets {
    /// A connection's budgets (`scale` 1) or a user's
    /// (`user_budget_factor`), full.
    pub(crate) fn new(config: &ServerConfig, scale: u32, now: Instant) -> Self {
        let bucket = |kind: Kind| {
            let (per_sec, burst) = kind.rate(config);
            TokenBucket::new(
                per_sec.saturating_mul(scale.max(1)),
                burst.saturating_mul(scale.max(1)),
                now,
            )
        };
        Budgets {
            buckets: Kind::ALL.map(bucket),
        }
    }

    /// Takes a token of `kind` from `first` and `second` (the connection's
    /// and its user's), or from neither.
    pub(crate) fn take_both(
        first: &mut Budgets,
        second: &mut Budgets,
        kind: Kind,
        now: Instant,
    ) -> bool {
        let i = kind.index();
        if !first.buckets[i].try_take(now) {
            return false;
        }
        if second.buckets[i].try_take(now) {
            return true;
        }
        first.buckets[i].refund();
        false
    }
}

/// What the server keeps per user while any of its connections is open:
/// the user's share of every budget.
#[derive(Debug, Clone)]
pub(crate) struct UserLimits {
    /// Its open connections.
    pub(crate) conns: usize,
    /// Request budgets shared by its connections.
    pub(crate) budgets: Budgets,
    /// Bytes of join replies and history pages it may still read.
    pub(crate) reply_bytes: ByteBucket,
}

impl UserLimits {
    pub(crate) fn new(config: &ServerConfig, now: Instant) -> Self {
        UserLimits {
            conns: 0,
            budgets: Budgets::new(config, config.user_budget_factor, now),
            reply_bytes: ByteBucket::new(
                config.user_reply_bytes_per_sec,
                config.user_reply_bytes_burst,
                now,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_from_both_budgets_or_from_neither() {
        let config = ServerConfig {
            history_per_sec: 1,
            history_burst: 2,
            user_budget_factor: 2,
            ..ServerConfig::default()
        };
        let t0 = Instant::from_millis(0);
        let mut user = Budgets::new(&config, config.user_budget_factor, t0);
        let mut a = Budgets::new(&config, 1, t0);
        let mut b = Budgets::new(&config, 1, t0);
        let mut c = Budgets::new(&config, 1, t0);
        let mut take = |conn: &mut Budgets| Budgets::take_both(conn, &mut user, Kind::History, t0);
        // Two per connection, four for the user across its connections.
        assert!(take(&mut a) && take(&mut a));
        assert!(!take(&mut a), "connection budget spent");
        assert!(take(&mut b) && take(&mut b));
        assert!(!take(&mut c), "user budget spent");
        // The refused request cost the connection nothing: once the user's
        // bucket refills (one token a second, two for the user) it passes.
        let t1 = Instant::from_millis(500);
        assert!(Budgets::take_both(&mut c, &mut user, Kind::History, t1));
        // Other kinds have their own budgets.
        assert!(Budgets::take_both(&mut a, &mut user, Kind::Join, t0));
    }
}
