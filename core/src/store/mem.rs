//! [`MemStore`]: the reference store, in memory, synchronous.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::{ChannelId, Epoch, Seq};
use crate::store::mem_log::{ChannelLog, Limits};
use crate::store::{
    BrokenChains, REMEMBER_DEFAULT, RETAIN_AGE_DEFAULT, RETAIN_EVENTS_DEFAULT, StoreCommand,
    StoreError, StoreReply,
};
use crate::wire::LogEvent;

/// One channel's log in a [`MemStore`], read-only (see [`MemStore::log`]).
#[derive(Debug, Clone, Copy)]
pub struct LogView<'a>(&'a ChannelLog);

impl<'a> LogView<'a> {
    /// The log's epoch and head (its last seq).
    #[must_use]
    pub fn head(self) -> (Epoch, Seq) {
        (self.0.epoch(), self.0.head())
    }

    /// The retained event at `seq` (one lookup, no scan).
    #[must_use]
    pub fn event(self, seq: Seq) -> Option<&'a LogEvent> {
        self.0.event(seq)
    }

    /// The lowest seq still retained (`head + 1` when none is).
    #[must_use]
    pub fn oldest_retained(self) -> Seq {
        self.0.oldest_retained()
    }
}

/// Limits and identities of a [`MemStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemStoreConfig {
    /// Events kept per channel; older ones are dropped, and a position
    /// before them can no longer be recovered exactly (joins say
    /// `recovered: false`, history pages start later). Default
    /// [`RETAIN_EVENTS_DEFAULT`] (10,000).
    pub retain: usize,
    /// How long an event is kept, by the append clock (the `ts` of the
    /// messages appended): older events are dropped when the channel is
    /// next appended to (the memory store has no clock of its own, so an
    /// idle channel keeps its events until then). `None` keeps events
    /// whatever their age. Default [`RETAIN_AGE_DEFAULT`] (90 days).
    pub retain_age: Option<Duration>,
    /// Messages remembered per channel for dedupe, edits and deletes
    /// (the protocol promises at least 100,000). Default
    /// [`REMEMBER_DEFAULT`] (100,000).
    pub remember: usize,
    /// The epoch of every channel log that was never reset: one number for
    /// the whole store, so a channel nobody wrote to needs no log to have
    /// an epoch (reading it creates nothing), and that epoch stays when the
    /// first message is appended. Each reset takes the next number above
    /// it, so a channel's epochs never repeat. Default 1.
    pub first_epoch: Epoch,
}

impl Default for MemStoreConfig {
    fn default() -> Self {
        MemStoreConfig {
            retain: usize::try_from(RETAIN_EVENTS_DEFAULT).unwrap_or(usize::MAX),
            retain_age: Some(RETAIN_AGE_DEFAULT),
            remember: usize::try_from(REMEMBER_DEFAULT).unwrap_or(usize::MAX),
            first_epoch: Epoch(1),
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
/// 1, one epoch per log, bounded retention and bounded dedupe memory. A
/// channel gets a log on its first append (or reset), never on a read.
///
/// It is synchronous and deterministic, so the simulator and the tests run it
/// inline; the server driver wraps it like any other store.
#[derive(Debug, Clone)]
pub struct MemStore {
    config: MemStoreConfig,
    channels: BTreeMap<ChannelId, ChannelLog>,
    /// The epoch the next reset takes.
    next_epoch: u64,
    fail: FailMode,
    /// Channels whose last append failed (the pipelining rule), per writer.
    chains: BTreeMap<usize, BrokenChains>,
    /// Deliberate bugs switched on (test-only; see [`crate::sabotage`]).
    #[cfg(feature = "sabotage")]
    sabotage: crate::sabotage::Sabotage,
}

impl MemStore {
    /// An empty store with the given limits.
    #[must_use]
    pub fn new(config: MemStoreConfig) -> Self {
        let next_epoch = config.first_epoch.0.saturating_add(1);
        MemStore {
            config,
            channels: BTreeMap::new(),
            next_epoch,
            fail: FailMode::Never,
            chains: BTreeMap::new(),
            #[cfg(feature = "sabotage")]
            sabotage: crate::sabotage::Sabotage::default(),
        }
    }

    /// Switches deliberate bugs on in this store (unstable, test-only; see
    /// [`crate::sabotage`]): a setter, not a config field, so no config's
    /// shape depends on the feature.
    #[cfg(feature = "sabotage")]
    pub fn set_sabotage(&mut self, sabotage: crate::sabotage::Sabotage) {
        self.sabotage = sabotage;
    }

    /// Executes one command as one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when a failure was injected with
    /// [`set_fail_mode`](Self::set_fail_mode), or when an append issued
    /// behind a failed one of its channel comes
    /// ([`AppendChain::Behind`](crate::store::AppendChain::Behind));
    /// nothing is changed then.
    pub fn execute(&mut self, cmd: StoreCommand) -> Result<StoreReply, StoreError> {
        self.execute_for(0, cmd)
    }

    /// [`execute`](Self::execute) for one of several writers sharing the
    /// store (the lab's server processes on one store): each keeps its own
    /// append chains, as each PostgreSQL process's writer does, so one
    /// process's failure does not fail another's appends.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn execute_for(
        &mut self,
        writer: usize,
        cmd: StoreCommand,
    ) -> Result<StoreReply, StoreError> {
        let injected = match self.fail {
            FailMode::Never => false,
            FailMode::Next(n) => {
                self.fail = if n <= 1 {
                    FailMode::Never
                } else {
                    FailMode::Next(n - 1)
                };
                true
            }
            FailMode::Always => true,
        };
        if injected {
            return Err(self.fail_for(writer, &cmd, "injected failure"));
        }
        match cmd {
            StoreCommand::Append {
                channel,
                entries,
                chain,
            } => {
                let chains = self.chains.entry(writer).or_default();
                if let Err(e) = chains.admit(&channel, chain) {
                    if !sabotaged!(self, StoreIgnoresChains) {
                        chains.failed(&channel);
                        return Err(e);
                    }
                }
                let forget = sabotaged!(self, StoreForgetsAppends);
                #[cfg(feature = "sabotage")]
                if sabotaged!(self, StoreSkipsDedupe) {
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
                self.with_log(channel, |log| log.read(from, limit, max_bytes)),
            )),
            StoreCommand::Head { channel } => Ok(self.with_log(channel, |log| StoreReply::Head {
                epoch: log.epoch(),
                head: log.head(),
            })),
            StoreCommand::SetReceipt {
                channel,
                user,
                up_to,
            } => {
                let (epoch, limits) = (self.config.first_epoch, self.limits());
                Ok(match self.channels.get_mut(&channel) {
                    Some(log) => log.set_receipt(user, up_to),
                    // Nothing was written: its head is 0, so no watermark
                    // can advance; the empty log it stands for answers.
                    None => ChannelLog::new(channel, epoch, limits).set_receipt(user, up_to),
                })
            }
        }
    }

    /// Fails `cmd` as a failing engine would (fault injection by a caller
    /// that decides failures itself, like the lab's failure windows):
    /// nothing changes but that an append's failure breaks its channel's
    /// chain, so what was issued behind it fails too.
    pub fn fail(&mut self, cmd: &StoreCommand, why: &str) -> StoreError {
        self.fail_for(0, cmd, why)
    }

    /// [`fail`](Self::fail) for one of several writers (see
    /// [`execute_for`](Self::execute_for)).
    pub fn fail_for(&mut self, writer: usize, cmd: &StoreCommand, why: &str) -> StoreError {
        if let StoreCommand::Append { channel, .. } = cmd {
            self.chains.entry(writer).or_default().failed(channel);
        }
        StoreError::Unavailable(why.into())
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
        let log = ChannelLog::new(channel.clone(), epoch, self.limits());
        self.channels.insert(channel.clone(), log);
    }

    /// A channel's log, for oracles that ask it several questions about one
    /// step: one map lookup instead of one per question.
    #[must_use]
    pub fn log(&self, channel: &ChannelId) -> Option<LogView<'_>> {
        self.channels.get(channel).map(LogView)
    }

    /// The epoch and head of a channel the store has a log for (one that
    /// was appended to or reset), for oracles.
    #[must_use]
    pub fn head(&self, channel: &ChannelId) -> Option<(Epoch, Seq)> {
        self.log(channel).map(|l| l.head())
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
        self.log(channel)?.event(seq)
    }

    /// The lowest seq of a channel still retained (`head + 1` when none is),
    /// so an oracle can tell a legitimately truncated gap from a lost event.
    #[must_use]
    pub fn oldest_retained(&self, channel: &ChannelId) -> Option<Seq> {
        self.log(channel).map(|l| l.oldest_retained())
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

    fn limits(&self) -> Limits {
        Limits {
            retain: self.config.retain,
            retain_age_ms: self
                .config
                .retain_age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            remember: self.config.remember,
        }
    }

    /// A channel's log for an append, created on the first one with the
    /// store's fresh epoch.
    fn log_mut(&mut self, channel: ChannelId) -> &mut ChannelLog {
        let (epoch, limits) = (self.config.first_epoch, self.limits());
        self.channels
            .entry(channel)
            .or_insert_with_key(|c| ChannelLog::new(c.clone(), epoch, limits))
    }

    /// Answers a read from the channel's log, or from the empty log a
    /// channel nobody wrote to stands for (created for the answer only, so
    /// a read writes nothing).
    fn with_log<T>(&self, channel: ChannelId, read: impl FnOnce(&ChannelLog) -> T) -> T {
        match self.channels.get(&channel) {
            Some(log) => read(log),
            None => read(&ChannelLog::new(
                channel,
                self.config.first_epoch,
                self.limits(),
            )),
        }
    }
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new(MemStoreConfig::default())
    }
}
