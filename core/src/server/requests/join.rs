//! `channel:join`: authorize, register membership at once (so no broadcast
//! committed after the log read can be missed), then read the log and answer.

use crate::ids::{ChannelId, Epoch, Seq};
use crate::server::conn::{JoinAttempt, Membership};
use crate::server::limits::Kind;
use crate::server::ops::{JoinStep, PendingOp, Waiter};
use crate::server::{AccessPolicy, Denied, Server};
use crate::store::{ReadFrom, StoreCommand};
use crate::wire::ErrorCode;

impl<P: AccessPolicy> Server<P> {
    pub(super) fn join(
        &mut self,
        w: Waiter,
        channel: ChannelId,
        epoch: Option<Epoch>,
        since: Option<Seq>,
    ) -> Result<(), Denied> {
        let Some(conn) = self.conns.get(&w.conn) else {
            return Ok(());
        };
        if conn.leaves.get(&channel).is_some_and(|left| w.req < *left) {
            // Sent before a leave we already served: the client gave this
            // attempt up (found by the lab: seed 1248, datagrams, a delayed
            // join re-joined a channel its client had left).
            return Err(Denied::new(
                ErrorCode::Invalid,
                "stale join: a later leave of this channel was received",
            ));
        }
        let user = conn.user.clone();
        if !self.policy.may_join(&user, &channel) && !sabotaged!(self, ServerIgnoresJoinPolicy) {
            return Err(Denied::new(
                ErrorCode::Forbidden,
                format!("may not join {channel}"),
            ));
        }
        let membership = conn.channels.get(&channel).copied();
        if membership.is_none() && conn.channels.len() >= self.config.max_channels_per_conn {
            return Err(Denied::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} channels per connection",
                    self.config.max_channels_per_conn
                ),
            ));
        }
        self.check_capacity(w.conn, 1)?;
        self.take_token(w.conn, Kind::Join)?;
        let step = match (epoch, since) {
            (_, None) => JoinStep::Head,
            (Some(epoch), Some(since)) => JoinStep::Since { epoch, since },
            (None, Some(_)) => JoinStep::Latest,
        };
        let attempt = self.new_attempt();
        if let Some(c) = self.conns.get_mut(&w.conn) {
            c.awaiting += 1;
            match membership {
                None => {
                    c.channels
                        .insert(channel.clone(), Membership::Joining(attempt));
                    self.enter_channel(w.conn, &user, &channel);
                }
                // A newer attempt owns the rollback of a join still reading.
                Some(Membership::Joining(_)) => {
                    c.channels
                        .insert(channel.clone(), Membership::Joining(attempt));
                }
                // Idempotent re-join: full answer, no second presence:join.
                Some(Membership::Joined) => {}
            }
        }
        self.issue_join_step(w, channel, attempt, step);
        Ok(())
    }

    /// Issues one step of the join attempt `attempt` (a store read, in its
    /// user's turn).
    pub(crate) fn issue_join_step(
        &mut self,
        waiter: Waiter,
        channel: ChannelId,
        attempt: JoinAttempt,
        step: JoinStep,
    ) {
        let max = self.config.join_events_max;
        let max_bytes = self.config.reply_bytes_max;
        let cmd = match step {
            JoinStep::Head => StoreCommand::Head {
                channel: channel.clone(),
            },
            JoinStep::Since { since, .. } => StoreCommand::Read {
                channel: channel.clone(),
                from: ReadFrom::After(since),
                limit: max,
                max_bytes,
            },
            JoinStep::Latest => StoreCommand::Read {
                channel: channel.clone(),
                from: ReadFrom::Latest,
                limit: max,
                max_bytes,
            },
        };
        self.issue_read(
            waiter.conn,
            cmd,
            PendingOp::Join {
                waiter,
                channel,
                attempt,
                step,
            },
        );
    }
}
