//! Who may join, post, edit and delete: a pluggable access policy.

use crate::ids::{ChannelId, UserId};
use crate::store::ModifyRule;

/// Decides what a verified user may do in a channel.
///
/// Join and post are decided by the server machine at request time. Edits
/// and deletes depend on the message's author, which only the store knows
/// for sure (the machine forgets on restart), so the policy returns a
/// [`ModifyRule`] that the store applies inside the append transaction.
pub trait AccessPolicy {
    /// Whether `user` may join `channel` (else `forbidden`).
    fn may_join(&self, user: &UserId, channel: &ChannelId) -> bool;
    /// Whether `user` may post to `channel` it has joined (else `forbidden`).
    fn may_post(&self, user: &UserId, channel: &ChannelId) -> bool;
    /// Who may edit or delete messages `user` asks to change in `channel`.
    fn modify_rule(&self, user: &UserId, channel: &ChannelId) -> ModifyRule;
}

/// Everyone may join and post; only authors edit or delete.
/// The permissive default for tests and trusted deployments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl AccessPolicy for Open {
    fn may_join(&self, _: &UserId, _: &ChannelId) -> bool {
        true
    }
    fn may_post(&self, _: &UserId, _: &ChannelId) -> bool {
        true
    }
    fn modify_rule(&self, _: &UserId, _: &ChannelId) -> ModifyRule {
        ModifyRule::AuthorOnly
    }
}

/// `lockstep-server`'s default: a channel named `private:<userId>` is only
/// for that user; every other valid channel is open; only authors edit or
/// delete.
///
/// ```
/// use lockstep_core::ids::{ChannelId, UserId};
/// use lockstep_core::server::{AccessPolicy, PrivateChannels};
/// let alice = UserId::new("alice").unwrap();
/// let bob = UserId::new("bob").unwrap();
/// let inbox = ChannelId::new("private:alice").unwrap();
/// assert!(PrivateChannels.may_join(&alice, &inbox));
/// assert!(!PrivateChannels.may_join(&bob, &inbox));
/// assert!(PrivateChannels.may_join(&bob, &ChannelId::new("general").unwrap()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateChannels;

impl PrivateChannels {
    fn allows(user: &UserId, channel: &ChannelId) -> bool {
        match channel.as_str().strip_prefix("private:") {
            Some(owner) => owner == user.as_str(),
            None => true,
        }
    }
}

impl AccessPolicy for PrivateChannels {
    fn may_join(&self, user: &UserId, channel: &ChannelId) -> bool {
        Self::allows(user, channel)
    }
    fn may_post(&self, user: &UserId, channel: &ChannelId) -> bool {
        Self::allows(user, channel)
    }
    fn modify_rule(&self, _: &UserId, _: &ChannelId) -> ModifyRule {
        ModifyRule::AuthorOnly
    }
}
