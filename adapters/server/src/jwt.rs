//! JWT authentication (HS256): `sub` is the user id; `exp` is required and
//! ends the session when it passes; `nbf` is honoured; `iss` and `aud` are
//! checked when configured; a small leeway absorbs clock skew.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lockstep_core::ids::UserId;
use lockstep_tokio::server::{AuthError, Authenticator, Identity};
use serde::{Deserialize, Serialize};

/// Shortest accepted secret, in bytes: HS256 is as strong as its key, and
/// RFC 7518 §3.2 asks for a key at least as long as the hash (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// Largest secret file read, in bytes (a secret is tens of bytes; a larger
/// file is a mistake, e.g. the wrong path).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The default leeway, in seconds, applied to `exp` and `nbf`: enough for
/// the clock skew of NTP-synchronised hosts and slow virtual machines,
/// small beside token lifetimes of minutes to hours.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// The claims a verified token must carry for lockstep (the JWT library
/// checks `nbf`, `iss` and `aud` itself).
#[derive(Debug, Deserialize)]
struct Verified {
    sub: String,
    exp: u64,
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

/// Why the secret is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither a secret nor a secret file was given.
    #[error(
        "no authentication configured: pass --jwt-secret-file (or LOCKSTEP_JWT_SECRET_FILE), \
         --jwt-secret (or LOCKSTEP_JWT_SECRET), or --dev for insecure development tokens"
    )]
    Missing,
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes (it has {0})")]
    Weak(usize),
    /// The secret file could not be read.
    #[error("cannot read the JWT secret file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret file is larger than [`MAX_SECRET_FILE_BYTES`].
    #[error("the JWT secret file {0} is larger than {MAX_SECRET_FILE_BYTES} bytes")]
    FileTooLarge(String),
}

/// The HS256 secret. Never shown in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret from a file (its content, without trailing whitespace such
    /// as the newline an editor or `echo` adds) or given inline; a file keeps
    /// it out of `ps` and the environment.
    ///
    /// # Errors
    ///
    /// [`SecretError`] when neither is given, the file cannot be read, or
    /// the secret is shorter than [`MIN_SECRET_BYTES`].
    pub fn load(inline: Option<&str>, file: Option<&Path>) -> Result<Secret, SecretError> {
        let bytes = match (file, inline) {
            (Some(path), _) => read_secret_file(path)?,
            (None, Some(secret)) => secret.as_bytes().to_vec(),
            (None, None) => return Err(SecretError::Missing),
        };
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::Weak(bytes.len()));
        }
        Ok(Secret(bytes))
    }

    /// The key bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretError> {
    use std::io::Read;
    let error = |source| SecretError::File {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(error)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::FileTooLarge(path.display().to_string()));
    }
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    bytes.truncate(end);
    Ok(bytes)
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtChecks {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set. When unset, a token that names an audience
    /// is refused (RFC 7519 §4.1.3: it is meant for someone else).
    pub audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

/// Verifies HS256 JWTs signed with a shared secret. The secret never
/// appears in logs or `Debug` output.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtAuthenticator { .. }")
    }
}

impl JwtAuthenticator {
    /// Verifies tokens signed with `secret`: `exp` and `sub` are required,
    /// `exp` and `nbf` are checked with the leeway, `iss` and `aud` as
    /// `checks` say.
    #[must_use]
    pub fn new(secret: &Secret, checks: &JwtChecks) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = checks.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &checks.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &checks.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        JwtAuthenticator {
            key: DecodingKey::from_secret(secret.bytes()),
            validation,
            leeway: Duration::from_secs(checks.leeway_secs),
        }
    }
}

impl Authenticator for JwtAuthenticator {
    /// The session may last until `exp` plus the leeway: a token accepted
    /// within the leeway is not closed the moment it opens.
    fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Verified>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Rejected(e.to_string()))?;
        let user = UserId::new(data.claims.sub).map_err(|e| AuthError::Rejected(e.to_string()))?;
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(data.claims.exp))
            .and_then(|at| at.checked_add(self.leeway));
        // RFC 7519 §4.1.4: not accepted *on or after* `exp` (the JWT
        // library still accepts a token during its `exp` second), so a
        // token is refused exactly when its session would be closed.
        if expires_at.is_some_and(|at| at <= SystemTime::now()) {
            return Err(AuthError::Rejected("token expired".into()));
        }
        Ok(Identity { user, expires_at })
    }
}

/// The claims of a token to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintClaims {
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not valid before, Unix seconds.
    pub nbf: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audience.
    pub aud: Option<String>,
}

impl MintClaims {
    /// A token valid until `exp` (Unix seconds), with no other claim.
    #[must_use]
    pub fn until(exp: u64) -> Self {
        MintClaims {
            exp,
            nbf: None,
            iss: None,
            aud: None,
        }
    }
}

/// Mints an HS256 token for `user` with `claims`.
///
/// # Errors
///
/// [`MintError`] for an invalid user id or a signing failure.
pub fn mint(secret: &Secret, user: &str, claims: &MintClaims) -> Result<String, MintError> {
    #[derive(Serialize)]
    struct Minted<'a> {
        sub: &'a str,
        exp: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<&'a str>,
    }
    let user = UserId::new(user).map_err(|e| MintError::User(e.to_string()))?;
    let minted = Minted {
        sub: user.as_str(),
        exp: claims.exp,
        nbf: claims.nbf,
        iss: claims.iss.as_deref(),
        aud: claims.aud.as_deref(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &minted,
        &EncodingKey::from_secret(secret.bytes()),
    )?)
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn secret(s: &str) -> Secret {
        Secret::load(Some(s), None).unwrap()
    }

    fn auth(checks: JwtChecks) -> JwtAuthenticator {
        JwtAuthenticator::new(&secret(KEY), &checks)
    }

    fn token(claims: MintClaims) -> String {
        mint(&secret(KEY), "alice", &claims).unwrap()
    }

    fn strict() -> JwtChecks {
        JwtChecks {
            leeway_secs: 0,
            ..JwtChecks::default()
        }
    }

    #[test]
    fn a_minted_token_names_its_user_and_its_expiry() {
        let exp = unix_now() + 60;
        let identity = auth(strict())
            .authenticate(&token(MintClaims::until(exp)))
            .unwrap();
        assert_eq!(identity.user.as_str(), "alice");
        assert_eq!(
            identity.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(exp))
        );
        // The session may run into the leeway, not past it.
        let lenient = auth(JwtChecks {
            leeway_secs: 30,
            ..JwtChecks::default()
        });
        let identity = lenient
            .authenticate(&token(MintClaims::until(exp)))
            .unwrap();
        assert_eq!(
            identity.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(exp + 30))
        );
    }

    #[test]
    fn wrong_secret_expired_and_garbage_are_rejected() {
        let auth = auth(strict());
        let other = mint(
            &secret("another-secret-another-secret-xx"),
            "alice",
            &MintClaims::until(unix_now() + 60),
        )
        .unwrap();
        let expired = token(MintClaims::until(unix_now() - 10));
        for token in [other.as_str(), expired.as_str(), "dev:alice", ""] {
            assert!(auth.authenticate(token).is_err(), "{token}");
        }
        assert!(mint(&secret(KEY), "bad user!", &MintClaims::until(1)).is_err());
    }

    #[test]
    fn the_leeway_forgives_small_skew_only() {
        let lenient = auth(JwtChecks {
            leeway_secs: 30,
            ..JwtChecks::default()
        });
        let now = unix_now();
        // Expired 10 s ago: within 30 s of leeway.
        assert!(
            lenient
                .authenticate(&token(MintClaims::until(now - 10)))
                .is_ok()
        );
        // Expired 120 s ago: past it.
        assert!(
            lenient
                .authenticate(&token(MintClaims::until(now - 120)))
                .is_err()
        );
        // Not before 10 s from now: within the leeway; 120 s: refused.
        let soon = MintClaims {
            nbf: Some(now + 10),
            ..MintClaims::until(now + 600)
        };
        assert!(lenient.authenticate(&token(soon.clone())).is_ok());
        assert!(auth(strict()).authenticate(&token(soon)).is_err());
        let later = MintClaims {
            nbf: Some(now + 120),
            ..MintClaims::until(now + 600)
        };
        assert!(lenient.authenticate(&token(later)).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let exp = unix_now() + 60;
        let claims = |iss: Option<&str>, aud: Option<&str>| MintClaims {
            iss: iss.map(str::to_owned),
            aud: aud.map(str::to_owned),
            ..MintClaims::until(exp)
        };
        let checked = auth(JwtChecks {
            issuer: Some("https://id.example".into()),
            audience: Some("chat".into()),
            leeway_secs: 0,
        });
        let good = token(claims(Some("https://id.example"), Some("chat")));
        assert!(checked.authenticate(&good).is_ok());
        for bad in [
            claims(Some("https://evil.example"), Some("chat")),
            claims(Some("https://id.example"), Some("billing")),
            claims(None, Some("chat")),
            claims(Some("https://id.example"), None),
        ] {
            assert!(
                checked.authenticate(&token(bad.clone())).is_err(),
                "{bad:?}"
            );
        }
        // Unconfigured: any issuer passes, but a token meant for an
        // audience is not for this server.
        let plain = auth(strict());
        assert!(plain.authenticate(&token(claims(Some("x"), None))).is_ok());
        assert!(
            plain
                .authenticate(&token(claims(None, Some("chat"))))
                .is_err()
        );
    }

    #[test]
    fn secrets_are_at_least_32_bytes_and_read_from_a_file_without_its_newline() {
        assert!(matches!(
            Secret::load(Some("sixteen-bytes-xx"), None),
            Err(SecretError::Weak(16))
        ));
        assert!(matches!(
            Secret::load(None, None),
            Err(SecretError::Missing)
        ));
        let dir = std::env::temp_dir().join(format!("lockstep-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, format!("{KEY}\n")).unwrap();
        // The file wins over an inline secret.
        let loaded = Secret::load(Some("ignored"), Some(&file)).unwrap();
        assert_eq!(loaded.bytes(), KEY.as_bytes());
        assert_eq!(format!("{loaded:?}"), "Secret(..)");
        std::fs::write(&file, "short\n").unwrap();
        assert!(matches!(
            Secret::load(None, Some(&file)),
            Err(SecretError::Weak(5))
        ));
        std::fs::write(&file, vec![b'x'; 70 * 1024]).unwrap();
        assert!(matches!(
            Secret::load(None, Some(&file)),
            Err(SecretError::FileTooLarge(_))
        ));
        assert!(matches!(
            Secret::load(None, Some(&dir.join("missing"))),
            Err(SecretError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
