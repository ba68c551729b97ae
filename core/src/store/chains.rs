//! Which channels' append chains are broken: the one piece of memory a
//! store needs to keep the pipelining rule (see [`AppendChain`]), shared by
//! every engine so the rule is written once.
//!
//! A store calls [`BrokenChains::admit`] before it executes an append and
//! [`BrokenChains::failed`] when an append fails (whatever the reason). A
//! channel is remembered from a failed append until the next append that
//! starts a chain ([`AppendChain::Start`]): the server issues one only once
//! everything issued behind the failure came back.

use std::collections::BTreeMap;

use crate::ids::ChannelId;
use crate::store::{AppendChain, StoreError};

/// Broken chains remembered at once. Past it the oldest break is
/// forgotten: by then 65,536 later breaks of other channels were recorded,
/// while the appends issued behind a failed one were already on their way
/// to the store (the server stops issuing behind a failure as soon as it
/// hears of it). About 64 bytes plus the channel name per entry.
pub const BROKEN_CHAINS_MAX: usize = 65_536;

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct BrokenChains {
    /// Broken channels and when each broke (a counter, for eviction).
    by_channel: BTreeMap<ChannelId, u64>,
    /// The same, oldest break first.
    by_age: BTreeMap<u64, ChannelId>,
    next: u64,
}

impl BrokenChains {
    /// Whether an append of `channel` marked `chain` may run: an append
    /// behind a failed one fails (retryably) with nothing committed; one
    /// that starts a chain clears the channel's break.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when `chain` is
    /// [`AppendChain::Behind`] and the channel's previous append failed.
    pub fn admit(&mut self, channel: &ChannelId, chain: AppendChain) -> Result<(), StoreError> {
        match chain {
            AppendChain::Start => {
                if let Some(at) = self.by_channel.remove(channel) {
                    self.by_age.remove(&at);
                }
                Ok(())
            }
            AppendChain::Behind if self.by_channel.contains_key(channel) => Err(
                StoreError::Unavailable("an earlier append of this channel failed".into()),
            ),
            AppendChain::Behind => Ok(()),
        }
    }

    /// An append of `channel` failed: the ones issued behind it must fail.
    pub fn failed(&mut self, channel: &ChannelId) {
        let at = self.next;
        self.next += 1;
        if let Some(old) = self.by_channel.insert(channel.clone(), at) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(at, channel.clone());
        while self.by_channel.len() > BROKEN_CHAINS_MAX {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.by_channel.remove(&oldest);
        }
    }

    /// Channels remembered as broken.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_channel.len()
    }

    /// Whether no chain is broken.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_channel.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelId {
        ChannelId::new(name).unwrap()
    }

    #[test]
    fn an_append_behind_a_failure_fails_until_a_chain_starts() {
        let mut chains = BrokenChains::default();
        assert!(chains.admit(&ch("a"), AppendChain::Behind).is_ok());
        chains.failed(&ch("a"));
        assert!(chains.admit(&ch("a"), AppendChain::Behind).is_err());
        assert!(chains.admit(&ch("a"), AppendChain::Behind).is_err());
        assert!(chains.admit(&ch("b"), AppendChain::Behind).is_ok());
        assert!(chains.admit(&ch("a"), AppendChain::Start).is_ok());
        assert!(chains.admit(&ch("a"), AppendChain::Behind).is_ok());
        assert!(chains.is_empty());
    }

    #[test]
    fn the_memory_is_bounded_and_forgets_the_oldest_break() {
        let mut chains = BrokenChains::default();
        for i in 0..=BROKEN_CHAINS_MAX {
            chains.failed(&ch(&format!("c{i}")));
        }
        chains.failed(&ch("c1"));
        assert_eq!(chains.len(), BROKEN_CHAINS_MAX);
        assert!(chains.admit(&ch("c0"), AppendChain::Behind).is_ok());
        assert!(chains.admit(&ch("c1"), AppendChain::Behind).is_err());
        assert!(chains.admit(&ch("c2"), AppendChain::Behind).is_err());
    }
}
