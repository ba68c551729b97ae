//! The connection state chart: which state may follow which. The one copy
//! of the rule: the machine's tests check that it never leaves the chart,
//! the lab's oracle judges invariant 9 with it, and a test checks that
//! `docs/PROTOCOL.md` draws exactly this chart.

use super::events::ConnectionState;

impl ConnectionState {
    /// Whether the machine may report `self` right after `previous`
    /// (`previous` is `Idle` for the first report of a new machine). The
    /// edges, each one taken by the machine:
    ///
    /// - `idle` → `connecting` (`connect()`), `closed` (`close()`);
    /// - `connecting` → `connected` (welcome), `reconnecting` (the attempt
    ///   failed: transport closed, connect timeout, retryable refusal),
    ///   `suspended` (it failed while offline longer than
    ///   `suspend_after`), `failed` (refused for good, or attempts
    ///   exhausted), `closed`;
    /// - `connected` → `reconnecting` (transport lost, heartbeat timeout:
    ///   a lost connection is always retried at least once), `closed`;
    /// - `reconnecting`, `suspended`, `failed` → `connecting` (backoff
    ///   elapsed, or `connect()`), `closed`;
    /// - `closed` → nothing: it is terminal.
    ///
    /// A state never follows itself: every report is a change.
    #[must_use]
    pub fn may_follow(&self, previous: &ConnectionState) -> bool {
        use ConnectionState as S;
        matches!(
            (previous, self),
            (S::Idle, S::Connecting { .. } | S::Closed)
                | (
                    S::Connecting { .. },
                    S::Connected { .. }
                        | S::Reconnecting { .. }
                        | S::Suspended { .. }
                        | S::Failed { .. }
                        | S::Closed
                )
                | (S::Connected { .. }, S::Reconnecting { .. } | S::Closed)
                | (
                    S::Reconnecting { .. } | S::Suspended { .. } | S::Failed { .. },
                    S::Connecting { .. } | S::Closed
                )
        )
    }
}
