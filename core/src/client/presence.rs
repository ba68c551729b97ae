//! Who is here, who is typing, who has read what.

use crate::Instant;
use crate::ids::{ChannelId, Seq, UserId};
use crate::wire::{Ack, ClientFrame, ReqId};

use super::Client;
use super::channel::LocalTyping;
use super::events::{ClientEvent, ConnectionState};
use super::requests::{Reply, Request};
use super::timers::TimerKey;

/// Most users tracked per channel in each of the member, typing and
/// receipt views, so a hostile server cannot grow them without bound.
pub(super) const PEOPLE_MAX: usize = 10_000;

impl Client {
    pub(super) fn on_presence(
        &mut self,
        now: Instant,
        channel: ChannelId,
        user: UserId,
        joined: bool,
    ) {
        if !self.known_channel(&channel) || !self.is_joined(&channel) {
            return;
        }
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        if joined {
            if ch.members.len() >= PEOPLE_MAX {
                tracing::warn!(%channel, "member view full; ignoring presence:join");
            } else if ch.members.add(user.clone()) {
                self.emit(ClientEvent::MemberJoined { channel, user });
            }
        } else if ch.members.take(&user) {
            self.emit(ClientEvent::MemberLeft {
                channel: channel.clone(),
                user: user.clone(),
            });
            self.on_remote_typing(now, channel, user, false);
        }
    }

    pub(super) fn on_remote_typing(
        &mut self,
        now: Instant,
        channel: ChannelId,
        user: UserId,
        active: bool,
    ) {
        if !self.known_channel(&channel) || !self.is_joined(&channel) {
            return;
        }
        let until = now.saturating_add(self.config.typing_ttl);
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let key = TimerKey::RemoteTyping(channel.clone(), user.clone());
        let changed = if active {
            if ch.typing.len() >= PEOPLE_MAX && !ch.typing.contains_key(&user) {
                tracing::warn!(%channel, "typing view full; ignoring typing");
                return;
            }
            let new = ch.typing.insert(user.clone(), until).is_none();
            self.timers.arm(key, until);
            new
        } else {
            self.timers.cancel(&key);
            ch.typing.remove(&user).is_some()
        };
        if changed {
            self.emit(ClientEvent::Typing {
                channel,
                user,
                active,
            });
        }
    }

    pub(super) fn on_remote_typing_expired(&mut self, channel: ChannelId, user: UserId) {
        if let Some(ch) = self.channels.get_mut(&channel) {
            if ch.typing.remove(&user).is_some() {
                self.emit(ClientEvent::Typing {
                    channel,
                    user,
                    active: false,
                });
            }
        }
    }

    pub(super) fn on_receipt(&mut self, channel: ChannelId, user: UserId, up_to: Seq) {
        if !self.known_channel(&channel) || !self.is_joined(&channel) {
            return;
        }
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        if ch.receipts.len() >= PEOPLE_MAX && !ch.receipts.contains_key(&user) {
            tracing::warn!(%channel, "receipt view full; ignoring message:read");
            return;
        }
        let known = ch.receipts.get_or_insert(user.clone(), Seq::ZERO);
        if up_to > *known {
            *known = up_to;
            self.emit(ClientEvent::Read {
                channel,
                user,
                up_to,
            });
        }
    }

    /// Records that the user has read `channel` up to `up_to` and tells the
    /// server; a lower value than before is ignored (max wins).
    pub fn mark_read(&mut self, now: Instant, channel: ChannelId, up_to: Seq) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        if up_to <= ch.read_mark {
            return;
        }
        ch.read_mark = up_to;
        if self.is_joined(&channel) {
            self.send_read(now, &channel, up_to);
        }
    }

    pub(super) fn send_read(&mut self, now: Instant, channel: &ChannelId, up_to: Seq) {
        let deadline = now.saturating_add(self.config.request_timeout);
        let req = self.requests.start(
            &mut self.timers,
            Request::Read(channel.clone(), up_to),
            deadline,
        );
        self.send_frame(ClientFrame::Read {
            req,
            channel_id: channel.clone(),
            up_to,
        });
    }

    pub(super) fn on_read_reply(
        &mut self,
        req: ReqId,
        channel: ChannelId,
        sent: Seq,
        reply: Reply,
    ) {
        match reply {
            Reply::Ack(Ack::Read { up_to }) => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.read_sent = ch.read_sent.max(up_to);
                }
            }
            Reply::Ack(other) => self.wrong_kind(req, &Request::Read(channel, sent), &other),
            Reply::Nack(e) => tracing::debug!(code = %e.code, "read mark refused"),
        }
    }

    /// Shows or hides our typing indicator in `channel`. While active it is
    /// refreshed at most every `typing_resend` (call it on each keystroke)
    /// and stops by itself `typing_ttl` after the last call.
    pub fn set_typing(&mut self, now: Instant, channel: ChannelId, active: bool) {
        if self.state == ConnectionState::Closed {
            return;
        }
        let joined = self.is_joined(&channel);
        let resend = self.config.typing_resend;
        let until = now.saturating_add(self.config.typing_ttl);
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let key = TimerKey::LocalTyping(channel.clone());
        match (active, ch.local_typing) {
            (true, LocalTyping::Active { last_sent }) if now < last_sent.saturating_add(resend) => {
                self.timers.arm(key, until);
            }
            (true, _) => {
                ch.local_typing = LocalTyping::Active { last_sent: now };
                self.timers.arm(key, until);
                if joined {
                    self.send_typing(&channel, true);
                }
            }
            (false, LocalTyping::Active { .. }) => {
                ch.local_typing = LocalTyping::Idle;
                self.timers.cancel(&key);
                if joined {
                    self.send_typing(&channel, false);
                }
            }
            (false, LocalTyping::Idle) => {}
        }
    }

    fn send_typing(&mut self, channel: &ChannelId, active: bool) {
        self.send_frame(ClientFrame::Typing {
            req: None,
            channel_id: channel.clone(),
            active,
        });
    }

    pub(super) fn on_local_typing_expired(&mut self, now: Instant, channel: ChannelId) {
        self.set_typing(now, channel, false);
    }
}
