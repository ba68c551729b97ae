//! Store and exporter metrics: a [`Store`] wrapper that measures every
//! command (and feeds the readiness probe its outcomes), and the Prometheus
//! exporter behind `GET /metrics`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use lockstep_core::store::{AppendOutcome, StoreCommand, StoreError, StoreReply};
use lockstep_tokio::server::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use lockstep_socketioxide::report::LATENCY_BOUNDS;

use crate::health::StoreHealth;

/// Seconds a store command took, by command (`append`, `read`, `head`, `receipt`).
pub const STORE_LATENCY: &str = "lockstep_store_latency_seconds";
/// Store commands by command and outcome (`ok`, `error`).
pub const STORE_COMMANDS: &str = "lockstep_store_commands_total";
/// Log events committed (messages, edits, deletions).
pub const STORED: &str = "lockstep_events_stored_total";
/// Entries per append command: how much a busy channel's commits are shared.
pub const APPEND_BATCH: &str = "lockstep_append_batch_entries";

/// Wraps a store and reports each command's latency and outcome, to the
/// metrics and to its [`StoreHealth`].
#[derive(Debug)]
pub struct Metered<S> {
    store: Arc<S>,
    health: Arc<StoreHealth>,
}

impl<S: Store> Metered<S> {
    /// Wraps `store`.
    pub fn new(store: S) -> Self {
        Metered {
            store: Arc::new(store),
            health: Arc::new(StoreHealth::default()),
        }
    }

    /// The outcomes seen so far, for the readiness probe.
    #[must_use]
    pub fn health(&self) -> Arc<StoreHealth> {
        Arc::clone(&self.health)
    }

    /// Asks the wrapped store whether it is alive, from outside the driver
    /// that owns the wrapper.
    pub fn liveness(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let store = Arc::clone(&self.store);
        move || store.is_alive()
    }
}

impl<S: Store> Store for Metered<S> {
    /// Hands `cmd` to the wrapped store at once (a command takes its place
    /// in the store's order when `execute` is called), then measures it.
    fn execute(
        &self,
        cmd: StoreCommand,
    ) -> impl Future<Output = Result<StoreReply, StoreError>> + Send {
        let kind = match &cmd {
            StoreCommand::Append { .. } => "append",
            StoreCommand::Read { .. } => "read",
            StoreCommand::Head { .. } => "head",
            StoreCommand::SetReceipt { .. } => "receipt",
        };
        let started = Instant::now();
        let running = self.store.execute(cmd);
        let health = Arc::clone(&self.health);
        async move {
            let result = running.await;
            health.record(result.is_ok());
            metrics::histogram!(STORE_LATENCY, "command" => kind)
                .record(started.elapsed().as_secs_f64());
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics::counter!(STORE_COMMANDS, "command" => kind, "outcome" => outcome).increment(1);
            if let Ok(StoreReply::Appended(outcomes)) = &result {
                let committed = outcomes
                    .iter()
                    .filter(|o| matches!(o, AppendOutcome::Appended(_)))
                    .count();
                metrics::counter!(STORED).increment(committed as u64);
                metrics::histogram!(APPEND_BATCH).record(outcomes.len() as f64);
            }
            result
        }
    }

    fn is_alive(&self) -> bool {
        self.store.is_alive()
    }
}

/// Installs the recorder and registers, at zero, one series of every
/// metric the server reports (the front's and the store's), so `/metrics`
/// names them all from the start.
pub fn register() {
    let _ = prometheus();
    lockstep_socketioxide::metrics::register();
    for command in ["append", "read"] {
        let _ = metrics::histogram!(STORE_LATENCY, "command" => command);
        metrics::counter!(STORE_COMMANDS, "command" => command, "outcome" => "ok").increment(0);
    }
    metrics::counter!(STORE_COMMANDS, "command" => "append", "outcome" => "error").increment(0);
    metrics::counter!(STORED).increment(0);
    let _ = metrics::histogram!(APPEND_BATCH);
}

/// The process's Prometheus recorder, installed on first use. One per
/// process (the `metrics` facade has one global recorder), so several
/// servers in one test process share it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(APPEND_BATCH.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
                )
            })
            .and_then(|b| {
                // What clients report comes in these buckets already.
                b.set_buckets_for_metric(
                    Matcher::Prefix("lockstep_client_".into()),
                    &LATENCY_BOUNDS,
                )
            })
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!(
                        "a metrics recorder was already installed: /metrics stays empty"
                    );
                }
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics buckets refused; using summaries");
                let recorder = PrometheusBuilder::new().build_recorder();
                let handle = recorder.handle();
                let _ = metrics::set_global_recorder(recorder);
                handle
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use lockstep_tokio::server::SharedMemStore;
    use lockstep_tokio::server::contract::check_store;

    use super::Metered;

    /// The wrapper keeps the store contract, call order included: it hands
    /// a command over when called, not when first polled.
    #[tokio::test]
    async fn a_metered_store_keeps_the_contract() {
        check_store(|| Metered::new(SharedMemStore::default())).await;
    }
}
