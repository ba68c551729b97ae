//! A connection's send-order gate for one channel: the sends it refused
//! that have not been admitted since, in the sender's order.
//!
//! A send's *place* is the number of its first arrival on the connection
//! (every send counts, whatever its channel). A client sends its messages
//! for the first time in its own order, so places are the sender's order.
//! The gate admits only the first waiting send (its *head*): a later
//! message, whether new or resent, is refused while an earlier one waits,
//! however the client times its resends. Found outside the lab (issue 12):
//! a gate that opened as soon as its blocking send was admitted let a plain
//! client's new sends overtake a refused one whose refusal was still on
//! the wire.
//!
//! A waiting send that is not seen again within `order_gate_ttl` of its
//! last refusal was given up by its client: it stops holding the sends
//! behind it. A client that still holds it resends it sooner than that.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::Instant;
use crate::ids::ClientMsgId;
use crate::wire::ErrorCode;

/// Sends one gate remembers: several send windows over. A send refused
/// while the gate is full is not remembered; it is refused all the same
/// and, when it comes again, counts as the sender's newest.
pub(crate) const WAITING_MAX: usize = 256;

/// One refused send, waiting to come again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    key: u64,
    /// The refusal's code, given to the sends it holds back.
    code: ErrorCode,
    /// When it counts as given up if not seen again.
    until: Instant,
}

/// See the module docs. 40 bytes or so per waiting send, whatever the
/// length of its id (ids are kept as a fixed-key hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderGate {
    /// Waiting sends by place.
    by_place: BTreeMap<u64, Waiting>,
    /// The place of each waiting send, by id key.
    places: BTreeMap<u64, u64>,
}

/// What the gate says to a send that arrives while it holds sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It is the first waiting send, or nothing earlier waits any more:
    /// it may go, at this place.
    Pass { place: u64 },
    /// An earlier send waits: refused with that send's code.
    Hold { code: ErrorCode },
}

impl OrderGate {
    /// Whether nothing waits (the gate is open and can be dropped).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_place.is_empty()
    }

    /// How many sends wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_place.len()
    }

    /// Judges a send arriving now as the connection's `arrival`-th. Sends
    /// ahead of it whose time is up are forgotten first; a send that is
    /// held back is recorded as waiting (at its own place if it waited
    /// before) until `until`.
    pub(crate) fn judge(
        &mut self,
        id: &ClientMsgId,
        arrival: u64,
        now: Instant,
        until: Instant,
    ) -> Verdict {
        let key = key(id);
        let place = self.places.get(&key).copied().unwrap_or(arrival);
        let expired: Vec<u64> = self
            .by_place
            .range(..place)
            .filter(|(_, w)| w.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            if let Some(w) = self.by_place.remove(&p) {
                self.places.remove(&w.key);
            }
        }
        match self.by_place.first_key_value() {
            Some((_, head)) if head.key != key => {
                let code = head.code;
                self.refused(id, place, code, until);
                Verdict::Hold { code }
            }
            _ => Verdict::Pass { place },
        }
    }

    /// Records that `id`, at `place` in the sender's order, was refused
    /// with the retryable `code` and may come again until `until`.
    pub(crate) fn refused(
        &mut self,
        id: &ClientMsgId,
        place: u64,
        code: ErrorCode,
        until: Instant,
    ) {
        let key = key(id);
        if let Some(old) = self.places.get(&key).copied() {
            if let Some(w) = self.by_place.get_mut(&old) {
                w.code = code;
                w.until = w.until.max(until);
            }
            return;
        }
        if self.by_place.len() >= WAITING_MAX {
            return;
        }
        self.places.insert(key, place);
        self.by_place.insert(place, Waiting { key, code, until });
    }

    /// `id` was admitted (or was already stored or under way): it no longer
    /// waits.
    pub(crate) fn admitted(&mut self, id: &ClientMsgId) {
        if let Some(place) = self.places.remove(&key(id)) {
            self.by_place.remove(&place);
        }
    }
}

/// A deterministic hash of an id (SipHash with fixed keys: the same on
/// every run and machine).
fn key(id: &ClientMsgId) -> u64 {
    let mut h = DefaultHasher::new();
    id.as_str().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RL: ErrorCode = ErrorCode::RateLimited;

    fn id(s: &str) -> ClientMsgId {
        ClientMsgId::new(s).unwrap()
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A gate whose sends `names` were refused at places 1, 2, ….
    fn gate(names: &[&str]) -> OrderGate {
        let mut g = OrderGate::default();
        for (i, n) in names.iter().enumerate() {
            g.refused(&id(n), i as u64 + 1, RL, t(30_000));
        }
        g
    }

    #[test]
    fn only_the_first_waiting_send_passes() {
        let mut g = gate(&["a", "b"]);
        assert_eq!(
            g.judge(&id("b"), 9, t(0), t(30_000)),
            Verdict::Hold { code: RL }
        );
        assert_eq!(
            g.judge(&id("new"), 10, t(0), t(30_000)),
            Verdict::Hold { code: RL }
        );
        assert_eq!(g.len(), 3, "the new send waits too, at its arrival");
        assert_eq!(
            g.judge(&id("a"), 11, t(0), t(30_000)),
            Verdict::Pass { place: 1 }
        );
        g.admitted(&id("a"));
        assert_eq!(
            g.judge(&id("new"), 12, t(0), t(30_000)),
            Verdict::Hold { code: RL }
        );
        assert_eq!(
            g.judge(&id("b"), 13, t(0), t(30_000)),
            Verdict::Pass { place: 2 }
        );
        g.admitted(&id("b"));
        assert_eq!(
            g.judge(&id("new"), 14, t(0), t(30_000)),
            Verdict::Pass { place: 10 }
        );
        g.admitted(&id("new"));
        assert!(g.is_empty());
    }

    #[test]
    fn a_send_failed_again_keeps_its_place() {
        let mut g = gate(&["a", "b"]);
        g.admitted(&id("a"));
        // `a` failed at the store after it was admitted: back at place 1.
        g.refused(&id("a"), 1, ErrorCode::Unavailable, t(40_000));
        assert_eq!(
            g.judge(&id("b"), 20, t(0), t(30_000)),
            Verdict::Hold {
                code: ErrorCode::Unavailable
            }
        );
        assert_eq!(
            g.judge(&id("a"), 21, t(0), t(30_000)),
            Verdict::Pass { place: 1 }
        );
    }

    #[test]
    fn sends_given_up_stop_holding_later_ones() {
        let mut g = OrderGate::default();
        g.refused(&id("a"), 1, RL, t(10_000));
        g.refused(&id("b"), 2, RL, t(10_000));
        g.refused(&id("c"), 3, RL, t(25_000));
        // At 20 s `a` and `b` were not seen for their whole time: given up.
        assert_eq!(
            g.judge(&id("c"), 9, t(20_000), t(50_000)),
            Verdict::Pass { place: 3 }
        );
        // Before that, `c` waits.
        let mut g = gate(&["a", "c"]);
        assert_eq!(
            g.judge(&id("c"), 9, t(20_000), t(50_000)),
            Verdict::Hold { code: RL }
        );
    }

    #[test]
    fn memory_is_bounded_and_a_forgotten_send_counts_as_newest() {
        let names: Vec<String> = (0..WAITING_MAX + 10).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut g = gate(&refs);
        assert_eq!(g.by_place.len(), WAITING_MAX);
        let late = id(&names[WAITING_MAX + 5]);
        assert_eq!(
            g.judge(&late, 1_000, t(0), t(30_000)),
            Verdict::Hold { code: RL }
        );
        assert_eq!(g.len(), WAITING_MAX, "still full");
    }
}
