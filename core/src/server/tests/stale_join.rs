//! A join that arrives after a later leave (a reordering transport) is
//! stale and must not join again. Found by the lab: seed 1248, datagrams,
//! where a delayed join kept a user present in a channel it had left.

use insta::assert_snapshot;

use super::harness::{Harness, ch};
use crate::server::ConnId;
use crate::wire::{ClientFrame, ErrorCode, ReqId};

#[test]
fn a_join_sent_before_a_leave_but_arriving_after_it_is_refused() {
    let mut h = Harness::new();
    h.connect(1, "alice");
    h.note("the client sent join r10 then leave r11; the leave arrives first");
    h.frame(
        1,
        ClientFrame::Leave {
            req: ReqId(11),
            channel_id: ch("general"),
        },
    );
    h.frame(
        1,
        ClientFrame::Join {
            req: ReqId(10),
            channel_id: ch("general"),
            epoch: None,
            since: None,
        },
    );
    assert_eq!(h.nacked(1, ReqId(10)), ErrorCode::Invalid);
    assert!(h.server.channels_of(ConnId(1)).is_empty());
    h.note("a later join works");
    h.frame(
        1,
        ClientFrame::Join {
            req: ReqId(12),
            channel_id: ch("general"),
            epoch: None,
            since: None,
        },
    );
    assert_eq!(h.server.channels_of(ConnId(1)), vec![ch("general")]);
    assert_snapshot!(h.trace());
}
