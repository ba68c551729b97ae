//! Attaching the server driver to a socketioxide namespace: auth in a
//! connect middleware, one ordered request queue per socket, replies as
//! acks and server frames as events.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use lockstep_core::server::ConnId;
use lockstep_tokio::server::{
    Admission, Authenticator, ConnInbound, ConnOutbound, Frontdoor, OutboundEnd, Refusal,
    SESSION_EXPIRED,
};
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::extract::{Event, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::extract::{AckId, AuthToken, RawPayload, SocketHandle};
use crate::handshake::{PeerAddr, PendingHandshake, refused};
use crate::link::{Link, Request};
use crate::metrics;
use crate::report::{REPORT_EVENT, ReportLimits};
use lockstep_core::wire::socketio::{Outgoing, encode_frame};

/// Settings of the Socket.IO front.
#[derive(Debug, Clone)]
pub struct SocketIoFrontConfig {
    /// Requests of one socket queued for the driver; a client that floods
    /// past it is disconnected with a logged reason.
    pub request_queue: usize,
    /// Requests of one socket awaiting their reply; past it, the same.
    pub pending_max: usize,
    /// The admission registry (shared with the server's other fronts and
    /// its accept loop): its per-user cap is kept here, before a socket
    /// counts as connected, and refusals go to its summary. `None`: no cap.
    pub admission: Option<Arc<Admission>>,
    /// How often one connection may send a `client:metrics` report.
    pub client_reports: ReportLimits,
}

impl Default for SocketIoFrontConfig {
    fn default() -> Self {
        SocketIoFrontConfig {
            request_queue: 256,
            pending_max: 1_024,
            admission: None,
            client_reports: ReportLimits::default(),
        }
    }
}

/// Longest a frame may wait for room in socketioxide's per-socket buffer
/// before the client is cut off.
const WRITE_STALL_MAX: Duration = Duration::from_secs(5);
/// First and longest pause between two tries of a write into a full buffer.
const WRITE_RETRY_MIN: Duration = Duration::from_millis(1);
const WRITE_RETRY_MAX: Duration = Duration::from_millis(50);

/// How many times a disconnect is retried while the socket's own packet
/// buffer is full, and the pause between tries: a minute in all, longer
/// than Engine.IO's default heartbeat (25 s + 20 s), which closes a peer
/// that reads nothing at all.
const DISCONNECT_TRIES: u32 = 1_200;
const DISCONNECT_PAUSE: Duration = Duration::from_millis(50);

/// Serves the contract on namespace `path` of `io`: every socket that
/// presents `auth: { token }` accepted by `auth` becomes a connection of
/// the driver behind `frontdoor`.
pub fn attach(
    io: &SocketIo,
    path: &'static str,
    frontdoor: Frontdoor,
    auth: Arc<dyn Authenticator>,
    config: SocketIoFrontConfig,
) {
    let middleware = move |socket: SocketRef, token: AuthToken| {
        let verdict = authenticate(&socket, token, &*auth, &config);
        async move { verdict }
    };
    let on_connect = move |socket: SocketHandle| {
        let door = frontdoor.clone();
        async move { start(socket, door) }
    };
    io.ns(path, on_connect.with(middleware));
}

/// Checks the token and the user's connection cap and, before the socket
/// counts as connected, installs its handlers, so not even its first event
/// can arrive unhandled. A refusal's text is the `connect_error` message
/// the client sees: `unauthorized` (whatever was wrong with the token) or
/// `too_many_connections`.
fn authenticate(
    socket: &SocketRef,
    token: AuthToken,
    auth: &dyn Authenticator,
    config: &SocketIoFrontConfig,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
    let admission = config.admission.as_deref();
    let refuse = |refusal: Refusal, detail: &dyn std::fmt::Display| {
        refused(
            admission,
            refusal,
            peer,
            &format_args!("sid {}: {detail}", socket.id),
        );
        Err(refusal)
    };
    let identity = match token {
        AuthToken::Missing => return refuse(Refusal::Unauthorized, &"no token"),
        AuthToken::TooLong(bytes) => {
            return refuse(
                Refusal::Unauthorized,
                &format_args!("token of {bytes} bytes refused unread"),
            );
        }
        AuthToken::Given(token) => match auth.authenticate(&token) {
            Ok(identity) => identity,
            Err(error) => return refuse(Refusal::Unauthorized, &error),
        },
    };
    let permit = match &config.admission {
        Some(admission) => match admission.admit_user(&identity.user) {
            Ok(permit) => Some(permit),
            Err(refusal) => return refuse(refusal, &format_args!("user {}", identity.user)),
        },
        None => None,
    };
    // Authenticated: no longer a handshake in progress.
    if let Some(pending) = parts.extensions.get::<PendingHandshake>() {
        pending.release();
    }
    ::metrics::counter!(metrics::HANDSHAKES, "outcome" => "accepted").increment(1);
    let link = Arc::new(Link::new(
        identity,
        permit,
        config.request_queue,
        config.pending_max,
        config.client_reports,
    ));
    let on_event = {
        let link = Arc::clone(&link);
        // A plain closure: it runs in socketioxide's receive path, one event
        // after the other, so the queue holds them in arrival order (an
        // async handler body would run in a task of its own, in any order).
        move |socket: SocketHandle,
              Event(event): Event,
              RawPayload(payload): RawPayload,
              AckId(ack): AckId|
              -> Ready<()> {
            if link.gone.is_cancelled() {
                // The connection is being closed: its client sees the
                // disconnect and every unanswered request fails there.
                return ready(());
            }
            if event == REPORT_EVENT {
                // The client's own counters: for /metrics, not the machine.
                let payload = payload.as_deref().map(RawValue::get);
                let result = link.report(payload);
                if let Err(e) = &result {
                    debug!(sid = %socket.0.id, user = %link.identity.user, error = %e, "client report refused");
                }
                if let Some(ack) = ack {
                    let reply = report_reply(result.err());
                    // A full buffer drops this reply: a report is not a request.
                    let _ = socket.ack_sender(ack).send(&reply);
                }
                return ready(());
            }
            if let Err(flood) = link.push(&event, payload.as_deref().map(RawValue::get), ack) {
                warn!(sid = %socket.0.id, user = %link.identity.user, %flood, "disconnecting a flooding client");
                link.flooded
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                link.gone.cancel();
                tokio::spawn(disconnect(SocketRef::from(socket.0)));
            }
            ready(())
        }
    };
    socket.on_fallback(on_event);
    let on_disconnect = {
        let link = Arc::clone(&link);
        move |reason: DisconnectReason| -> Ready<()> {
            debug!(user = %link.identity.user, ?reason, "socket disconnected");
            link.gone.cancel();
            link.release();
            ready(())
        }
    };
    socket.on_disconnect(on_disconnect);
    socket.extensions.insert(link);
    Ok(())
}

/// The ack of a `client:metrics` report: `{ ok: true }`, or the refusal in
/// the contract's shape.
fn report_reply(refused: Option<crate::report::ReportError>) -> serde_json::Value {
    match refused {
        None => serde_json::json!({ "ok": true }),
        Some(e) => {
            let code = e.code();
            serde_json::json!({
                "ok": false,
                "error": { "code": code.as_str(), "message": e.to_string(), "retryable": code.retryable() },
            })
        }
    }
}

/// The socket is connected: registers it with the driver in a task the
/// server's shutdown waits for.
fn start(socket: SocketHandle, frontdoor: Frontdoor) {
    let Some(link) = socket.0.extensions.get::<Arc<Link>>() else {
        return;
    };
    let Some(requests) = link.take_queue() else {
        return;
    };
    let tracker = frontdoor.tracker().clone();
    tracker.spawn(serve(socket, link, requests, frontdoor));
}

/// One connection, from registration to close; logs why it ended.
async fn serve(
    socket: SocketHandle,
    link: Arc<Link>,
    requests: mpsc::Receiver<Request>,
    frontdoor: Frontdoor,
) {
    let user = link.identity.user.clone();
    let Ok((inbound, outbound)) = frontdoor.open(user.clone()).await else {
        info!(sid = %socket.0.id, %user, "server shutting down: connection refused");
        link.release();
        disconnect(SocketRef::from(socket.0)).await;
        return;
    };
    let conn = inbound.id();
    info!(%conn, sid = %socket.0.id, %user, "connection open");
    ::metrics::gauge!(metrics::CONNECTIONS_OPEN).increment(1.0);
    let (reason, close) = tokio::select! {
        () = link.gone.cancelled() => {
            if link.flooded.load(std::sync::atomic::Ordering::Relaxed) {
                ("cut off: request flood".to_owned(), false)
            } else {
                ("closed by the client".to_owned(), false)
            }
        }
        reason = pump(requests, &inbound) => (reason, true),
        reason = write(&socket, &link, conn, outbound) => (reason, true),
        () = link.identity.expired() => (SESSION_EXPIRED.to_owned(), true),
    };
    // Dropping `inbound` tells the driver the connection is over.
    drop(inbound);
    link.release();
    if metrics::delivery_failed(&reason) {
        // What was queued for it is not delivered: the client recovers it
        // by re-joining from its position.
        warn!(%conn, %user, %reason, "connection closed: delivery failed");
    } else {
        info!(%conn, %user, %reason, "connection closed");
    }
    metrics::closed(&reason);
    if close {
        link.gone.cancel();
        // Detached: a socket whose buffer stays full must not hold up the
        // server's shutdown, which closes every socket anyway.
        tokio::spawn(disconnect(SocketRef::from(socket.0)));
    }
}

/// Feeds the socket's requests to the driver in arrival order.
async fn pump(mut requests: mpsc::Receiver<Request>, inbound: &ConnInbound) -> String {
    while let Some(request) = requests.recv().await {
        let sent = match request {
            Ok(frame) => inbound.frame(frame).await,
            Err(error) => inbound.undecodable(error).await,
        };
        if sent.is_err() {
            return "server stopped".into();
        }
    }
    "request queue closed".into()
}

/// Writes the driver's frames as acks and events. socketioxide's
/// per-socket packet buffer is bounded: while it is full, the frame is
/// retried (backpressure: the driver's queue for this connection fills,
/// and the driver cuts the client off if it stays behind). A frame that
/// cannot be written within [`WRITE_STALL_MAX`] ends the connection with
/// that reason: nothing is dropped silently.
async fn write(
    socket: &SocketHandle,
    link: &Link,
    conn: ConnId,
    mut outbound: ConnOutbound,
) -> String {
    let mut counted = metrics::FrameMetrics::new();
    loop {
        let frame = match outbound.recv().await {
            Ok(frame) => frame,
            Err(OutboundEnd::Killed) => return "cut off: too slow to keep up".into(),
            Err(OutboundEnd::Closed) => return "closed by the server".into(),
        };
        // A broadcast's payload is encoded by its first recipient only.
        let owned;
        let outgoing = match frame.encoded(encode_frame) {
            Some(shared) => shared,
            None => {
                owned = encode_frame(&frame.frame);
                &owned
            }
        };
        let mut pause = WRITE_RETRY_MIN;
        let mut stalled = Duration::ZERO;
        loop {
            let sent = match &outgoing {
                Outgoing::Nothing => Ok(()),
                Outgoing::Refused(error) => {
                    return format!("refused: {} ({})", error.message, error.code);
                }
                Outgoing::Reply { req, body } => match link.ack_id(*req) {
                    Some(id) => socket.ack_sender(id).send(body),
                    None => Ok(()),
                },
                Outgoing::Event { name, payload } => socket.0.emit(*name, payload),
            };
            match sent {
                Ok(()) => {
                    if let Outgoing::Reply { req, .. } = &outgoing {
                        let pending = link.take_ack(*req);
                        counted.replied(&frame.frame, pending.as_ref(), conn, &link.identity.user);
                    } else {
                        counted.written(&frame.frame);
                    }
                    break;
                }
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if stalled >= WRITE_STALL_MAX {
                        return "cut off: its outgoing buffer stayed full (too slow to keep up)"
                            .into();
                    }
                    tokio::time::sleep(pause).await;
                    stalled += pause;
                    pause = (pause * 2).min(WRITE_RETRY_MAX);
                }
                Err(SendError::Socket(SocketError::Closed)) => return "socket closed".into(),
                Err(e) => return format!("write failed: {e}"),
            }
        }
    }
}

/// Disconnects the socket; while its packet buffer is full the disconnect
/// packet cannot be queued, so it is retried a bounded number of times.
async fn disconnect(socket: SocketRef) {
    for _ in 0..DISCONNECT_TRIES {
        match socket.clone().disconnect() {
            Err(SocketError::InternalChannelFull) => tokio::time::sleep(DISCONNECT_PAUSE).await,
            Ok(()) | Err(SocketError::Closed) => return,
        }
    }
    warn!(sid = %socket.id, "could not disconnect a socket whose buffer stays full; the engine's heartbeat will close it");
}
