//! The fault vocabulary, one for the lab and the turmoil harness: turmoil's
//! own verbs (partition, repair, hold, release, bounce) and the few the lab
//! adds. A scenario line, a plan line and a report all name a fault with
//! [`Fault::verb`], so the same word means the same fault in both.

use std::fmt;

/// One kind of fault injection (or its repair).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Fault {
    /// Cut a link: datagrams are lost; streams stop until the repair, or
    /// stall half-open (turmoil drops the segments: the stream stays dead).
    Partition,
    /// End a link's partitions.
    Repair,
    /// Queue a link's frames, losing nothing (in the lab a hold names its
    /// release time; turmoil releases with a step of its own).
    Hold,
    /// Deliver what a hold queued, in order.
    Release,
    /// The server process dies: its memory is lost, the store kept; it
    /// stays down until a bounce.
    Crash,
    /// The server starts again; a running one is crashed and restarted at
    /// once.
    Bounce,
    /// The network resets one connection; both ends are told.
    Drop,
    /// A link's one-way latency changes.
    Latency,
    /// Every store operation fails for a while.
    StoreFail,
    /// Store operations take this long from now on.
    StoreLatency,
    /// A client app is rebuilt from scratch, its unsent messages restored.
    AppRestart,
    /// One of several server processes dies; its clients move to another.
    ProcessCrash,
    /// One of several server processes starts again.
    ProcessRestart,
    /// A server process's hint listener disconnects for a while.
    ListenerDrop,
    /// A server process's connection to the presence arbiter stalls.
    ArbiterStall,
}

impl Fault {
    /// The fault's word in scenarios, plans and reports.
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Repair => "repair",
            Fault::Hold => "hold",
            Fault::Release => "release",
            Fault::Crash => "crash",
            Fault::Bounce => "bounce",
            Fault::Drop => "drop",
            Fault::Latency => "latency",
            Fault::StoreFail => "store fail",
            Fault::StoreLatency => "store latency",
            Fault::AppRestart => "app restart",
            Fault::ProcessCrash => "process crash",
            Fault::ProcessRestart => "process restart",
            Fault::ListenerDrop => "listener drop",
            Fault::ArbiterStall => "arbiter stall",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}
