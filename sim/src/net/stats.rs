//! Counters of what the network did, for run summaries and tests.

use std::fmt;

/// Totals since the network was built. Every frame handed to `send` ends up
/// counted as delivered, lost or still in flight (duplicates count as extra
/// frames sent).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct NetStats {
    /// Frames handed to `send` on an open connection.
    pub frames_sent: u64,
    /// Frames handed to an endpoint.
    pub frames_delivered: u64,
    /// Frames that never arrived, whatever the cause (sum of the `lost_*`).
    pub frames_lost: u64,
    /// Datagrams lost at random.
    pub lost_random: u64,
    /// Datagrams cut by a partition.
    pub lost_partition: u64,
    /// Frames dropped because a buffer was full.
    pub lost_buffer_full: u64,
    /// Frames in flight when their connection closed.
    pub lost_on_close: u64,
    /// Extra datagram copies put in flight.
    pub frames_duplicated: u64,
    /// Datagrams delivered after one sent later on the same direction.
    pub frames_reordered: u64,
    /// Stream frames stopped by a partition that resumed on its repair.
    pub frames_held: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed by an endpoint (client, server, replacement).
    pub connections_closed: u64,
    /// Connections cut by the network (drops and overflows).
    pub connections_dropped: u64,
    /// Stream directions that stalled half-open under a partition.
    pub stalls: u64,
    /// Close notices that could not cross a partition.
    pub notices_lost: u64,
    /// Holds applied.
    pub holds: u64,
}

impl fmt::Display for NetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frames sent {} delivered {} lost {} (random {}, partition {}, buffer {}, on close {}) \
             dup {} reordered {} held {}; conns opened {} closed {} dropped {} stalls {} notices lost {} holds {}",
            self.frames_sent,
            self.frames_delivered,
            self.frames_lost,
            self.lost_random,
            self.lost_partition,
            self.lost_buffer_full,
            self.lost_on_close,
            self.frames_duplicated,
            self.frames_reordered,
            self.frames_held,
            self.connections_opened,
            self.connections_closed,
            self.connections_dropped,
            self.stalls,
            self.notices_lost,
            self.holds,
        )
    }
}
