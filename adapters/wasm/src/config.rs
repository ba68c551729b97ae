//! The options a frontend team sets, in the names it knows, mapped onto the
//! machine's [`ClientConfig`].
//!
//! Names follow `socket.io-client` where it has the same knob
//! (`reconnectionDelay`, `reconnectionDelayMax`, `reconnectionAttempts`,
//! `randomizationFactor`); the rest follow the lockstep contract. Every
//! field is optional: an absent one keeps the machine's default, so the
//! defaults live in one place ([`ClientConfig::default`]). Durations are
//! milliseconds, as in JavaScript.

use std::time::Duration;

use lockstep_core::client::{Backoff, ClientConfig};
use lockstep_core::wire::json::{Fields, JsonError, Reader, f64_text};
use tsify::Tsify;

/// Longest duration accepted, in milliseconds (about 24 days, the most a
/// JavaScript timer can wait); larger values are refused, not clamped.
pub const DURATION_MAX_MS: u64 = 2_147_483_647;

/// Largest count accepted for a size or window option, so a typo cannot
/// ask for unbounded memory.
pub const COUNT_MAX: u64 = 1_000_000;

/// The client's tunables. Every field is optional; an absent field keeps
/// the default shown (socket.io-client's own default in brackets where it
/// has the same knob).
#[derive(Debug, Clone, Default, PartialEq, Tsify)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebConfig {
    /// Longest time from opening a socket to the server's `session`
    /// event before the attempt is abandoned. Default 10000 (socket.io:
    /// `timeout`, 20000).
    #[tsify(optional)]
    pub connect_timeout: Option<u64>,
    /// First pause before reconnecting. Default 1000 (socket.io: 1000).
    #[tsify(optional)]
    pub reconnection_delay: Option<u64>,
    /// Longest pause between reconnection attempts. Default 30000
    /// (socket.io: 5000).
    #[tsify(optional)]
    pub reconnection_delay_max: Option<u64>,
    /// Attempts in a row before the connection gives up (`failed`);
    /// absent or `null`: never. Default unlimited (socket.io: `Infinity`).
    #[tsify(optional)]
    pub reconnection_attempts: Option<u32>,
    /// Fraction in `[0, 1]` of each pause taken off at random, so a crowd
    /// does not reconnect at once. Default 0.5 (socket.io: 0.5).
    #[tsify(optional)]
    pub randomization_factor: Option<f64>,
    /// Offline longer than this, the state becomes `suspended` and
    /// attempts slow down. Default 120000.
    #[tsify(optional)]
    pub suspend_after: Option<u64>,
    /// Pause between attempts while suspended. Default 60000.
    #[tsify(optional)]
    pub suspended_retry_delay: Option<u64>,
    /// Longest wait for a `channel:join` reply before retrying. Default
    /// 5000.
    #[tsify(optional)]
    pub join_timeout: Option<u64>,
    /// First pause before a join is retried; it doubles per attempt.
    /// Default 1000.
    #[tsify(optional)]
    pub join_retry_delay: Option<u64>,
    /// Longest pause between join attempts. Default 30000.
    #[tsify(optional)]
    pub join_retry_delay_max: Option<u64>,
    /// Longest wait for any other reply (send, edit, delete, history,
    /// read) before it is retried with the same id. Default 10000
    /// (socket.io: `ackTimeout`, none).
    #[tsify(optional)]
    pub request_timeout: Option<u64>,
    /// Timeouts or retryable refusals one send survives before it fails.
    /// Default 10.
    #[tsify(optional)]
    pub max_send_failures: Option<u32>,
    /// Sends in flight at once (pipelined, in order). Default 32.
    #[tsify(optional)]
    pub send_window: Option<u64>,
    /// Most unsent entries the outbox holds; `send` beyond it throws
    /// `outbox_full`. Default 1000.
    #[tsify(optional)]
    pub outbox_max: Option<u64>,
    /// Most channels subscribed at once. Default 256.
    #[tsify(optional)]
    pub max_channels: Option<u64>,
    /// Recent messages loaded on the first join of a channel. Default 50.
    #[tsify(optional)]
    pub initial_backlog: Option<u64>,
    /// Messages asked per `channel:history` page when filling a gap.
    /// Default 500.
    #[tsify(optional)]
    pub history_page: Option<u64>,
    /// How long a typing indicator lives without a refresh. Default 5000.
    #[tsify(optional)]
    pub typing_ttl: Option<u64>,
    /// Shortest pause between two `typing: true` emits. Default 3000.
    #[tsify(optional)]
    pub typing_resend: Option<u64>,
}

/// The options' names, in [`WebConfig`]'s order (the hand reader's; a
/// test holds it to the serde attributes tsify reads).
const FIELDS: [&str; 19] = [
    "connectTimeout",
    "reconnectionDelay",
    "reconnectionDelayMax",
    "reconnectionAttempts",
    "randomizationFactor",
    "suspendAfter",
    "suspendedRetryDelay",
    "joinTimeout",
    "joinRetryDelay",
    "joinRetryDelayMax",
    "requestTimeout",
    "maxSendFailures",
    "sendWindow",
    "outboxMax",
    "maxChannels",
    "initialBacklog",
    "historyPage",
    "typingTtl",
    "typingResend",
];

/// Why an option was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The options are not a JSON object of known fields and types.
    #[error("invalid options: {0}")]
    Malformed(String),
    /// A duration is above [`DURATION_MAX_MS`].
    #[error("{field} must be at most {DURATION_MAX_MS} ms, got {value}")]
    DurationTooLong {
        /// The option.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A count is below its minimum or above [`COUNT_MAX`].
    #[error("{field} must be between {min} and {COUNT_MAX}, got {value}")]
    Count {
        /// The option.
        field: &'static str,
        /// The smallest value allowed.
        min: u64,
        /// Its value.
        value: u64,
    },
    /// `randomizationFactor` is not a number in `[0, 1]`.
    #[error("randomizationFactor must be between 0 and 1, got {}", f64_text(*.0))]
    Randomization(f64),
}

fn duration(
    field: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(value) if value > DURATION_MAX_MS => {
            Err(ConfigError::DurationTooLong { field, value })
        }
        Some(value) => Ok(Duration::from_millis(value)),
    }
}

fn count(
    field: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(value) if value < min || value > COUNT_MAX => {
            Err(ConfigError::Count { field, min, value })
        }
        Some(value) => Ok(value),
    }
}

/// A count that sizes memory: at most [`COUNT_MAX`], so it fits `usize`.
fn size(field: &'static str, value: Option<u64>, default: usize) -> Result<usize, ConfigError> {
    let default = u64::try_from(default).unwrap_or(COUNT_MAX);
    let n = count(field, value, default, 1)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn attempts(field: &'static str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    let n = count(field, value.map(u64::from), u64::from(default), 1)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl WebConfig {
    /// Parses the options' JSON text (`{}` or empty text: all defaults).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Malformed`] for unknown fields or wrong types.
    pub fn from_json(json: &str) -> Result<WebConfig, ConfigError> {
        if json.trim().is_empty() {
            return Ok(WebConfig::default());
        }
        let malformed = |e: JsonError| ConfigError::Malformed(e.to_string());
        // Unknown fields are refused (a typo must not pass as a default).
        let mut unknown = None;
        Reader::new(json)
            .object(|r, key| {
                if unknown.is_none() && !FIELDS.contains(&&*key) {
                    unknown = Some(key.into_owned());
                }
                r.skip()
            })
            .map_err(malformed)?;
        if let Some(key) = unknown {
            return Err(ConfigError::Malformed(format!("unknown field `{key}`")));
        }
        let f = Fields::parse(json, FIELDS).map_err(malformed)?;
        let ms = |i| f.opt(i, Reader::u64);
        let n32 = |i| {
            f.opt(i, |r| {
                u32::try_from(r.u64()?).map_err(|_| JsonError::Field {
                    field: "count",
                    problem: "out of range".into(),
                })
            })
        };
        let read = || {
            Ok(WebConfig {
                connect_timeout: ms(0)?,
                reconnection_delay: ms(1)?,
                reconnection_delay_max: ms(2)?,
                reconnection_attempts: n32(3)?,
                randomization_factor: f.opt(4, Reader::f64)?,
                suspend_after: ms(5)?,
                suspended_retry_delay: ms(6)?,
                join_timeout: ms(7)?,
                join_retry_delay: ms(8)?,
                join_retry_delay_max: ms(9)?,
                request_timeout: ms(10)?,
                max_send_failures: n32(11)?,
                send_window: ms(12)?,
                outbox_max: ms(13)?,
                max_channels: ms(14)?,
                initial_backlog: ms(15)?,
                history_page: ms(16)?,
                typing_ttl: ms(17)?,
                typing_resend: ms(18)?,
            })
        };
        read().map_err(malformed)
    }

    /// The machine's configuration: the defaults with these options
    /// applied, each checked.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first option out of range.
    pub fn to_client_config(&self) -> Result<ClientConfig, ConfigError> {
        let d = ClientConfig::default();
        let jitter = match self.randomization_factor {
            None => d.reconnect_backoff.jitter,
            Some(f) if (0.0..=1.0).contains(&f) => f,
            Some(f) => return Err(ConfigError::Randomization(f)),
        };
        let reconnect_backoff = Backoff {
            base: duration(
                "reconnectionDelay",
                self.reconnection_delay,
                d.reconnect_backoff.base,
            )?,
            cap: duration(
                "reconnectionDelayMax",
                self.reconnection_delay_max,
                d.reconnect_backoff.cap,
            )?,
            jitter,
            ..d.reconnect_backoff
        };
        let join_backoff = Backoff {
            base: duration("joinRetryDelay", self.join_retry_delay, d.join_backoff.base)?,
            cap: duration(
                "joinRetryDelayMax",
                self.join_retry_delay_max,
                d.join_backoff.cap,
            )?,
            jitter,
            ..d.join_backoff
        };
        let max_connect_attempts = match self.reconnection_attempts {
            None => d.max_connect_attempts,
            Some(n) => Some(attempts("reconnectionAttempts", Some(n), n)?),
        };
        Ok(ClientConfig {
            connect_timeout: duration("connectTimeout", self.connect_timeout, d.connect_timeout)?,
            reconnect_backoff,
            max_connect_attempts,
            suspend_after: duration("suspendAfter", self.suspend_after, d.suspend_after)?,
            suspended_retry: duration(
                "suspendedRetryDelay",
                self.suspended_retry_delay,
                d.suspended_retry,
            )?,
            join_timeout: duration("joinTimeout", self.join_timeout, d.join_timeout)?,
            join_backoff,
            request_timeout: duration("requestTimeout", self.request_timeout, d.request_timeout)?,
            max_send_failures: attempts(
                "maxSendFailures",
                self.max_send_failures,
                d.max_send_failures,
            )?,
            send_window: size("sendWindow", self.send_window, d.send_window)?,
            outbox_max: size("outboxMax", self.outbox_max, d.outbox_max)?,
            max_channels: size("maxChannels", self.max_channels, d.max_channels)?,
            initial_backlog: count("initialBacklog", self.initial_backlog, d.initial_backlog, 0)?,
            history_page: count("historyPage", self.history_page, d.history_page, 1)?,
            typing_ttl: duration("typingTtl", self.typing_ttl, d.typing_ttl)?,
            typing_resend: duration("typingResend", self.typing_resend, d.typing_resend)?,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_are_the_machine_defaults() {
        for text in ["", "{}", "  "] {
            let config = WebConfig::from_json(text)
                .unwrap()
                .to_client_config()
                .unwrap();
            assert_eq!(config, ClientConfig::default());
        }
    }

    #[test]
    fn each_option_lands_on_its_machine_field() {
        let web = WebConfig::from_json(
            r#"{"connectTimeout":7000,"reconnectionDelay":250,"reconnectionDelayMax":4000,
                "reconnectionAttempts":3,"randomizationFactor":0.2,"suspendAfter":9000,
                "suspendedRetryDelay":8000,"joinTimeout":1500,"joinRetryDelay":300,
                "joinRetryDelayMax":6000,"requestTimeout":2500,"maxSendFailures":4,
                "sendWindow":8,"outboxMax":50,"maxChannels":12,"initialBacklog":0,
                "historyPage":100,"typingTtl":4000,"typingResend":2000}"#,
        )
        .unwrap();
        let c = web.to_client_config().unwrap();
        let ms = Duration::from_millis;
        assert_eq!(c.connect_timeout, ms(7000));
        assert_eq!(c.reconnect_backoff.base, ms(250));
        assert_eq!(c.reconnect_backoff.cap, ms(4000));
        assert_eq!(c.reconnect_backoff.jitter, 0.2);
        assert_eq!(c.join_backoff.jitter, 0.2);
        assert_eq!(c.max_connect_attempts, Some(3));
        assert_eq!(c.suspend_after, ms(9000));
        assert_eq!(c.suspended_retry, ms(8000));
        assert_eq!(c.join_timeout, ms(1500));
        assert_eq!(c.join_backoff.base, ms(300));
        assert_eq!(c.join_backoff.cap, ms(6000));
        assert_eq!(c.request_timeout, ms(2500));
        assert_eq!(c.max_send_failures, 4);
        assert_eq!(c.send_window, 8);
        assert_eq!(c.outbox_max, 50);
        assert_eq!(c.max_channels, 12);
        assert_eq!(c.initial_backlog, 0);
        assert_eq!(c.history_page, 100);
        assert_eq!(c.typing_ttl, ms(4000));
        assert_eq!(c.typing_resend, ms(2000));
    }

    #[test]
    fn out_of_range_and_unknown_options_are_refused_by_name() {
        let err = |json: &str| {
            WebConfig::from_json(json)
                .and_then(|w| w.to_client_config())
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"outboxMax":0}"#).contains("outboxMax"));
        assert!(err(r#"{"sendWindow":5000000}"#).contains("sendWindow"));
        assert!(err(r#"{"reconnectionAttempts":0}"#).contains("reconnectionAttempts"));
        assert!(err(r#"{"joinTimeout":9999999999}"#).contains("joinTimeout"));
        assert!(err(r#"{"randomizationFactor":1.5}"#).contains("randomizationFactor"));
        assert!(err(r#"{"connectTimeout":-1}"#).contains("invalid options"));
        assert!(err(r#"{"timeout":1000}"#).contains("unknown field"));
        assert!(err("[1]").contains("invalid options"));
        assert!(err(r#"{"sendWindow":1,"sendWindow":2}"#).contains("invalid options"));
    }

    /// The hand reader reads what serde's derive (the attributes tsify
    /// turns into the TypeScript type) reads, and refuses what it refuses.
    #[test]
    fn options_are_read_as_serde_reads_them() {
        let mut all = String::from("{");
        for (i, name) in FIELDS.iter().enumerate() {
            let value = if *name == "randomizationFactor" {
                "0.25".to_owned()
            } else {
                (i + 1).to_string()
            };
            all.push_str(&format!(
                "{}\"{name}\": {value}",
                if i == 0 { "" } else { "," }
            ));
        }
        all.push('}');
        for text in [
            all.as_str(),
            "{}",
            r#"{"randomizationFactor":1}"#,
            r#"{"randomizationFactor":1e-1,"outboxMax":null}"#,
            r#" { "maxSendFailures" : 4294967295 } "#,
            r#"{"maxSendFailures":4294967296}"#,
            r#"{"outboxMax":1.0}"#,
            r#"{"outboxMax":"1"}"#,
            r#"{"outboxMax":-1}"#,
            r#"{"outboxMax":1,}"#,
            r#"{"outboxMax":1} 1"#,
            r#"{"unknown":1}"#,
            "[]",
            "null",
        ] {
            let serde: Result<WebConfig, _> = serde_json::from_str(text);
            let hand = WebConfig::from_json(text);
            assert_eq!(hand.is_ok(), serde.is_ok(), "{text}: {hand:?}");
            if let (Ok(hand), Ok(serde)) = (hand, serde) {
                assert_eq!(hand, serde, "{text}");
            }
        }
    }
}
