//! Verifying the `hello` token: a pluggable [`Authenticator`] and the
//! insecure [`DevAuthenticator`] for development.

use lockstep_core::ids::UserId;
use tracing::warn;

/// Why a token was refused. The client only ever learns `unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is not one this authenticator accepts.
    #[error("token rejected: {0}")]
    Rejected(String),
}

/// Turns a handshake token into a verified user id. Identity comes only
/// from here, never from a payload.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `token`.
    ///
    /// # Errors
    ///
    /// [`AuthError`] when the token is not accepted.
    fn authenticate(&self, token: &str) -> Result<UserId, AuthError>;
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
    fn authenticate(&self, token: &str) -> Result<UserId, AuthError> {
        let Some(user) = token.strip_prefix("dev:") else {
            return Err(AuthError::Rejected("expected dev:<userId>".into()));
        };
        UserId::new(user).map_err(|e| AuthError::Rejected(e.to_string()))
    }
}
