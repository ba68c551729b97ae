//! The framed-TCP front: accepts byte streams, checks the `hello`, and
//! turns each connection into driver inputs and its queue back into bytes.
//! It holds no protocol logic: that is the driver's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use lockstep_core::wire::{
    ClientFrame, ErrorBody, ErrorCode, PROTOCOL_VERSION, ServerFrame, decode_client, encode_server,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use super::admission::{Admission, Permit, Refusal};
use super::auth::{Authenticator, Identity, MAX_TOKEN_BYTES, SESSION_EXPIRED};
use super::front::{ConnInbound, ConnOutbound, Frontdoor, OutboundEnd};
use crate::framed::{client_frames, server_frames};

/// Settings of the framed front.
#[derive(Debug, Clone)]
pub struct FramedFrontConfig {
    /// Longest wait for the `hello` frame of a new connection.
    pub handshake_timeout: Duration,
    /// Most frames written before one flush.
    pub write_batch: usize,
    /// The admission registry whose per-user cap this front keeps (shared
    /// with the server's other fronts); `None`: no cap.
    pub admission: Option<Arc<Admission>>,
}

impl Default for FramedFrontConfig {
    fn default() -> Self {
        FramedFrontConfig {
            handshake_timeout: Duration::from_secs(10),
            write_batch: 64,
            admission: None,
        }
    }
}

/// Longest wait to flush the last frames of a closing connection to a
/// peer that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections from `incoming` until it ends or the server shuts
/// down; each connection runs in its own task on the frontdoor's tracker.
pub async fn serve_framed<I, T>(
    mut incoming: I,
    frontdoor: Frontdoor,
    auth: Arc<dyn Authenticator>,
    config: FramedFrontConfig,
) where
    I: Stream<Item = std::io::Result<T>> + Send + Unpin,
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    loop {
        let next = tokio::select! {
            () = frontdoor.shutting_down() => break,
            next = incoming.next() => next,
        };
        match next {
            Some(Ok(io)) => {
                let door = frontdoor.clone();
                let auth = Arc::clone(&auth);
                let config = config.clone();
                frontdoor
                    .tracker()
                    .spawn(async move { serve_connection(io, door, auth, config).await });
            }
            Some(Err(e)) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
            None => break,
        }
    }
    debug!("framed front stopped accepting");
}

type Reader<T> = FramedRead<ReadHalf<T>, LengthDelimitedCodec>;
type Writer<T> = FramedWrite<WriteHalf<T>, LengthDelimitedCodec>;

/// One connection, from `hello` to close; logs why it ended.
async fn serve_connection<T>(
    io: T,
    frontdoor: Frontdoor,
    auth: Arc<dyn Authenticator>,
    config: FramedFrontConfig,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let mut reader = FramedRead::new(read, client_frames());
    let mut writer = FramedWrite::new(write, server_frames());
    let shaken = tokio::select! {
        shaken = handshake(&mut reader, &*auth, config.handshake_timeout) => shaken,
        () = frontdoor.shutting_down() => Err(Unshaken::Close("server shutting down".into())),
    };
    let admitted = shaken.and_then(|identity| admit(identity, config.admission.as_ref()));
    let (identity, _permit) = match admitted {
        Ok(admitted) => admitted,
        Err(Unshaken::Close(reason)) => {
            debug!(%reason, "connection closed during handshake");
            return;
        }
        Err(Unshaken::Refuse(error, refusal)) => {
            debug!(code = %error.code, reason = %error.message, "handshake refused");
            if let (Some(admission), Some(refusal)) = (&config.admission, refusal) {
                admission.refused(refusal);
            }
            let refused = Bytes::from(encode_server(&ServerFrame::Refused { error }));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                let _ = writer.send(refused).await;
                let _ = SinkExt::<Bytes>::close(&mut writer).await;
            })
            .await;
            return;
        }
    };
    let user = identity.user.clone();
    let Ok((inbound, outbound)) = frontdoor.open(user.clone()).await else {
        info!(%user, "server shutting down: connection closed");
        return;
    };
    let conn = inbound.id();
    let reason = tokio::select! {
        reason = read_loop(&mut reader, &inbound) => reason,
        reason = write_loop(&mut writer, outbound, config.write_batch) => reason,
        () = identity.expired() => SESSION_EXPIRED.to_owned(),
    };
    info!(%conn, %user, %reason, "connection closed");
    // Dropping `inbound` tells the driver; dropping the permit frees the
    // user's slot.
}

/// Takes the user's connection slot, if the front keeps a per-user cap.
fn admit(
    identity: Identity,
    admission: Option<&Arc<Admission>>,
) -> Result<(Identity, Option<Permit>), Unshaken> {
    let Some(admission) = admission else {
        return Ok((identity, None));
    };
    match admission.admit_user(&identity.user) {
        Ok(permit) => Ok((identity, Some(permit))),
        Err(refusal) => Err(Unshaken::Refuse(
            ErrorBody::new(ErrorCode::Unavailable, refusal.label()),
            Some(refusal),
        )),
    }
}

/// Why a handshake did not produce a user.
enum Unshaken {
    /// Answer `refused` with this error, then close; the refusal is
    /// counted in the admission summary when it is one of its kinds.
    Refuse(ErrorBody, Option<Refusal>),
    /// Just close (timeout, broken stream).
    Close(String),
}

async fn handshake<T: AsyncRead>(
    reader: &mut Reader<T>,
    auth: &dyn Authenticator,
    timeout: Duration,
) -> Result<Identity, Unshaken> {
    let first = match tokio::time::timeout(timeout, reader.next()).await {
        Err(_) => {
            return Err(Unshaken::Close(
                "no hello within the handshake timeout".into(),
            ));
        }
        Ok(None) => return Err(Unshaken::Close("closed before hello".into())),
        Ok(Some(Err(e))) => return Err(Unshaken::Close(format!("bad framing: {e}"))),
        Ok(Some(Ok(bytes))) => bytes,
    };
    let invalid = |m: String| Unshaken::Refuse(ErrorBody::new(ErrorCode::Invalid, m), None);
    match decode_client(&first) {
        Ok(ClientFrame::Hello { version, token }) => {
            if version != PROTOCOL_VERSION {
                return Err(invalid(format!(
                    "unsupported protocol version {version} (server speaks {PROTOCOL_VERSION})"
                )));
            }
            let unauthorized = || {
                Unshaken::Refuse(
                    ErrorBody::new(ErrorCode::Unauthorized, Refusal::Unauthorized.label()),
                    Some(Refusal::Unauthorized),
                )
            };
            if token.len() > MAX_TOKEN_BYTES {
                debug!(bytes = token.len(), "token too long: refused unread");
                return Err(unauthorized());
            }
            auth.authenticate(&token).map_err(|e| {
                debug!(error = %e, "authentication failed");
                unauthorized()
            })
        }
        Ok(_) => Err(invalid("the first frame must be hello".into())),
        Err(e) => Err(invalid(format!("undecodable hello: {e}"))),
    }
}

async fn read_loop<T: AsyncRead>(reader: &mut Reader<T>, inbound: &ConnInbound) -> String {
    loop {
        let sent = match reader.next().await {
            None => return "closed by the client".into(),
            Some(Err(e)) => return format!("bad framing: {e}"),
            Some(Ok(bytes)) => match decode_client(&bytes) {
                Ok(frame) => inbound.frame(frame).await,
                Err(error) => inbound.undecodable(error).await,
            },
        };
        if sent.is_err() {
            return "server stopped".into();
        }
    }
}

async fn write_loop<T: AsyncWrite>(
    writer: &mut Writer<T>,
    mut outbound: ConnOutbound,
    batch: usize,
) -> String {
    loop {
        let first = match outbound.recv().await {
            Ok(frame) => frame,
            Err(OutboundEnd::Killed) => return "cut off: too slow to keep up".into(),
            Err(OutboundEnd::Closed) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, SinkExt::<Bytes>::close(writer)).await;
                return "closed by the server".into();
            }
        };
        if let Err(e) = writer.feed(first.json().clone()).await {
            return format!("write failed: {e}");
        }
        for _ in 1..batch.max(1) {
            let Some(next) = outbound.try_recv() else {
                break;
            };
            if let Err(e) = writer.feed(next.json().clone()).await {
                return format!("write failed: {e}");
            }
        }
        if let Err(e) = SinkExt::<Bytes>::flush(writer).await {
            return format!("write failed: {e}");
        }
    }
}
