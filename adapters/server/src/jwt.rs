//! JWT authentication (HS256): `sub` is the user id, `exp` is honoured.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lockstep_core::ids::UserId;
use lockstep_tokio::server::{AuthError, Authenticator};
use serde::{Deserialize, Serialize};

/// The claims lockstep reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The user id is not a valid lockstep user id.
    #[error("invalid user id: {0}")]
    User(String),
    /// The JWT library failed to sign.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Verifies HS256 JWTs signed with a shared secret. The secret never
/// appears in logs or `Debug` output.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtAuthenticator { .. }")
    }
}

impl JwtAuthenticator {
    /// Verifies tokens signed with `secret`; `exp` is required and checked
    /// (no leeway: an expired token is refused at once).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtAuthenticator {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, token: &str) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Rejected(e.to_string()))?;
        UserId::new(data.claims.sub).map_err(|e| AuthError::Rejected(e.to_string()))
    }
}

/// Mints an HS256 token for `user`, valid until `exp` (Unix seconds).
///
/// # Errors
///
/// [`MintError`] for an invalid user id or a signing failure.
pub fn mint(secret: &[u8], user: &str, exp: u64) -> Result<String, MintError> {
    let user = UserId::new(user).map_err(|e| MintError::User(e.to_string()))?;
    let claims = Claims {
        sub: user.as_str().to_owned(),
        exp,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_minted_token_names_its_user() {
        let token = mint(b"s3cret", "alice", now_secs() + 60).unwrap();
        let auth = JwtAuthenticator::new(b"s3cret");
        assert_eq!(auth.authenticate(&token).unwrap().as_str(), "alice");
    }

    #[test]
    fn wrong_secret_expired_and_garbage_are_rejected() {
        let auth = JwtAuthenticator::new(b"s3cret");
        let other = mint(b"other", "alice", now_secs() + 60).unwrap();
        let expired = mint(b"s3cret", "alice", now_secs() - 10).unwrap();
        for token in [other.as_str(), expired.as_str(), "dev:alice", ""] {
            assert!(auth.authenticate(token).is_err(), "{token}");
        }
        assert!(mint(b"s3cret", "bad user!", 1).is_err());
    }
}
