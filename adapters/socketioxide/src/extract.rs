//! Two small socketioxide extractors. socketioxide's own `AckSender` is
//! consumed by a send that fails on a full buffer, which would lose the
//! reply; keeping the raw ack id and the socket lets the writer rebuild it
//! and try again once the buffer drains.

use std::convert::Infallible;
use std::sync::Arc;

use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::AckSender;
use socketioxide::handler::{FromConnectParts, FromMessageParts};
use socketioxide::socket::Socket;
use socketioxide_core::Value;

/// The ack id of the event being handled (`None`: no ack callback).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckId(pub(crate) Option<i64>);

impl FromMessageParts<LocalAdapter> for AckId {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<LocalAdapter>>,
        _: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(AckId(*ack_id))
    }
}

/// The connected socket itself, for the connection's writer task.
#[derive(Debug, Clone)]
pub(crate) struct SocketHandle(pub(crate) Arc<Socket<LocalAdapter>>);

impl FromConnectParts<LocalAdapter> for SocketHandle {
    type Error = Infallible;
    fn from_connect_parts(
        s: &Arc<Socket<LocalAdapter>>,
        _: &Option<Value>,
    ) -> Result<Self, Infallible> {
        Ok(SocketHandle(Arc::clone(s)))
    }
}

impl SocketHandle {
    /// A sender for the reply to ack `id`.
    pub(crate) fn ack_sender(&self, id: i64) -> AckSender {
        let mut none = Value::Bytes(bytes::Bytes::new());
        match AckSender::from_message_parts(&self.0, &mut none, &Some(id)) {
            Ok(sender) => sender,
            Err(never) => match never {},
        }
    }
}
