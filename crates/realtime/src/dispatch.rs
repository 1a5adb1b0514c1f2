//! The bus dispatcher: turns the store's events into the events local connections queue, in
//! order and exactly once per room.
//!
//! Pub/sub between instances is at most once, so each room remembers the last message id it
//! fanned out; a message whose id skips ahead puts the room *under repair*: its further events
//! wait in a bounded queue of their own while a task fills the gap from the room's history and
//! then hands them out in order. Other rooms flow meanwhile: one room's slow or failing repair
//! never holds up another. After the subscriptions were re-established (or the store's buffer
//! overflowed) every hosted room is subscribed again and repaired the same way, a bounded number
//! at a time; a room that cannot be subscribed or repaired within a few attempts has its
//! connections closed with 4008, and its clients resume.

use crate::conn::Event;
use crate::hub::Hub;
use bytestring::ByteString;
use protocol::frames::{BusEvent, PresenceEvent, ServerFrame, SystemFrame};
use protocol::{ErrorCode, close};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use store::{Bus, BusItem, Member};
use tokio::sync::OnceCell;
use tokio::time::sleep;

/// Events a room under repair keeps waiting; past this its connections are closed with 4008
/// (they resume from history) rather than the queue growing without bound.
const REPAIR_QUEUE: usize = 4096;

/// Repairs and resubscriptions running at once (each is one store call at a time).
pub(crate) const REPAIRS_AT_ONCE: usize = 16;

/// Attempts at one store call of a repair or a resubscription before the room's connections
/// are closed with 4008, and the delay before the first retry (doubling, at most `LAST_RETRY`):
/// about ten seconds of trying, so a blip never costs anyone a reconnect.
const ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// A room under repair: its bus events in arrival order, and whether a resync asked for its
/// history and presence to be checked once more when the current pass is done.
pub(crate) struct Repair {
    queue: VecDeque<ByteString>,
    resync: bool,
}

/// What handling one event found.
enum Handled {
    Done,
    /// A message after a gap (not delivered).
    Gap,
}

impl Hub {
    /// Hands every bus item to its room, in order, without ever waiting on the store.
    pub(crate) async fn dispatch(self, mut bus: Bus) {
        while let Some(item) = bus.recv().await {
            match item {
                BusItem::Event(room_id, json) => self.on_bus_event(&room_id, json),
                BusItem::Resync => {
                    let hub = self.clone();
                    tokio::spawn(async move { hub.resync().await });
                }
            }
        }
    }

    fn on_bus_event(&self, room_id: &Arc<str>, json: ByteString) {
        {
            let mut rooms = self.rooms();
            let Some(room) = rooms.get_mut(room_id) else {
                return;
            };
            if let Some(repair) = room.repair.as_mut() {
                if repair.queue.len() < REPAIR_QUEUE {
                    repair.queue.push_back(json);
                } else {
                    // Too far behind to catch up in order: its clients resume instead.
                    repair.queue.clear();
                    room.last_id = None;
                    close_all(room, close::FELL_BEHIND);
                }
                return;
            }
        }
        if let Handled::Gap = self.handle(room_id, &json) {
            self.start_repair(room_id, json);
        }
    }

    /// Handles one of the room's events, `json` being its frame as clients get it.
    fn handle(&self, room_id: &str, json: &ByteString) -> Handled {
        let event = match serde_json::from_str::<BusEvent>(json) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(%err, "unreadable bus event");
                return Handled::Done;
            }
        };
        let json = json.clone();
        let event = match event {
            BusEvent::Message(m) => {
                if let Some(at) = protocol::parse_rfc3339(&m.timestamp) {
                    let lag = self.inner.store.now().saturating_sub(at) as f64 / 1000.0;
                    self.inner.metrics.pubsub_lag.observe(lag);
                }
                return self.deliver_message(room_id, m.id, json);
            }
            BusEvent::MessageEdited(e) => return self.deliver_message(room_id, e.id, json),
            BusEvent::MessageDeleted(e) => return self.deliver_message(room_id, e.id, json),
            BusEvent::Reaction(e) => return self.deliver_message(room_id, e.id, json),
            BusEvent::Presence(note) => {
                let online = note.event == PresenceEvent::UserOnline;
                let reason = note.reason;
                let Some(json) = client_json(&ServerFrame::Presence(note.frame(room_id))) else {
                    return Handled::Done;
                };
                let member = note.member;
                if let Some(seen) = self
                    .rooms()
                    .get_mut(room_id)
                    .and_then(|r| r.online.as_mut())
                {
                    if online {
                        let member = Member {
                            id: member.id.clone(),
                            display_name: member.display_name,
                            role: member.role,
                            connected_at: 0,
                        };
                        seen.insert(member.id.clone(), member);
                    } else {
                        seen.remove(&member.id);
                    }
                }
                Event::Presence {
                    member_id: member.id,
                    online,
                    reason,
                    json,
                }
            }
            BusEvent::Room(note) => {
                let Some(json) = client_json(&ServerFrame::RoomUpdated(note.frame(room_id))) else {
                    return Handled::Done;
                };
                Event::Room {
                    owner_id: note.owner_id,
                    json,
                }
            }
            BusEvent::Relay(frame) => Event::Relay {
                author: frame.author().to_owned(),
                to_author: frame.to_author(),
                json,
            },
            BusEvent::System(SystemFrame::RoomClosed(c)) => Event::Closed {
                code: c.reason.close_code(),
                json,
            },
            BusEvent::System(SystemFrame::Welcome(_)) => return Handled::Done,
            BusEvent::Replaced { member_id, session } => Event::Replaced { member_id, session },
        };
        self.fan_out(room_id, Arc::new(event));
        Handled::Done
    }

    /// Fans event `id` of the conversation (a message, an edit, a deletion, a reaction) out
    /// unless the room already had it, and records it as the room's last; an event after a gap
    /// is not delivered (`Gap`).
    fn deliver_message(&self, room_id: &str, id: u64, json: ByteString) -> Handled {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(room_id) else {
            return Handled::Done;
        };
        match room.last_id {
            Some(last) if id <= last => return Handled::Done,
            Some(last) if id > last + 1 => return Handled::Gap,
            _ => {}
        }
        room.last_id = Some(id);
        self.inner.metrics.messages_out.inc();
        let event = Arc::new(Event::Message { id, json });
        for conn in room.conns.values() {
            self.deliver(conn, event.clone());
        }
        Handled::Done
    }

    /// Puts the room under repair (its events queue, `first` at their head) and starts the task
    /// that repairs it, unless one already runs.
    fn start_repair(&self, room_id: &Arc<str>, first: ByteString) {
        if self.enter_repair(room_id, Some(first), false) {
            let hub = self.clone();
            let room_id = room_id.clone();
            tokio::spawn(async move { hub.repair(&room_id, false).await });
        }
    }

    /// Puts the room under repair: its events queue from now on (`first` at their end), and
    /// `resync` asks for its history and presence to be checked once more. True if no repair
    /// task runs for it yet (the caller starts one); a running one makes the extra pass when
    /// its own is done.
    fn enter_repair(&self, room_id: &Arc<str>, first: Option<ByteString>, resync: bool) -> bool {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(room_id) else {
            return false;
        };
        match room.repair.as_mut() {
            Some(repair) => {
                repair.resync |= resync;
                repair.queue.extend(first);
                false
            }
            None => {
                room.repair = Some(Repair {
                    queue: first.into_iter().collect(),
                    resync: false,
                });
                true
            }
        }
    }

    /// Repairs the room: delivers what its history has after the last message fanned out
    /// (and, for a resync, replays its presence), then its queued events in order, going back
    /// to history whenever one skips ahead, until the queue is empty.
    async fn repair(&self, room_id: &Arc<str>, mut resync: bool) {
        loop {
            let Some(last) = self.rooms().get(room_id).map(|r| r.last_id) else {
                return;
            };
            if let Some(after) = last {
                self.fill_from_history(room_id, after).await;
            }
            if resync {
                self.replay_presence(room_id).await;
            }
            resync = loop {
                let next = {
                    let mut rooms = self.rooms();
                    let Some(room) = rooms.get_mut(room_id) else {
                        return;
                    };
                    let Some(repair) = room.repair.as_mut() else {
                        return;
                    };
                    match repair.queue.pop_front() {
                        Some(json) => json,
                        // A resync came meanwhile: one more pass.
                        None if repair.resync => {
                            repair.resync = false;
                            break true;
                        }
                        None => {
                            room.repair = None;
                            return;
                        }
                    }
                };
                if let Handled::Gap = self.handle(room_id, &next) {
                    if let Some(repair) = self
                        .rooms()
                        .get_mut(room_id)
                        .and_then(|r| r.repair.as_mut())
                    {
                        repair.queue.push_front(next);
                    }
                    break false;
                }
            };
        }
    }

    /// Delivers what the room's history has after `after`. A history that no longer reaches
    /// back that far, or a store that fails `ATTEMPTS` times, closes the room's connections
    /// with 4008 (they resume on their own) and the room starts again from its next message.
    async fn fill_from_history(&self, room_id: &str, after: u64) {
        let limit = self.inner.config.history_limit;
        let read = self
            .with_retries("repairing a room from history", || {
                self.inner.store.history_after(room_id, after, limit)
            })
            .await;
        match read {
            Ok(history) if history.complete => {
                for event in history.events {
                    match serde_json::to_string(&event) {
                        Ok(json) => {
                            self.deliver_message(room_id, event.id(), json.into());
                        }
                        Err(err) => tracing::error!(%err, "cannot serialize an event"),
                    }
                }
            }
            Err(store::Error::Refused(ErrorCode::RoomNotFound)) => {
                self.close_room(room_id, close::NOT_FOUND)
            }
            Ok(_) => self.restart_room(room_id),
            Err(err) => {
                tracing::warn!(%err, "cannot repair a room from history");
                self.restart_room(room_id);
            }
        }
    }

    /// Gives up on a room's order: its connections close with 4008 and resume from history,
    /// and the room takes its next message as it comes.
    fn restart_room(&self, room_id: &str) {
        if let Some(room) = self.rooms().get_mut(room_id) {
            room.last_id = None;
            close_all(room, close::FELL_BEHIND);
        }
    }

    /// Events may have been lost: subscribe every hosted room again, then repair each, a
    /// bounded number at a time, while every other room's events flow.
    async fn resync(&self) {
        let rooms: Vec<Arc<str>> = self.rooms().iter().map(|(id, _)| id.clone()).collect();
        tracing::info!(rooms = rooms.len(), "resynchronizing hosted rooms");
        // Under repair from now on: what arrives before a room is caught up waits in order.
        let held: Vec<(Arc<str>, bool)> = rooms
            .into_iter()
            .map(|room_id| {
                let idle = self.enter_repair(&room_id, None, true);
                (room_id, idle)
            })
            .collect();
        // Each room is repaired as soon as it is subscribed again, not after every other.
        futures_util::future::join_all(held.into_iter().map(|(room_id, idle)| {
            let hub = self.clone();
            async move { hub.resubscribe_and_repair(room_id, idle).await }
        }))
        .await;
        if let Err(err) = self.inner.store.subscriptions_restored().await {
            tracing::warn!(%err, "cannot mark subscriptions restored");
        }
    }

    /// Compares the room's latest id in the store with the last one the bus delivered here. An
    /// id the store had at the previous check (a refresh period ago) and the bus still has not
    /// delivered means the room's subscription is gone without a word: Redis Cluster moving
    /// the room's slot to another shard unsubscribes its channel, and fred drops the notice.
    /// The room is then subscribed again and repaired, as in a resync.
    pub(crate) fn check_latest(&self, room_id: &Arc<str>, latest: Option<u64>) {
        let lost = {
            let mut rooms = self.rooms();
            let Some(room) = rooms.get_mut(room_id) else {
                return;
            };
            let (Some(latest), Some(last)) = (latest, room.last_id) else {
                return;
            };
            if room.repair.is_some() || latest <= last {
                room.behind = None;
                return;
            }
            match room.behind {
                Some(seen) if last < seen => {
                    room.behind = None;
                    true
                }
                _ => {
                    room.behind = Some(latest);
                    false
                }
            }
        };
        if lost {
            // No room id: logs never name rooms (api's redact module keys them).
            tracing::warn!("a room's events stopped arriving: subscribing it again");
            if self.enter_repair(room_id, None, true) {
                let hub = self.clone();
                let room_id = room_id.clone();
                tokio::spawn(async move { hub.resubscribe_and_repair(room_id, true).await });
            }
        }
    }

    /// Subscribes a room under repair again, then (when `idle`: no repair task runs for it)
    /// repairs it as a resync does. A room that cannot be subscribed has its clients resume
    /// (maybe here: a new connection subscribes it again).
    async fn resubscribe_and_repair(self, room_id: Arc<str>, idle: bool) {
        if !self.resubscribe(&room_id).await {
            if let Some(room) = self.rooms().get_mut(&room_id) {
                room.subscribed = Arc::new(OnceCell::new());
            }
            self.restart_room(&room_id);
        }
        if idle {
            self.repair(&room_id, true).await;
        }
    }

    /// Subscribes the room again, in order with any subscription change the hub makes;
    /// false if the store keeps failing.
    async fn resubscribe(&self, room_id: &str) -> bool {
        self.with_retries("resubscribing", || async {
            let _order = self.subscription_order(room_id).lock_owned().await;
            // A room no longer hosted here (its unsubscribe came first) stays unsubscribed.
            if self.rooms().get(room_id).is_none() {
                return Ok(());
            }
            self.inner.store.subscribe(room_id).await
        })
        .await
        .is_ok()
    }

    /// Runs a store call of a repair or a resubscription, at most `REPAIRS_AT_ONCE` at a time,
    /// again while the store is unavailable, `ATTEMPTS` times in all with backoff; a refusal is
    /// final at once.
    async fn with_retries<T, F, Fut>(&self, what: &'static str, mut call: F) -> store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = store::Result<T>>,
    {
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            let permit = self.inner.repairs.acquire().await;
            let result = call().await;
            drop(permit);
            match result {
                Err(store::Error::Unavailable(err)) if attempt < ATTEMPTS => {
                    tracing::warn!(%err, attempt, "{what} failed; retrying");
                    sleep(wait).await;
                    wait = (wait * 2).min(LAST_RETRY);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Handles, as if they came from the bus, the presence events the room's local clients
    /// missed: `user_online` for whoever the store lists and they do not, `user_offline` for
    /// the reverse (a member's own `user_offline` closes its socket, as the lost event would
    /// have).
    async fn replay_presence(&self, room_id: &str) {
        let members = match self.inner.store.room(room_id).await {
            Ok(Some(view)) => view.members,
            // Gone: the repair has closed the room's connections.
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(%err, "cannot read a room's presence; its clients resume");
                return self.close_room(room_id, close::FELL_BEHIND);
            }
        };
        let changes: Vec<(PresenceEvent, Member)> = {
            let rooms = self.rooms();
            let Some(seen) = rooms.get(room_id).and_then(|r| r.online.as_ref()) else {
                return;
            };
            let current: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
            let gone = seen
                .values()
                .filter(|m| !current.contains(m.id.as_str()))
                .map(|m| (PresenceEvent::UserOffline, m.clone()));
            let came = members
                .iter()
                .filter(|m| !seen.contains_key(&m.id))
                .map(|m| (PresenceEvent::UserOnline, m.clone()));
            gone.chain(came).collect()
        };
        let now = self.inner.store.now();
        for (event, m) in changes {
            let frame = BusEvent::Presence(m.presence(event, None, members.len(), now));
            match serde_json::to_string(&frame) {
                Ok(json) => {
                    self.handle(room_id, &json.into());
                }
                Err(err) => tracing::error!(%err, "cannot serialize a presence frame"),
            }
        }
    }

    /// Records what a new connection's welcome gave it, unless the room already tracks it
    /// (events still in flight on the bus must not be skipped): the last message id, and who
    /// is online.
    pub(crate) fn note_welcome(&self, room_id: &str, id: u64, online: &[Member]) {
        if let Some(room) = self.rooms().get_mut(room_id) {
            room.last_id.get_or_insert(id);
            room.online
                .get_or_insert_with(|| online.iter().map(|m| (m.id.clone(), m.clone())).collect());
        }
    }

    /// Closes every local connection of the room with `code`.
    fn close_room(&self, room_id: &str, code: u16) {
        if let Some(room) = self.rooms().get(room_id) {
            close_all(room, code);
        }
    }
}

fn close_all(room: &crate::rooms::LocalRoom, code: u16) {
    for conn in room.conns.values() {
        conn.close(code);
    }
}

/// The JSON of a frame an instance makes from a bus note, once for all its clients.
fn client_json(frame: &ServerFrame) -> Option<ByteString> {
    match serde_json::to_string(frame) {
        Ok(json) => Some(json.into()),
        Err(err) => {
            tracing::error!(%err, "cannot serialize a frame made from a bus note");
            None
        }
    }
}
