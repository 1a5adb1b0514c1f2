//! One connection's state shared between its session task and the fan-out: its queue, the
//! counters that must balance (events pending, bytes queued, writes in progress), each raised
//! and lowered here only, and the path that writes a message straight to the socket.

use crate::{Direct, Gone, Sent};
use protocol::frames::OfflineReason;
use protocol::{Millis, now_ms};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use store::Live;
use tokio::sync::{Notify, mpsc};

/// One local connection as the fan-out sees it.
pub(crate) struct Conn {
    pub(crate) session: u64,
    tx: mpsc::Sender<Arc<Event>>,
    /// Set once the connection holds a member.
    pub(crate) live: OnceLock<Live>,
    /// Why the connection must close now (0: it need not); set from outside its task.
    close_code: AtomicU16,
    pub(crate) wake: Notify,
    /// Last time anything arrived from the client, for the ping timeout.
    pub(crate) last_seen: AtomicU64,
    /// Bytes handed to the queue and not yet taken by the connection's task.
    queued_bytes: AtomicUsize,
    /// When the write in progress started (0: none), to spot a client that stopped reading.
    writing_since: AtomicU64,
    fast: Mutex<Fast>,
}

/// The fan-out writes a message to the socket itself, without waking the session's task,
/// while the session is in its loop (`direct` is set) and has finished every event it was
/// handed (`pending` is 0): the order of frames is then the order of the room's messages.
pub(crate) struct Fast {
    direct: Option<Arc<dyn Direct>>,
    /// Events in the queue, or taken from it and not yet handled.
    pending: usize,
    /// The last message id this client has.
    pub(crate) last_id: u64,
}

/// What became of an event offered to a connection.
pub(crate) enum Offered {
    /// Written to the socket, or queued for the session to write.
    Delivered,
    /// The rest of a message the fan-out wrote in part, queued (not a delivery of its own).
    Flush,
    /// The queue is full, in frames or in bytes: the connection fell behind.
    Full,
    /// The session is gone.
    Closed,
}

impl Conn {
    pub(crate) fn new(session: u64, tx: mpsc::Sender<Arc<Event>>) -> Conn {
        Conn {
            session,
            tx,
            live: OnceLock::new(),
            close_code: AtomicU16::new(0),
            wake: Notify::new(),
            last_seen: AtomicU64::new(now_ms()),
            queued_bytes: AtomicUsize::new(0),
            writing_since: AtomicU64::new(0),
            fast: Mutex::new(Fast {
                direct: None,
                pending: 0,
                last_id: 0,
            }),
        }
    }

    pub(crate) fn fast(&self) -> MutexGuard<'_, Fast> {
        self.fast.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session enters its loop, its client having every message up to `last_id`.
    pub(crate) fn start_direct(&self, direct: Arc<dyn Direct>, last_id: u64) {
        let mut fast = self.fast();
        fast.direct = Some(direct);
        fast.last_id = last_id;
    }

    /// The session leaves its loop: from now on only it writes (its close frame comes last).
    pub(crate) fn stop_direct(&self) {
        self.fast().direct = None;
    }

    /// Writes the client's next message straight to its socket when it can (`Fast`); anything
    /// else, a message it already has or one after a gap included, goes through the queue
    /// (at most `queue_bytes` of it), where the session applies its rules.
    pub(crate) fn offer(&self, event: Arc<Event>, queue_bytes: usize) -> Offered {
        let mut fast = self.fast();
        let mut event = event;
        if let (Event::Message { id, json }, 0, Some(direct)) =
            (&*event, fast.pending, &fast.direct)
            && *id == fast.last_id + 1
        {
            match direct.try_send(json) {
                Ok(Sent::Whole) => {
                    fast.last_id = *id;
                    return Offered::Delivered;
                }
                Ok(Sent::Partly) => {
                    fast.last_id = *id;
                    event = Arc::new(Event::Flush);
                }
                // Bytes of the session's own wait to be written (or the socket is gone, which
                // the session finds out): the queue keeps the order.
                Ok(Sent::No) | Err(Gone) => {}
            }
        }
        let size = event.size();
        if self.queued_bytes.load(Ordering::Acquire) + size > queue_bytes {
            return Offered::Full;
        }
        let flush = matches!(*event, Event::Flush);
        match self.tx.try_send(event) {
            Ok(()) => {
                fast.pending += 1;
                self.queued_bytes.fetch_add(size, Ordering::AcqRel);
                if flush {
                    Offered::Flush
                } else {
                    Offered::Delivered
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => Offered::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Closed,
        }
    }

    /// The session took `event` from its queue: its bytes no longer count.
    pub(crate) fn taken(&self, event: &Event) {
        self.queued_bytes.fetch_sub(event.size(), Ordering::AcqRel);
    }

    /// The session has handled one event from its queue.
    pub(crate) fn handled(&self) {
        let mut fast = self.fast();
        fast.pending = fast.pending.saturating_sub(1);
    }

    /// Whether a write in progress began before `since`.
    pub(crate) fn writing_before(&self, since: Millis) -> bool {
        let started = self.writing_since.load(Ordering::Acquire);
        started != 0 && started < since
    }

    /// Asks the connection's task to close with `code` (the first request wins).
    pub(crate) fn close(&self, code: u16) {
        if self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.wake.notify_one();
        }
    }

    pub(crate) fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Acquire)
    }
}

/// A write in progress, as the stall check sees it: counted in the hub's `writing` (while
/// there is none, no write can be stalled and the ticker skips the check) and timed on its
/// connection; over when dropped, even if cancelled.
pub(crate) struct Writing<'a> {
    count: &'a AtomicUsize,
    since: &'a AtomicU64,
}

impl<'a> Writing<'a> {
    pub(crate) fn start(count: &'a AtomicUsize, conn: &'a Conn) -> Writing<'a> {
        let since = &conn.writing_since;
        since.store(now_ms(), Ordering::Release);
        count.fetch_add(1, Ordering::AcqRel);
        Writing { count, since }
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.since.store(0, Ordering::Release);
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One item in a connection's queue. The JSON is shared by every local member of the room.
#[derive(Debug)]
pub(crate) enum Event {
    Message {
        id: u64,
        json: bytestring::ByteString,
    },
    Presence {
        member_id: String,
        online: bool,
        /// Why it went offline, when the store says (a replayed event does not).
        reason: Option<OfflineReason>,
        json: bytestring::ByteString,
    },
    /// The room's state changed (`room_updated`): `owner_id` is its owner now.
    Room {
        owner_id: String,
        json: bytestring::ByteString,
    },
    /// A frame the server only relays (`RelayFrame`); the author's own connections skip it
    /// unless `to_author`.
    Relay {
        author: String,
        to_author: bool,
        json: bytestring::ByteString,
    },
    Closed {
        code: u16,
        json: bytestring::ByteString,
    },
    Replaced {
        member_id: String,
        session: u64,
    },
    Ping,
    /// The fan-out wrote part of a message: the session writes the rest.
    Flush,
}

impl Event {
    /// Bytes this event takes in a queue.
    pub(crate) fn size(&self) -> usize {
        match self {
            Event::Message { json, .. }
            | Event::Presence { json, .. }
            | Event::Relay { json, .. }
            | Event::Room { json, .. }
            | Event::Closed { json, .. } => json.len(),
            Event::Replaced { .. } | Event::Ping | Event::Flush => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Conn, Writing};
    use std::future::pending;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// The ticker checks for stalled writes only while this count is above zero, so a write
    /// must leave it, whether it finishes or is cancelled (a close request wins the select).
    #[tokio::test]
    async fn a_write_counts_as_in_progress_until_it_ends_even_when_cancelled() {
        let count = AtomicUsize::new(0);
        let conn = Conn::new(1, mpsc::channel(1).0);
        let state = || (count.load(Ordering::Acquire), conn.writing_before(u64::MAX));
        {
            let _writing = Writing::start(&count, &conn);
            assert_eq!(state(), (1, true));
        }
        assert_eq!(state(), (0, false));
        let stuck = async {
            let _writing = Writing::start(&count, &conn);
            pending::<()>().await;
        };
        let _ = tokio::time::timeout(Duration::from_millis(5), stuck).await;
        assert_eq!(state(), (0, false));
    }
}
