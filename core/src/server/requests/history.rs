//! `channel:history`: one bounded page of a joined channel's log.

use crate::ids::{ChannelId, Seq};
use crate::server::limits::Kind;
use crate::server::ops::{PendingOp, Waiter};
use crate::server::{AccessPolicy, Denied, Server};
use crate::store::{ReadFrom, StoreCommand};
use crate::wire::ErrorCode;

impl<P: AccessPolicy> Server<P> {
    pub(super) fn history(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        after: Option<Seq>,
        limit: Option<u64>,
    ) -> Result<(), Denied> {
        self.require_joined(w.conn, &channel)?;
        let limit = match limit {
            None => self.config.history_limit_default,
            Some(0) => return Err(Denied::new(ErrorCode::Invalid, "limit must be at least 1")),
            Some(n) => n.min(self.config.history_limit_max),
        };
        self.check_capacity(w.conn, 1)?;
        self.take_token(w.conn, Kind::History)?;
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
        }
        let from = ReadFrom::After(after.unwrap_or(Seq::ZERO));
        self.issue_read(
            w.conn,
            StoreCommand::Read {
                channel: channel.clone(),
                from,
                limit,
                max_bytes: self.config.reply_bytes_max,
            },
            PendingOp::History { waiter: w, channel },
        );
        Ok(())
    }
}
