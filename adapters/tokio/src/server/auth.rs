//! Verifying the `hello` token: a pluggable [`Authenticator`] and the
//! insecure [`DevAuthenticator`] for development.

use std::time::SystemTime;

use lockstep_core::ids::UserId;
use tracing::warn;

/// Longest token a front hands to an [`Authenticator`], in bytes. A longer
/// one is refused unread: a signed token is a few hundred bytes, and nothing
/// a client sends before it is authenticated may cost the server more than
/// a small, fixed amount of work.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. The client only ever learns `unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is not one this authenticator accepts.
    #[error("token rejected: {0}")]
    Rejected(String),
}

/// Who a verified token names, and until when it may act: a front ends the
/// session when the credential expires, so a revoked user's access ends
/// with the token's lifetime, not with the connection's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The verified user.
    pub user: UserId,
    /// When the credential stops being valid (`None`: it never does, as
    /// with development tokens).
    pub expires_at: Option<SystemTime>,
}

impl Identity {
    /// An identity whose credential never expires.
    #[must_use]
    pub fn forever(user: UserId) -> Self {
        Identity {
            user,
            expires_at: None,
        }
    }

    /// How long from `now` until the credential expires; `None` when it
    /// never does, zero when it already has.
    #[must_use]
    pub fn remaining(&self, now: SystemTime) -> Option<std::time::Duration> {
        self.expires_at
            .map(|at| at.duration_since(now).unwrap_or_default())
    }

    /// Resolves when the credential expires (never, for one that does
    /// not): fronts race it against the session, so a session lasts no
    /// longer than its token.
    pub async fn expired(&self) {
        match self.remaining(SystemTime::now()) {
            Some(left) => tokio::time::sleep(left).await,
            None => std::future::pending().await,
        }
    }
}

/// The reason a front logs when it ends a session whose token expired.
pub const SESSION_EXPIRED: &str = "session expired: the token's exp has passed";

/// Turns a handshake token into a verified identity. Identity comes only
/// from here, never from a payload.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `token`.
    ///
    /// # Errors
    ///
    /// [`AuthError`] when the token is not accepted.
    fn authenticate(&self, token: &str) -> Result<Identity, AuthError>;
}

/// **Insecure.** Accepts any `dev:<userId>` token as that user, so anyone
/// can be anyone. For local development and tests only; it says so loudly
/// in the log when created.
#[derive(Debug)]
pub struct DevAuthenticator {
    _private: (),
}

impl DevAuthenticator {
    /// Creates it and logs a warning that it is insecure.
    #[must_use]
    pub fn new() -> Self {
        warn!(
            "INSECURE: DevAuthenticator accepts any `dev:<userId>` token as that user; \
             never use it in production"
        );
        DevAuthenticator { _private: () }
    }
}

impl Default for DevAuthenticator {
    fn default() -> Self {
        DevAuthenticator::new()
    }
}

impl Authenticator for DevAuthenticator {
    fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let Some(user) = token.strip_prefix("dev:") else {
            return Err(AuthError::Rejected("expected dev:<userId>".into()));
        };
        UserId::new(user)
            .map(Identity::forever)
            .map_err(|e| AuthError::Rejected(e.to_string()))
    }
}
