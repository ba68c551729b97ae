//! `typing`: relayed to the room except the typer's own connections,
//! expiring after the TTL; never stored.

use crate::ids::ChannelId;
use crate::server::limits::Kind;
use crate::server::ops::Waiter;
use crate::server::timers::TimerKey;
use crate::server::typing::Typer;
use crate::server::{AccessPolicy, ConnId, Denied, Relay, Server};
use crate::wire::{Ack, ReqId, TypingNotice};

impl<P: AccessPolicy> Server<P> {
    pub(super) fn typing(
        &mut self,
        conn: ConnId,
        req: Option<ReqId>,
        channel: &ChannelId,
        active: bool,
    ) {
        let result = self.typing_checked(conn, channel, active);
        match (req, result) {
            (Some(req), Ok(())) => self.ack(Waiter { conn, req }, Ack::Typing),
            (Some(req), Err(denied)) => self.nack(Waiter { conn, req }, denied),
            (None, Ok(())) => {}
            (None, Err(Denied(code, message))) => {
                tracing::debug!(%conn, %code, message, "typing refused without a request id");
            }
        }
    }

    fn typing_checked(
        &mut self,
        conn: ConnId,
        channel: &ChannelId,
        active: bool,
    ) -> Result<(), Denied> {
        self.require_joined(conn, channel)?;
        self.take_token(conn, Kind::Typing)?;
        let now = self.now;
        let Some(user) = self.user_of(conn).cloned() else {
            return Ok(());
        };
        let key = TimerKey::TypingExpire(channel.clone(), user.clone());
        if active {
            let deadline = now.saturating_add(self.config.typing_ttl);
            if let Some(old) = self.typing.start(channel, &user, Typer { conn, deadline }) {
                self.timers.cancel(old.deadline, key.clone());
            }
            self.timers.arm(deadline, key);
            let notice = TypingNotice {
                channel_id: channel.clone(),
                user_id: user,
                active,
            };
            self.share(Relay::Typing(notice));
        } else if let Some(old) = self.typing.stop(channel, &user) {
            self.timers.cancel(old.deadline, key);
            self.typing_stopped(channel, user);
        }
        Ok(())
    }
}
