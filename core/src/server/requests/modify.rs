//! `message:update` and `message:delete`: the store checks existence and
//! authorship atomically with the append, under the policy's rule.

use crate::ids::{ChannelId, MessageId};
use crate::server::ops::{Change, QueuedAppend, Waiter};
use crate::server::{AccessPolicy, Denied, Server};
use crate::wire::Body;

impl<P: AccessPolicy> Server<P> {
    /// An update when `body` is given, else a delete.
    pub(super) fn modify(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        target: MessageId,
        body: Option<Body>,
    ) -> Result<(), Denied> {
        self.require_joined(w.conn, &channel)?;
        let Some(user) = self.user_of(w.conn).cloned() else {
            return Ok(());
        };
        let change = match body {
            Some(body) => {
                self.check_body(&body)?;
                Change::Update(body)
            }
            None => Change::Delete,
        };
        self.take_message_token(w)?;
        self.check_capacity(w.conn, 1)?;
        let rule = self.policy.modify_rule(&user, &channel);
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
        }
        self.appends.push(
            &channel,
            QueuedAppend::Modify {
                waiter: w,
                target,
                actor: user,
                rule,
                change,
            },
            self.config.pipeline(),
        );
        Ok(())
    }
}
