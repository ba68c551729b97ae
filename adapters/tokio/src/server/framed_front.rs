//! The framed-TCP front: accepts byte streams, checks the `hello`, and
//! turns each connection into driver inputs and its queue back into bytes.
//! It holds no protocol logic: that is the driver's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use lockstep_core::ids::UserId;
use lockstep_core::wire::{
    ClientFrame, ErrorBody, ErrorCode, PROTOCOL_VERSION, ServerFrame, decode_client, encode_server,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use super::auth::Authenticator;
use super::front::{ConnInbound, ConnOutbound, Frontdoor, OutboundEnd};
use crate::framed::codec;

/// Settings of the framed front.
#[derive(Debug, Clone)]
pub struct FramedFrontConfig {
    /// Longest wait for the `hello` frame of a new connection.
    pub handshake_timeout: Duration,
    /// Most frames written before one flush.
    pub write_batch: usize,
}

impl Default for FramedFrontConfig {
    fn default() -> Self {
        FramedFrontConfig {
            handshake_timeout: Duration::from_secs(10),
            write_batch: 64,
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
    let mut reader = FramedRead::new(read, codec());
    let mut writer = FramedWrite::new(write, codec());
    let shaken = tokio::select! {
        shaken = handshake(&mut reader, &*auth, config.handshake_timeout) => shaken,
        () = frontdoor.shutting_down() => Err(Refusal::Close("server shutting down".into())),
    };
    let user = match shaken {
        Ok(user) => user,
        Err(Refusal::Close(reason)) => {
            warn!(%reason, "connection closed during handshake");
            return;
        }
        Err(Refusal::Refuse(error)) => {
            warn!(code = %error.code, reason = %error.message, "handshake refused");
            let refused = Bytes::from(encode_server(&ServerFrame::Refused { error }));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                let _ = writer.send(refused).await;
                let _ = SinkExt::<Bytes>::close(&mut writer).await;
            })
            .await;
            return;
        }
    };
    let Ok((inbound, outbound)) = frontdoor.open(user.clone()).await else {
        info!(%user, "server shutting down: connection closed");
        return;
    };
    let conn = inbound.id();
    let reason = tokio::select! {
        reason = read_loop(&mut reader, &inbound) => reason,
        reason = write_loop(&mut writer, outbound, config.write_batch) => reason,
    };
    info!(%conn, %user, %reason, "connection closed");
    // Dropping `inbound` tells the driver.
}

/// Why a handshake did not produce a user.
enum Refusal {
    /// Answer `refused` with this error, then close.
    Refuse(ErrorBody),
    /// Just close (timeout, broken stream).
    Close(String),
}

async fn handshake<T: AsyncRead>(
    reader: &mut Reader<T>,
    auth: &dyn Authenticator,
    timeout: Duration,
) -> Result<UserId, Refusal> {
    let first = match tokio::time::timeout(timeout, reader.next()).await {
        Err(_) => {
            return Err(Refusal::Close(
                "no hello within the handshake timeout".into(),
            ));
        }
        Ok(None) => return Err(Refusal::Close("closed before hello".into())),
        Ok(Some(Err(e))) => return Err(Refusal::Close(format!("bad framing: {e}"))),
        Ok(Some(Ok(bytes))) => bytes,
    };
    let invalid = |m: String| Refusal::Refuse(ErrorBody::new(ErrorCode::Invalid, m));
    match decode_client(&first) {
        Ok(ClientFrame::Hello { version, token }) => {
            if version != PROTOCOL_VERSION {
                return Err(invalid(format!(
                    "unsupported protocol version {version} (server speaks {PROTOCOL_VERSION})"
                )));
            }
            auth.authenticate(&token).map_err(|e| {
                debug!(error = %e, "authentication failed");
                Refusal::Refuse(ErrorBody::new(ErrorCode::Unauthorized, "unauthorized"))
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
