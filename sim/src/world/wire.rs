//! What travels: with `--wire`, every frame goes through its encoding and
//! back before it is delivered, so the lab proves what really crosses the
//! network. A client machine's frames take the JSON codec of the framed
//! transports; a plain app's take the Socket.IO mapping
//! (`lockstep_core::wire::socketio`), as socket.io-client and the
//! socketioxide front carry them; server frames take both (one frame may
//! reach either kind of client).

use std::fmt;

use lockstep_core::Instant;
use lockstep_core::ids::ChannelId;
use lockstep_core::wire::socketio::{self, Emit, Outgoing};
use lockstep_core::wire::{
    ClientFrame, DecodeError, ServerFrame, decode_client, decode_server, encode_client,
    encode_server,
};

use crate::oracle::{Failure, Oracle};

/// A frame through `there_and_back`; one that does not come back equal is
/// a codec failure, and travels as it was.
pub(super) fn roundtrip<F: PartialEq + fmt::Debug>(
    oracle: &mut Oracle,
    now: Instant,
    channel: Option<&ChannelId>,
    frame: F,
    there_and_back: impl FnOnce(&F) -> Result<F, DecodeError>,
) -> F {
    match there_and_back(&frame) {
        Ok(back) if back == frame => back,
        other => {
            oracle.fail(
                Failure::CodecRoundTrip,
                now,
                None,
                channel,
                format!("{frame:?} does not survive its encoding: {other:?}"),
            );
            frame
        }
    }
}

/// A client machine's frame through the JSON codec.
pub(super) fn client_json(frame: &ClientFrame) -> Result<ClientFrame, DecodeError> {
    decode_client(&encode_client(frame))
}

/// A plain app's frame through the Socket.IO mapping: a request becomes an
/// event with an ack id and back. The handshake (`auth`), the heartbeat
/// (Engine.IO's own) and a typing notice without an ack id are not
/// requests of the mapping; they take the JSON codec.
pub(super) fn client_socketio(frame: &ClientFrame) -> Result<ClientFrame, DecodeError> {
    match socketio::emit(frame) {
        Emit::Event {
            name,
            payload,
            req: Some(req),
            ..
        } => socketio::decode_event(name, Some(&payload), req),
        Emit::Event { req: None, .. } | Emit::Connect { .. } | Emit::Pong { .. } => {
            client_json(frame)
        }
    }
}

/// A server frame through the JSON codec and through the Socket.IO mapping.
pub(super) fn server_both(frame: &ServerFrame) -> Result<ServerFrame, DecodeError> {
    let back = decode_server(&encode_server(frame))?;
    if &back != frame {
        return Ok(back);
    }
    match socketio::encode_frame(frame) {
        Outgoing::Reply { req, body } => {
            // The reply's shape is the request's kind; a refusal's is the
            // same for every kind.
            let kind = match frame {
                ServerFrame::Ack { body, .. } => body.kind(),
                _ => "send",
            };
            socketio::decode_reply(req, kind, body.get())
        }
        Outgoing::Event { name, payload } => socketio::decode_server_event(name, payload.get())?
            .ok_or_else(|| DecodeError::Malformed(format!("{name} is not a contract event"))),
        Outgoing::Refused(error) => Ok(socketio::refused(&error.message)),
        // The heartbeat's answer is Engine.IO's own.
        Outgoing::Nothing => Ok(back),
    }
}
