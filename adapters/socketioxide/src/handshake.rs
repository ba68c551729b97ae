//! Before a socket is authenticated: the peer address a server hands the
//! front, the count of Engine.IO sessions still in their handshake, and the
//! one way every refusal is counted and logged.
//!
//! **Handshakes in progress.** A new Engine.IO session is an HTTP request
//! to the Socket.IO path without a `sid` (a polling `GET` or a WebSocket
//! upgrade). [`admit_session`] takes a handshake [`Permit`] for it, or
//! refuses it, before socketioxide allocates anything, and stores the permit
//! in the request's extensions as a [`PendingHandshake`]. Engine.IO keeps the
//! request's parts for the session's whole life, so the permit lives exactly
//! as long as the session: the connect middleware releases it as soon as
//! the token is accepted, and a session that never authenticates releases
//! it when Socket.IO's `connect_timeout` closes it. The count is therefore
//! exact (not a window estimate), and bounded by the handshake deadline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use lockstep_tokio::server::{Admission, Permit, Refusal};

use crate::metrics;

/// The TCP peer of a request, inserted into its extensions by the server's
/// accept loop: the per-address caps and the logs of refused handshakes
/// read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A handshake permit carried in a new session's request extensions;
/// released when the session authenticates, or with the session.
#[derive(Debug, Clone)]
pub struct PendingHandshake(Arc<Mutex<Option<Permit>>>);

impl PendingHandshake {
    /// Releases the permit: the session has authenticated (releasing twice
    /// does nothing).
    pub fn release(&self) {
        let permit = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(permit);
    }
}

/// Whether a request opens a new Engine.IO session on `path` (socketioxide's
/// `req_path`, `/socket.io` by default): a `GET` under the path with no
/// `sid` in its query.
#[must_use]
pub fn is_new_session<B>(request: &http::Request<B>, path: &str) -> bool {
    let uri = request.uri();
    let under = uri
        .path()
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    under
        && request.method() == http::Method::GET
        && !uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("sid=")))
}

/// Admits a request that opens a new Engine.IO session on `path` as a
/// handshake in progress (attaching its [`PendingHandshake`]); any other
/// request passes untouched.
///
/// # Errors
///
/// The [`Refusal`] when a handshake cap is reached; it is already counted
/// and logged, and the caller answers it (HTTP 503 with the refusal as the
/// body).
pub fn admit_session<B>(
    admission: &Arc<Admission>,
    request: &mut http::Request<B>,
    path: &str,
) -> Result<(), Refusal> {
    if !is_new_session(request, path) {
        return Ok(());
    }
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
    match admission.admit_handshake(peer.map(|p| p.ip())) {
        Ok(permit) => {
            request
                .extensions_mut()
                .insert(PendingHandshake(Arc::new(Mutex::new(Some(permit)))));
            Ok(())
        }
        Err(refusal) => {
            refused(Some(admission), refusal, peer, &"engine.io handshake");
            Err(refusal)
        }
    }
}

/// Counts and logs one refusal, the one way every refusal of the server is
/// reported: at `debug` with the peer and `detail`, in the
/// `lockstep_handshakes_total` metric by its label, and in the admission
/// registry's periodic summary at `info`.
pub fn refused(
    admission: Option<&Admission>,
    refusal: Refusal,
    peer: Option<SocketAddr>,
    detail: &dyn std::fmt::Display,
) {
    tracing::debug!(?peer, %refusal, %detail, "handshake refused");
    ::metrics::counter!(metrics::HANDSHAKES, "outcome" => refusal.label()).increment(1);
    if let Some(admission) = admission {
        admission.refused(refusal);
    }
}

#[cfg(test)]
mod tests {
    use lockstep_tokio::server::AdmissionConfig;

    use super::*;

    fn get(uri: &str) -> http::Request<()> {
        http::Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn only_a_get_without_sid_under_the_path_opens_a_session() {
        let path = "/socket.io";
        assert!(is_new_session(
            &get("/socket.io/?EIO=4&transport=polling"),
            path
        ));
        assert!(is_new_session(
            &get("/socket.io/?EIO=4&transport=websocket"),
            path
        ));
        assert!(!is_new_session(
            &get("/socket.io/?EIO=4&transport=polling&sid=abc"),
            path
        ));
        assert!(!is_new_session(&get("/socket.iox/?EIO=4"), path));
        assert!(!is_new_session(&get("/health"), path));
        let post = http::Request::post("/socket.io/?EIO=4&transport=polling")
            .body(())
            .unwrap();
        assert!(!is_new_session(&post, path));
    }

    #[test]
    fn a_session_holds_its_permit_until_released_once() {
        let admission = Admission::new(AdmissionConfig {
            pending: 1,
            ..AdmissionConfig::default()
        });
        let mut first = get("/socket.io/?EIO=4&transport=websocket");
        admit_session(&admission, &mut first, "/socket.io").unwrap();
        let mut second = get("/socket.io/?EIO=4&transport=websocket");
        assert_eq!(
            admit_session(&admission, &mut second, "/socket.io"),
            Err(Refusal::TooManyHandshakes)
        );
        // Requests of an existing session are not handshakes.
        let mut polling = get("/socket.io/?EIO=4&transport=polling&sid=x");
        admit_session(&admission, &mut polling, "/socket.io").unwrap();
        let pending = first
            .extensions()
            .get::<PendingHandshake>()
            .unwrap()
            .clone();
        pending.release();
        pending.release();
        assert_eq!(admission.handshakes(), 0);
        admit_session(&admission, &mut second, "/socket.io").unwrap();
        // Dropping the request (the session) releases it too.
        drop(second);
        assert_eq!(admission.handshakes(), 0);
    }
}
