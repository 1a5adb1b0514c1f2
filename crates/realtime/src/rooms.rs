//! The rooms this instance hosts: each room's local connections and what the fan-out and the
//! repairs know of it, kept in slices for the liveness ticker, with the room's subscription
//! made once and ordered against its unsubscription.

use crate::conn::{Conn, Event};
use crate::hub::Hub;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, MutexGuard, Weak};
use store::Member;
use tokio::sync::OnceCell;
use tokio::time::sleep;

/// The rooms are kept in this many slices, and each tick visits one, so every room is visited
/// once per `SLICES` ticks (200 ms); each check period is a multiple of that.
pub(crate) const SLICES: u64 = 10;

/// The per-room locks of `Hub::subscription_order`.
#[derive(Default)]
pub(crate) struct SubscriptionLocks {
    by_room: HashMap<Arc<str>, Weak<tokio::sync::Mutex<()>>>,
    /// Entries when unheld locks were last forgotten.
    pruned_at: usize,
}

pub(crate) struct LocalRoom {
    pub(crate) conns: HashMap<u64, Arc<Conn>>,
    /// The last message id fanned out here; a larger jump is repaired from history.
    pub(crate) last_id: Option<u64>,
    /// Who the room's local clients see online: the first welcome's list, then every presence
    /// event fanned out (`connected_at` is not kept). A resync compares it with the store to
    /// replay presence that was lost.
    pub(crate) online: Option<HashMap<String, Member>>,
    /// Completed once the store delivers this room's events to us.
    pub(crate) subscribed: Arc<OnceCell<()>>,
    /// While the room is repaired from history (`dispatch.rs`): its bus events, waiting in
    /// order; the rest of the rooms flow meanwhile.
    pub(crate) repair: Option<crate::dispatch::Repair>,
    /// A latest id the store had at the last liveness check that the bus had not delivered
    /// yet (`Hub::check_latest`).
    pub(crate) behind: Option<u64>,
    /// Which ticks of the liveness ticker's cycles handle this room (from a hash of its id:
    /// spreads the work, and names the room's slice).
    pub(crate) slot: u64,
}

impl LocalRoom {
    /// A room just hosted here: no connection yet, nothing delivered, not subscribed.
    fn new(slot: u64) -> LocalRoom {
        LocalRoom {
            conns: HashMap::new(),
            last_id: None,
            online: None,
            subscribed: Arc::new(OnceCell::new()),
            repair: None,
            behind: None,
            slot,
        }
    }
}

/// The hosted rooms in `SLICES` slices by their `slot`, so that each liveness tick visits only
/// the slice that is due, not every room.
pub(crate) struct Rooms {
    slices: Vec<HashMap<Arc<str>, LocalRoom>>,
    hasher: RandomState,
}

impl Rooms {
    pub(crate) fn new() -> Rooms {
        Rooms {
            slices: (0..SLICES).map(|_| HashMap::new()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn slot(&self, room_id: &str) -> u64 {
        self.hasher.hash_one(room_id) >> 32
    }

    fn slice_mut(&mut self, room_id: &str) -> &mut HashMap<Arc<str>, LocalRoom> {
        let i = self.index(room_id);
        &mut self.slices[i]
    }

    fn index(&self, room_id: &str) -> usize {
        (self.slot(room_id) % SLICES) as usize
    }

    pub(crate) fn get(&self, room_id: &str) -> Option<&LocalRoom> {
        self.slices[self.index(room_id)].get(room_id)
    }

    pub(crate) fn get_mut(&mut self, room_id: &str) -> Option<&mut LocalRoom> {
        self.slice_mut(room_id).get_mut(room_id)
    }

    /// The room, made by `host(slot)` if it is not hosted yet.
    fn get_or_host(
        &mut self,
        room_id: &Arc<str>,
        host: impl FnOnce(u64) -> LocalRoom,
    ) -> &mut LocalRoom {
        let slot = self.slot(room_id);
        self.slice_mut(room_id)
            .entry(room_id.clone())
            .or_insert_with(|| host(slot))
    }

    fn remove(&mut self, room_id: &str) -> Option<LocalRoom> {
        self.slice_mut(room_id).remove(room_id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &LocalRoom)> {
        self.slices.iter().flatten()
    }

    /// The rooms due at liveness tick `n`: those whose `(n + slot)` is a multiple of `SLICES`.
    pub(crate) fn due(&self, n: u64) -> impl Iterator<Item = &LocalRoom> {
        self.slices[((SLICES - n % SLICES) % SLICES) as usize].values()
    }
}

impl Hub {
    /// The lock that orders the room's subscribe and unsubscribe calls: the one a call in
    /// flight holds, or a new one when none is.
    pub(crate) fn subscription_order(&self, room_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(lock) = locks.by_room.get(room_id).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.by_room.insert(room_id.into(), Arc::downgrade(&lock));
        // Forget the locks nobody holds, once the map has doubled since the last time.
        if locks.by_room.len() > locks.pruned_at * 2 {
            locks.by_room.retain(|_, lock| lock.strong_count() > 0);
            locks.pruned_at = locks.by_room.len().max(64);
        }
        lock
    }

    pub(crate) fn rooms(&self) -> MutexGuard<'_, Rooms> {
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection to its room's fan-out; returns once the room's events reach us.
    pub(crate) async fn register(&self, room_id: &Arc<str>, conn: Arc<Conn>) -> store::Result<()> {
        let subscribed = {
            let mut rooms = self.rooms();
            let room = rooms.get_or_host(room_id, |slot| {
                self.inner.metrics.rooms_hosted.inc();
                LocalRoom::new(slot)
            });
            room.conns.insert(conn.session, conn);
            room.subscribed.clone()
        };
        self.inner.metrics.connections.inc();
        subscribed
            .get_or_try_init(|| async {
                let _order = self.subscription_order(room_id).lock_owned().await;
                self.inner.store.subscribe(room_id).await
            })
            .await
            .map(|_| ())
    }

    /// Removes a connection; the room is unsubscribed after a delay if no one else is left.
    pub(crate) fn unregister(&self, room_id: &Arc<str>, session: u64) {
        let empty = {
            let mut rooms = self.rooms();
            let Some(room) = rooms.get_mut(room_id) else {
                return;
            };
            let Some(conn) = room.conns.remove(&session) else {
                return;
            };
            if conn.live.get().is_some() {
                self.inner.metrics.members.dec();
            }
            room.conns.is_empty()
        };
        self.inner.metrics.connections.dec();
        if empty {
            let hub = self.clone();
            let room_id = room_id.clone();
            tokio::spawn(async move {
                sleep(hub.inner.config.unsubscribe_delay).await;
                let _order = hub.subscription_order(&room_id).lock_owned().await;
                let idle = {
                    let mut rooms = hub.rooms();
                    let idle = rooms.get(&room_id).is_some_and(|r| r.conns.is_empty());
                    if idle {
                        rooms.remove(&room_id);
                    }
                    idle
                };
                if idle {
                    hub.inner.metrics.rooms_hosted.dec();
                    if let Err(err) = hub.inner.store.unsubscribe(&room_id).await {
                        tracing::warn!(%err, "unsubscribe failed");
                    }
                }
            });
        }
    }

    /// Hands one event to every local connection of the room without ever waiting: a
    /// connection whose queue is full is closed as a slow consumer.
    pub(crate) fn fan_out(&self, room_id: &str, event: Arc<Event>) {
        let rooms = self.rooms();
        let Some(room) = rooms.get(room_id) else {
            return;
        };
        for conn in room.conns.values() {
            self.deliver(conn, event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tick_visits_exactly_the_rooms_due_and_every_room_once_per_cycle() {
        let mut rooms = Rooms::new();
        let ids: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("room{i}"))).collect();
        for id in &ids {
            rooms.get_or_host(id, LocalRoom::new);
        }
        let mut visited = std::collections::HashSet::new();
        for n in 1..=SLICES {
            for room in rooms.due(n) {
                assert_eq!((n + room.slot) % SLICES, 0);
                assert!(visited.insert(std::ptr::from_ref(room)), "visited twice");
            }
        }
        assert_eq!(visited.len(), 1000);
        assert!(ids.iter().all(|id| rooms.get(id).is_some()));
        assert_eq!(rooms.iter().count(), 1000);
        assert!(rooms.remove("room7").is_some() && rooms.get("room7").is_none());
        assert_eq!(rooms.iter().count(), 999);
    }
}
