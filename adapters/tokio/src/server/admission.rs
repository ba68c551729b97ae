//! Who may open a connection: one registry, shared by every front, that
//! caps open connections per user and per peer address and handshakes not
//! yet authenticated, and that sums refusals up in the log.
//!
//! A cap is held as a [`Permit`]: taking one counts, dropping it releases,
//! so a count is released exactly once however a connection ends (closed by
//! either side, cut off, or gone in the middle of its handshake).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lockstep_core::ids::UserId;
use tracing::info;

/// The caps of an [`Admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Open connections of one user. Rate limits are per connection, so
    /// without this cap every extra connection would bring a fresh budget.
    pub per_user: usize,
    /// Open TCP connections from one peer address, counted at accept: it
    /// bounds connections that never authenticate too. An IPv6 peer counts
    /// by its /64 network (one subscriber's usual allocation, so a peer
    /// cannot multiply its caps by changing addresses within it); an
    /// IPv4-mapped IPv6 address counts as its IPv4 address.
    pub per_address: usize,
    /// Handshakes in progress (sessions not yet authenticated), server-wide.
    pub pending: usize,
    /// Handshakes in progress from one peer address.
    pub pending_per_address: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            per_user: 64,
            per_address: 1_024,
            pending: 1_024,
            pending_per_address: 64,
        }
    }
}

/// Why a connection or handshake was refused. Its text is both the message
/// the client sees (a Socket.IO `connect_error`, an HTTP 503 body) and the
/// label of the refusal in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// The token is missing, malformed, too long or not accepted.
    #[error("unauthorized")]
    Unauthorized,
    /// The user already holds [`AdmissionConfig::per_user`] connections.
    #[error("too_many_connections")]
    TooManyConnections,
    /// The peer address already holds [`AdmissionConfig::per_address`]
    /// TCP connections.
    #[error("too_many_connections_per_address")]
    TooManyConnectionsPerAddress,
    /// [`AdmissionConfig::pending`] handshakes are already in progress.
    #[error("too_many_handshakes")]
    TooManyHandshakes,
    /// The peer address already has [`AdmissionConfig::pending_per_address`]
    /// handshakes in progress.
    #[error("too_many_handshakes_per_address")]
    TooManyHandshakesPerAddress,
}

impl Refusal {
    /// Every refusal, in the order the summary lists them.
    pub const ALL: [Refusal; 5] = [
        Refusal::Unauthorized,
        Refusal::TooManyConnections,
        Refusal::TooManyConnectionsPerAddress,
        Refusal::TooManyHandshakes,
        Refusal::TooManyHandshakesPerAddress,
    ];

    /// The refusal's label (the same text as its message).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::TooManyConnectionsPerAddress => "too_many_connections_per_address",
            Refusal::TooManyHandshakes => "too_many_handshakes",
            Refusal::TooManyHandshakesPerAddress => "too_many_handshakes_per_address",
        }
    }

    fn index(self) -> usize {
        match self {
            Refusal::Unauthorized => 0,
            Refusal::TooManyConnections => 1,
            Refusal::TooManyConnectionsPerAddress => 2,
            Refusal::TooManyHandshakes => 3,
            Refusal::TooManyHandshakesPerAddress => 4,
        }
    }
}

/// How often at most the refusal summary is logged at `info` (each refusal
/// itself is logged at `debug`): a flood of refused handshakes must not
/// become a flood of log lines.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// What one [`Permit`] counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    User(UserId),
    Address(IpAddr),
    /// A handshake; the address when the front knows it.
    Handshake(Option<IpAddr>),
}

#[derive(Debug, Default)]
struct Counts {
    users: HashMap<UserId, usize>,
    addresses: HashMap<IpAddr, usize>,
    pending: HashMap<IpAddr, usize>,
    pending_total: usize,
}

#[derive(Debug)]
struct Summary {
    refused: [u64; Refusal::ALL.len()],
    since: Instant,
}

/// The admission registry. Share one (`Arc`) between every front of a
/// server so that a user's connections count together whatever their
/// transport.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    counts: Mutex<Counts>,
    summary: Mutex<Summary>,
}

/// One admitted connection or handshake; dropping it releases the count.
#[derive(Debug)]
#[must_use = "dropping a permit releases it at once"]
pub struct Permit {
    admission: Arc<Admission>,
    held: Held,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        match &self.held {
            Held::User(user) => release(&mut counts.users, user),
            Held::Address(ip) => release(&mut counts.addresses, ip),
            Held::Handshake(ip) => {
                counts.pending_total = counts.pending_total.saturating_sub(1);
                if let Some(ip) = ip {
                    release(&mut counts.pending, ip);
                }
            }
        }
    }
}

/// The key an address is counted under: IPv4 as it is, IPv4-mapped IPv6
/// as IPv4, other IPv6 by its /64 network.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Takes one from `key`'s count when it is under `cap`.
fn take<K: Hash + Eq + Clone>(map: &mut HashMap<K, usize>, key: &K, cap: usize) -> bool {
    let count = map.entry(key.clone()).or_insert(0);
    if *count >= cap {
        if *count == 0 {
            map.remove(key);
        }
        return false;
    }
    *count += 1;
    true
}

/// Gives one back to `key`'s count, forgetting keys at zero so the map
/// holds only what is open.
fn release<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

impl Admission {
    /// A registry with these caps.
    #[must_use]
    pub fn new(config: AdmissionConfig) -> Arc<Self> {
        Arc::new(Admission {
            config,
            counts: Mutex::new(Counts::default()),
            summary: Mutex::new(Summary {
                refused: [0; Refusal::ALL.len()],
                since: Instant::now(),
            }),
        })
    }

    /// The caps.
    #[must_use]
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Admits one more connection of `user`.
    ///
    /// # Errors
    ///
    /// [`Refusal::TooManyConnections`] at the cap.
    pub fn admit_user(self: &Arc<Self>, user: &UserId) -> Result<Permit, Refusal> {
        let admitted = take(&mut self.counts().users, user, self.config.per_user);
        self.permit(
            admitted,
            Held::User(user.clone()),
            Refusal::TooManyConnections,
        )
    }

    /// Admits one more TCP connection from `ip`.
    ///
    /// # Errors
    ///
    /// [`Refusal::TooManyConnectionsPerAddress`] at the cap.
    pub fn admit_address(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let ip = address_key(ip);
        let admitted = take(&mut self.counts().addresses, &ip, self.config.per_address);
        self.permit(
            admitted,
            Held::Address(ip),
            Refusal::TooManyConnectionsPerAddress,
        )
    }

    /// Admits one more handshake in progress, from `ip` when known; the
    /// front drops the permit once the session authenticates or ends.
    ///
    /// # Errors
    ///
    /// [`Refusal::TooManyHandshakes`] or
    /// [`Refusal::TooManyHandshakesPerAddress`] at a cap.
    pub fn admit_handshake(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Permit, Refusal> {
        let ip = ip.map(address_key);
        let mut counts = self.counts();
        if counts.pending_total >= self.config.pending {
            return Err(Refusal::TooManyHandshakes);
        }
        if let Some(ip) = ip {
            if !take(&mut counts.pending, &ip, self.config.pending_per_address) {
                return Err(Refusal::TooManyHandshakesPerAddress);
            }
        }
        counts.pending_total += 1;
        drop(counts);
        self.permit(true, Held::Handshake(ip), Refusal::TooManyHandshakes)
    }

    fn permit(
        self: &Arc<Self>,
        admitted: bool,
        held: Held,
        or: Refusal,
    ) -> Result<Permit, Refusal> {
        if admitted {
            Ok(Permit {
                admission: Arc::clone(self),
                held,
            })
        } else {
            Err(or)
        }
    }

    /// Connections `user` holds now.
    #[must_use]
    pub fn connections_of(&self, user: &UserId) -> usize {
        self.counts().users.get(user).copied().unwrap_or(0)
    }

    /// TCP connections `ip` (its /64, for IPv6) holds now.
    #[must_use]
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        let key = address_key(ip);
        self.counts().addresses.get(&key).copied().unwrap_or(0)
    }

    /// Handshakes in progress now, server-wide.
    #[must_use]
    pub fn handshakes(&self) -> usize {
        self.counts().pending_total
    }

    /// Counts a refusal for the summary (the caller logs the refusal itself
    /// at `debug`, with what it knows of the peer), and logs the summary if
    /// [`SUMMARY_EVERY`] has passed.
    pub fn refused(&self, refusal: Refusal) {
        let mut summary = self.summary();
        summary.refused[refusal.index()] += 1;
        report(&mut summary);
    }

    /// Logs the refusal summary if [`SUMMARY_EVERY`] has passed since the
    /// last one and anything was refused: call it now and then, so the last
    /// refusals of a burst are reported too.
    pub fn report(&self) {
        report(&mut self.summary());
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Every update is a whole increment or decrement: a poisoned lock
        // still holds consistent counts.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn summary(&self) -> MutexGuard<'_, Summary> {
        self.summary.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn report(summary: &mut Summary) {
    let elapsed = summary.since.elapsed();
    if elapsed < SUMMARY_EVERY {
        return;
    }
    let total: u64 = summary.refused.iter().sum();
    if total > 0 {
        let detail = Refusal::ALL
            .iter()
            .zip(summary.refused)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{} {n}", r.label()))
            .collect::<Vec<_>>()
            .join(", ");
        info!(
            total,
            seconds = elapsed.as_secs(),
            "refused {total} handshakes in the last {} s: {detail}",
            elapsed.as_secs()
        );
    }
    summary.refused = [0; Refusal::ALL.len()];
    summary.since = Instant::now();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_user: usize, pending: usize) -> AdmissionConfig {
        AdmissionConfig {
            per_user,
            per_address: 2,
            pending,
            pending_per_address: 2,
        }
    }

    #[test]
    fn a_user_is_capped_and_a_dropped_permit_frees_its_slot_once() {
        let admission = Admission::new(config(2, 8));
        let al = UserId::new("al").unwrap();
        let bo = UserId::new("bo").unwrap();
        let first = admission.admit_user(&al).unwrap();
        let _second = admission.admit_user(&al).unwrap();
        assert_eq!(
            admission.admit_user(&al).unwrap_err(),
            Refusal::TooManyConnections
        );
        // Another user has a cap of its own.
        let _bo = admission.admit_user(&bo).unwrap();
        drop(first);
        assert_eq!(admission.connections_of(&al), 1);
        let _third = admission.admit_user(&al).unwrap();
        assert_eq!(admission.connections_of(&al), 2);
        assert!(admission.admit_user(&al).is_err());
    }

    #[test]
    fn addresses_and_handshakes_are_capped_apart() {
        let admission = Admission::new(config(8, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let conns = [
            admission.admit_address(a).unwrap(),
            admission.admit_address(a).unwrap(),
        ];
        assert_eq!(
            admission.admit_address(a).unwrap_err(),
            Refusal::TooManyConnectionsPerAddress
        );
        let _b = admission.admit_address(b).unwrap();
        let h1 = admission.admit_handshake(Some(a)).unwrap();
        let _h2 = admission.admit_handshake(Some(a)).unwrap();
        assert_eq!(
            admission.admit_handshake(Some(a)).unwrap_err(),
            Refusal::TooManyHandshakesPerAddress
        );
        let _h3 = admission.admit_handshake(Some(b)).unwrap();
        assert_eq!(
            admission.admit_handshake(None).unwrap_err(),
            Refusal::TooManyHandshakes
        );
        assert_eq!(admission.handshakes(), 3);
        drop(h1);
        let _h4 = admission.admit_handshake(None).unwrap();
        drop(conns);
        assert_eq!(admission.connections_from(a), 0);
        assert_eq!(admission.counts().addresses.len(), 1, "only b is left");
    }

    #[test]
    fn an_ipv6_peer_counts_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(config(8, 8));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = admission.admit_address(one).unwrap();
        let _b = admission.admit_address(two).unwrap();
        assert_eq!(
            admission.admit_address(one).unwrap_err(),
            Refusal::TooManyConnectionsPerAddress
        );
        let _c = admission.admit_address(other).unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _d = admission.admit_address(v4).unwrap();
        let _e = admission.admit_address(mapped).unwrap();
        assert_eq!(admission.connections_from(v4), 2);
        assert!(admission.admit_address(v4).is_err());
    }

    #[test]
    fn refusals_are_counted_until_the_summary_is_due() {
        let admission = Admission::new(config(1, 1));
        admission.refused(Refusal::Unauthorized);
        admission.refused(Refusal::TooManyConnections);
        admission.refused(Refusal::TooManyConnections);
        assert_eq!(admission.summary().refused, [1, 2, 0, 0, 0]);
        // Once the interval has passed, the summary is logged and reset.
        admission.summary().since = Instant::now() - SUMMARY_EVERY;
        admission.report();
        assert_eq!(admission.summary().refused, [0; 5]);
    }

    #[test]
    fn labels_are_the_client_messages() {
        for refusal in Refusal::ALL {
            assert_eq!(refusal.to_string(), refusal.label());
            assert_eq!(Refusal::ALL[refusal.index()], refusal);
        }
    }
}
