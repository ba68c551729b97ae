//! [`MemStore`]: the reference store, in memory, synchronous.

use std::collections::BTreeMap;

use crate::ids::{ChannelId, Epoch, Seq};
use crate::store::mem_log::ChannelLog;
use crate::store::{StoreCommand, StoreError, StoreReply};
use crate::wire::LogEvent;

/// Limits and identities of a [`MemStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemStoreConfig {
    /// Events kept per channel; older ones are dropped, and a position
    /// before them can no longer be recovered exactly (joins say
    /// `recovered: false`, history pages start later). Default 10,000.
    pub retain: usize,
    /// Messages remembered per channel for dedupe, edits and deletes
    /// (the protocol promises at least 100,000). Default 100,000.
    pub remember: usize,
    /// The epoch given to the first channel log; each new log (a first touch
    /// or a reset) takes the next number, so epochs never repeat. Default 1.
    pub first_epoch: Epoch,
    /// Deliberate bugs for the simulator's oracle tests (unstable,
    /// test-only; see [`crate::sabotage`]). Default: none.
    #[cfg(feature = "sabotage")]
    pub sabotage: crate::sabotage::Sabotage,
}

impl Default for MemStoreConfig {
    fn default() -> Self {
        MemStoreConfig {
            retain: 10_000,
            remember: 100_000,
            first_epoch: Epoch(1),
            #[cfg(feature = "sabotage")]
            sabotage: crate::sabotage::Sabotage::default(),
        }
    }
}

/// When the store fails on purpose, for fault injection.
///
/// Only failure is modelled here. Slowness is modelled by the caller, which
/// executes a command now and hands the completion to the server later (or
/// in another order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Execute every command.
    #[default]
    Never,
    /// Fail the next `n` commands, then execute again.
    Next(u32),
    /// Fail every command until told otherwise.
    Always,
}

/// The in-memory reference implementation of the store contract (see the
/// [module docs](crate::store)): per-channel logs with contiguous seqs from
/// 1, one epoch per log, bounded retention and bounded dedupe memory.
///
/// It is synchronous and deterministic, so the simulator and the tests run it
/// inline; the server driver wraps it like any other store.
#[derive(Debug, Clone)]
pub struct MemStore {
    config: MemStoreConfig,
    channels: BTreeMap<ChannelId, ChannelLog>,
    next_epoch: u64,
    fail: FailMode,
}

impl MemStore {
    /// An empty store with the given limits.
    #[must_use]
    pub fn new(config: MemStoreConfig) -> Self {
        let next_epoch = config.first_epoch.0;
        MemStore {
            config,
            channels: BTreeMap::new(),
            next_epoch,
            fail: FailMode::Never,
        }
    }

    /// Executes one command as one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when a failure was injected with
    /// [`set_fail_mode`](Self::set_fail_mode); nothing is changed then.
    pub fn execute(&mut self, cmd: StoreCommand) -> Result<StoreReply, StoreError> {
        match self.fail {
            FailMode::Never => {}
            FailMode::Next(n) => {
                self.fail = if n <= 1 {
                    FailMode::Never
                } else {
                    FailMode::Next(n - 1)
                };
                return Err(StoreError::Unavailable("injected failure".into()));
            }
            FailMode::Always => return Err(StoreError::Unavailable("injected failure".into())),
        }
        match cmd {
            StoreCommand::Append { channel, entries } => {
                let forget = sabotaged!(self.config, StoreForgetsAppends);
                #[cfg(feature = "sabotage")]
                if sabotaged!(self.config, StoreSkipsDedupe) {
                    self.log_mut(channel.clone()).forget_dedupe_keys();
                }
                let log = self.log_mut(channel);
                // Appending cannot fail past this point (injected failures
                // happen before anything changes), so the entries commit
                // together as the contract asks.
                let outcomes = if forget {
                    // Sabotage: answer as if committed, keep nothing.
                    let mut scratch = log.clone();
                    entries.into_iter().map(|e| scratch.append(e)).collect()
                } else {
                    entries.into_iter().map(|e| log.append(e)).collect()
                };
                Ok(StoreReply::Appended(outcomes))
            }
            StoreCommand::Read {
                channel,
                from,
                limit,
                max_bytes,
            } => Ok(StoreReply::Events(
                self.log_mut(channel).read(from, limit, max_bytes),
            )),
            StoreCommand::Head { channel } => {
                let log = self.log_mut(channel);
                Ok(StoreReply::Head {
                    epoch: log.epoch(),
                    head: log.head(),
                })
            }
            StoreCommand::SetReceipt {
                channel,
                user,
                up_to,
            } => Ok(self.log_mut(channel).set_receipt(user, up_to)),
        }
    }

    /// Sets when commands fail (fault injection).
    pub fn set_fail_mode(&mut self, mode: FailMode) {
        self.fail = mode;
    }

    /// The failure mode in force (a `Next(n)` counts down as commands fail).
    #[must_use]
    pub fn fail_mode(&self) -> FailMode {
        self.fail
    }

    /// Wipes a channel's log and gives it a new epoch, as if its storage was
    /// lost: clients holding a position in the old epoch start over.
    pub fn reset_channel(&mut self, channel: &ChannelId) {
        let epoch = self.take_epoch();
        let log = ChannelLog::new(
            channel.clone(),
            epoch,
            self.config.retain,
            self.config.remember,
        );
        self.channels.insert(channel.clone(), log);
    }

    /// The epoch and head of a channel the store has seen, for oracles.
    #[must_use]
    pub fn head(&self, channel: &ChannelId) -> Option<(Epoch, Seq)> {
        self.channels.get(channel).map(|l| (l.epoch(), l.head()))
    }

    /// The retained events of a channel, oldest first, for oracles.
    pub fn events(&self, channel: &ChannelId) -> impl Iterator<Item = &LogEvent> {
        self.channels
            .get(channel)
            .into_iter()
            .flat_map(ChannelLog::events)
    }

    /// The retained event of a channel at `seq`, for oracles (one lookup,
    /// no scan).
    #[must_use]
    pub fn event(&self, channel: &ChannelId, seq: Seq) -> Option<&LogEvent> {
        self.channels.get(channel)?.event(seq)
    }

    /// The lowest seq of a channel still retained (`head + 1` when none is),
    /// so an oracle can tell a legitimately truncated gap from a lost event.
    #[must_use]
    pub fn oldest_retained(&self, channel: &ChannelId) -> Option<Seq> {
        self.channels.get(channel).map(ChannelLog::oldest_retained)
    }

    /// Every channel the store has a log for, in order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.channels.keys()
    }

    fn take_epoch(&mut self) -> Epoch {
        let e = Epoch(self.next_epoch);
        self.next_epoch = self.next_epoch.saturating_add(1);
        e
    }

    /// A channel's log, created on first touch so its epoch is fixed from the
    /// first read on.
    fn log_mut(&mut self, channel: ChannelId) -> &mut ChannelLog {
        let next = &mut self.next_epoch;
        let config = &self.config;
        self.channels.entry(channel).or_insert_with_key(|c| {
            let epoch = Epoch(*next);
            *next = next.saturating_add(1);
            ChannelLog::new(c.clone(), epoch, config.retain, config.remember)
        })
    }
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new(MemStoreConfig::default())
    }
}
