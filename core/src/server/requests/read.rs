//! `message:read`: raise the user's watermark in the store (max wins, not
//! beyond the head, both checked by the store).

use crate::ids::{ChannelId, Seq};
use crate::server::limits::Kind;
use crate::server::ops::{PendingOp, Waiter};
use crate::server::{AccessPolicy, Denied, Server};
use crate::store::StoreCommand;

impl<P: AccessPolicy> Server<P> {
    pub(super) fn read(&mut self, w: Waiter, channel: ChannelId, up_to: Seq) -> Result<(), Denied> {
        self.require_joined(w.conn, &channel)?;
        let Some(user) = self.user_of(w.conn).cloned() else {
            return Ok(());
        };
        self.check_capacity(w.conn, 1)?;
        self.take_token(w.conn, Kind::Receipt)?;
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
        }
        self.issue(
            StoreCommand::SetReceipt {
                channel: channel.clone(),
                user: user.clone(),
                up_to,
            },
            PendingOp::Receipt {
                waiter: w,
                channel,
                user,
            },
        );
        Ok(())
    }
}
