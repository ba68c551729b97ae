//! The async store trait the server driver executes store commands with,
//! and its implementation for a shared [`MemStore`].

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lockstep_core::store::{MemStore, MemStoreConfig, StoreCommand, StoreError, StoreReply};

/// Executes the server machine's store commands.
///
/// Check an implementation with `server::contract::check_store`
/// (feature `store-contract`).
///
/// Commands are plain data (see `lockstep_core::store` for the contract every
/// store keeps: one append is one transaction, dedupe in the same
/// transaction, bounded reads, failure is a reply). The driver runs
/// several commands concurrently, and a channel may have several appends
/// in flight (`lockstep_core::store::AppendChain`): a command takes its
/// place in the store's order when `execute` is *called*, not when its
/// future is first polled, and the store executes a channel's appends in
/// that order, failing those behind a failed one
/// (`lockstep_core::store::BrokenChains` keeps that memory). A SQLite or
/// PostgreSQL store implements it with its own writer queue and
/// connections (and `spawn_blocking` for a blocking engine).
pub trait Store: Send + Sync + 'static {
    /// Executes one command, in the store's order from the moment it is
    /// called (see the trait docs).
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send;

    /// Whether the store can still execute commands at all (e.g. its
    /// writer thread is alive). Readiness probes ask it; a store with no
    /// such failure mode keeps the default, `true`.
    fn is_alive(&self) -> bool {
        true
    }
}

/// A [`MemStore`] shared behind a mutex: clones share one store, so a test
/// can stop a server and start another on the same data.
#[derive(Debug, Clone)]
pub struct SharedMemStore {
    inner: Arc<Mutex<MemStore>>,
}

impl Default for SharedMemStore {
    fn default() -> Self {
        SharedMemStore::new(MemStore::new(MemStoreConfig::default()))
    }
}

impl SharedMemStore {
    /// Shares `store`.
    #[must_use]
    pub fn new(store: MemStore) -> Self {
        SharedMemStore {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Locks the store, e.g. to inspect a log or inject failures.
    pub fn lock(&self) -> MutexGuard<'_, MemStore> {
        // A command is one call into `MemStore`, which never panics on
        // input: a poisoned lock still holds a consistent store.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for SharedMemStore {
    /// Executes at once, so commands are ordered by call.
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send {
        std::future::ready(self.lock().execute(cmd))
    }
}
