//! The outbox snapshot's JSON, read and written with the wire's small
//! reader ([`json`](crate::wire::json)) instead of serde, so the browser
//! module carries no serde code for it. The format is the serde derives'
//! on [`OutboxSnapshot`] (apps persist it); the tests hold these
//! functions to them.

use crate::ids::{ChannelId, ClientMsgId, MessageId};
use crate::wire::Body;
use crate::wire::json::{Fields, JsonError, ObjectWriter, Reader};

use super::events::OpId;
use super::outbox::{Command, OutboxSnapshot, SnapshotEntry};

type Result<T> = std::result::Result<T, JsonError>;

fn command(r: &mut Reader<'_>) -> Result<Command> {
    let f = Fields::read(r, ["kind", "clientMsgId", "body", "op", "messageId"])?;
    let body = |f: &Fields<'_, 5>| f.req(2, |r| Body::from_valid(r.raw()?));
    let message_id = |f: &Fields<'_, 5>| f.req(4, |r| r.id(|s| MessageId::new(s)));
    let op = |f: &Fields<'_, 5>| f.req(3, Reader::u64).map(OpId);
    match &*f.req(0, |r| r.string())? {
        "send" => Ok(Command::Send {
            client_msg_id: f.req(1, |r| r.id(|s| ClientMsgId::new(s)))?,
            body: body(&f)?,
        }),
        "update" => Ok(Command::Update {
            op: op(&f)?,
            message_id: message_id(&f)?,
            body: body(&f)?,
        }),
        "delete" => Ok(Command::Delete {
            op: op(&f)?,
            message_id: message_id(&f)?,
        }),
        _ => Err(JsonError::Field {
            field: "kind",
            problem: "unknown variant".into(),
        }),
    }
}

fn entry(r: &mut Reader<'_>) -> Result<SnapshotEntry> {
    let f = Fields::read(r, ["channel", "command"])?;
    Ok(SnapshotEntry {
        channel: f.req(0, |r| r.id(|s| ChannelId::new(s)))?,
        command: f.req(1, command)?,
    })
}

impl OutboxSnapshot {
    /// Reads a snapshot's JSON text (what [`to_json`](OutboxSnapshot::to_json)
    /// or serde wrote).
    ///
    /// # Errors
    ///
    /// [`JsonError`] for text that is not a snapshot.
    pub fn from_json(text: &str) -> Result<OutboxSnapshot> {
        let f = Fields::parse(text, ["version", "entries"])?;
        Ok(OutboxSnapshot {
            version: f.req(0, |r| {
                u32::try_from(r.u64()?).map_err(|_| JsonError::Field {
                    field: "version",
                    problem: "out of range".into(),
                })
            })?,
            entries: f.req(1, |r| {
                let mut entries = Vec::new();
                r.array(|r| {
                    entries.push(entry(r)?);
                    Ok(())
                })?;
                Ok(entries)
            })?,
        })
    }

    /// The snapshot as compact JSON text, as serde writes it.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut o = ObjectWriter::new(&mut out);
        o.u64("version", u64::from(self.version));
        let list = o.key("entries");
        list.push('[');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            let mut w = ObjectWriter::new(list);
            w.str("channel", e.channel.as_str());
            let mut c = ObjectWriter::new(w.key("command"));
            match &e.command {
                Command::Send {
                    client_msg_id,
                    body,
                } => {
                    c.str("kind", "send")
                        .str("clientMsgId", client_msg_id.as_str())
                        .raw("body", body.json());
                }
                Command::Update {
                    op,
                    message_id,
                    body,
                } => {
                    c.str("kind", "update")
                        .u64("op", op.0)
                        .str("messageId", message_id.as_str())
                        .raw("body", body.json());
                }
                Command::Delete { op, message_id } => {
                    c.str("kind", "delete")
                        .u64("op", op.0)
                        .str("messageId", message_id.as_str());
                }
            }
            c.finish();
            w.finish();
        }
        list.push(']');
        o.finish();
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn snapshot() -> impl Strategy<Value = OutboxSnapshot> {
        let text = "(\\PC|[\"\\\\\u{0}-\u{1f}]){1,12}";
        let entry = (
            "[a-z0-9:._-]{1,12}",
            text,
            text,
            any::<u64>(),
            "(\"[a-z ]{0,8}\"|[1-9][0-9]{0,4}|-?[0-9]\\.[0-9]{1,3}|\\{\"t\":\\[1, 2\\.50\\]\\}|null)",
            0..3u8,
        )
            .prop_map(|(channel, key, message, op, body, kind)| SnapshotEntry {
                channel: ChannelId::new(channel).unwrap(),
                command: match kind {
                    0 => Command::Send {
                        client_msg_id: ClientMsgId::new(key).unwrap(),
                        body: Body::from_json(&body).unwrap(),
                    },
                    1 => Command::Update {
                        op: OpId(op),
                        message_id: MessageId::new(message).unwrap(),
                        body: Body::from_json(&body).unwrap(),
                    },
                    _ => Command::Delete {
                        op: OpId(op),
                        message_id: MessageId::new(message).unwrap(),
                    },
                },
            });
        (any::<u32>(), prop::collection::vec(entry, 0..4))
            .prop_map(|(version, entries)| OutboxSnapshot { version, entries })
    }

    proptest! {
        /// Written as serde writes it; read back, also from serde's text
        /// spelled with spaces.
        #[test]
        fn a_snapshot_is_what_serde_writes_and_reads(s in snapshot()) {
            let text = s.to_json();
            prop_assert_eq!(&text, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(OutboxSnapshot::from_json(&text).unwrap(), s.clone());
            let pretty = serde_json::to_string_pretty(&s).unwrap();
            prop_assert_eq!(OutboxSnapshot::from_json(&pretty).unwrap(), s);
        }
    }

    #[test]
    fn what_is_not_a_snapshot_is_an_error() {
        for bad in [
            "",
            "[]",
            r#"{"version":1}"#,
            r#"{"version":1,"entries":{}}"#,
            r#"{"version":1,"entries":[{"channel":"c"}]}"#,
            r#"{"version":1,"entries":[{"channel":"c","command":{"kind":"send","clientMsgId":"k"}}]}"#,
            r#"{"version":1,"entries":[{"channel":"c","command":{"kind":"zap"}}]}"#,
            r#"{"version":4294967296,"entries":[]}"#,
            r#"{"version":1,"entries":[]} x"#,
        ] {
            assert!(OutboxSnapshot::from_json(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<OutboxSnapshot>(bad).is_err(),
                "serde takes {bad}"
            );
        }
    }
}
