//! One transport generation: a task that opens the connection, pumps frames
//! both ways and reports everything tagged with its generation.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use lockstep_core::client::TransportEvent;
use lockstep_core::wire::ClientFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::transport::{Connector, TransportError};

/// Most frames written before one flush.
const BATCH_MAX: usize = 64;

/// The driver's side of a transport task.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames to send, in order.
    pub(crate) frames: mpsc::Sender<ClientFrame>,
    /// Ends the task (and closes the connection) when cancelled or dropped.
    _stop: tokio_util::sync::DropGuard,
}

/// Spawns the task of transport `generation`.
pub(crate) fn spawn<C: Connector>(
    tracker: &TaskTracker,
    connector: &Arc<C>,
    generation: u64,
    capacity: usize,
    report: mpsc::Sender<TransportEvent>,
) -> Link {
    let (frames, outgoing) = mpsc::channel(capacity.max(1));
    let stop = CancellationToken::new();
    let task_stop = stop.clone();
    let connector = Arc::clone(connector);
    tracker.spawn(async move {
        tokio::select! {
            () = task_stop.cancelled() => {
                debug!(generation, "transport closed by the client");
            }
            () = run(connector, generation, outgoing, report) => {}
        }
    });
    Link {
        frames,
        _stop: stop.drop_guard(),
    }
}

/// Opens the connection and pumps it until it fails, the peer closes it or
/// the driver goes away; reports `Closed` with the reason at the end.
async fn run<C: Connector>(
    connector: Arc<C>,
    generation: u64,
    mut outgoing: mpsc::Receiver<ClientFrame>,
    report: mpsc::Sender<TransportEvent>,
) {
    let reason = match connector.connect().await {
        Err(e) => format!("connect failed: {e}"),
        Ok(conn) => {
            debug!(generation, "transport opened");
            if report
                .send(TransportEvent::Opened { generation })
                .await
                .is_err()
            {
                return;
            }
            let (mut sink, mut stream) = conn.into_parts();
            loop {
                tokio::select! {
                    frame = outgoing.recv() => {
                        let Some(frame) = frame else {
                            // The driver dropped the link: close quietly.
                            let _ = sink.close().await;
                            return;
                        };
                        if let Err(e) = send_batch(&mut sink, frame, &mut outgoing).await {
                            break format!("send failed: {e}");
                        }
                    }
                    item = stream.next() => {
                        let event = match item {
                            Some(Ok(frame)) => TransportEvent::Frame { generation, frame },
                            Some(Err(TransportError::Undecodable(error))) => {
                                TransportEvent::Undecodable { generation, error }
                            }
                            Some(Err(e)) => break e.to_string(),
                            None => break "closed by the server".to_string(),
                        };
                        if report.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    info!(generation, %reason, "transport closed");
    let _ = report
        .send(TransportEvent::Closed { generation, reason })
        .await;
}

/// Writes `first` and whatever else is queued, then flushes once.
async fn send_batch(
    sink: &mut crate::transport::FrameSink,
    first: ClientFrame,
    outgoing: &mut mpsc::Receiver<ClientFrame>,
) -> Result<(), TransportError> {
    sink.feed(first).await?;
    for _ in 1..BATCH_MAX {
        match outgoing.try_recv() {
            Ok(next) => sink.feed(next).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
