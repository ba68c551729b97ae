//! The closed set of request error codes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why the server refused one request. The set is closed: clients can match
/// on it exhaustively, and each code has a fixed retry meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is malformed: wrong shape, bad id, out-of-range number.
    Invalid,
    /// The body exceeds [`MAX_BODY_BYTES`](crate::wire::MAX_BODY_BYTES).
    TooLarge,
    /// The access policy refuses this user this action.
    Forbidden,
    /// The request needs a joined channel and this connection has not joined it.
    NotJoined,
    /// The message named by the request does not exist (or is deleted).
    NotFound,
    /// The connection exceeded a rate or count limit; retry after a pause.
    RateLimited,
    /// The server cannot serve now (store failure, overload, shutting down).
    Unavailable,
    /// The handshake token is missing or not valid.
    Unauthorized,
}

impl ErrorCode {
    /// Whether repeating the same request later can succeed. Fixed per code:
    /// only `rate_limited` and `unavailable` are transient.
    #[must_use]
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::RateLimited | ErrorCode::Unavailable)
    }

    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::Invalid,
        ErrorCode::TooLarge,
        ErrorCode::Forbidden,
        ErrorCode::NotJoined,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Unauthorized,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request as it travels: code, human message, retry flag.
///
/// `retryable` is carried for clients that do not know the code table; on
/// decode it is recomputed from the code so a peer cannot contradict it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// What went wrong, from the closed set.
    pub code: ErrorCode,
    /// A lowercase, human-readable explanation for logs and developers.
    pub message: String,
    /// Whether retrying the same request can succeed (derived from `code`).
    pub retryable: bool,
}

impl ErrorBody {
    /// Builds an error body; `retryable` follows from the code.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            retryable: code.retryable(),
        }
    }
}

impl<'de> Deserialize<'de> for ErrorBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            code: ErrorCode,
            #[serde(default)]
            message: String,
        }
        let raw = Raw::deserialize(d)?;
        Ok(ErrorBody::new(raw.code, raw.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_is_fixed_per_code() {
        let retryable: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(retryable, ["rate_limited", "unavailable"]);
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn decoded_retryable_cannot_lie() {
        let e: ErrorBody =
            serde_json::from_str(r#"{"code":"forbidden","message":"no","retryable":true}"#)
                .unwrap();
        assert!(!e.retryable);
    }
}
