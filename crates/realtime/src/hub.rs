//! The hub: local connections by room, the bus dispatcher and the batched tickers.

use crate::bucket::TokenBucket;
use crate::metrics::Metrics;
use crate::{Direct, Gone, Sent};
use protocol::{Millis, close, now_ms};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use store::{Bus, Live, Member, Rate, Stale, Store};
use tokio::sync::{Notify, OnceCell, mpsc};
use tokio::time::{MissedTickBehavior, interval, sleep};

/// How often the liveness ticker runs (each run handles a slice of the rooms). Short, so the
/// pings and refreshes of idle rooms come in small bursts that busy rooms barely wait behind.
const LIVENESS_TICK: Duration = Duration::from_millis(20);

/// The rooms are kept in this many slices, and each tick visits one, so every room is visited
/// once per `SLICES` ticks (200 ms); each check period is a multiple of that.
const SLICES: u64 = 10;

/// Most members one batch of `Hub::leaver` starts the grace of. Small, so that in a mass close
/// the backlog waits in the leaver's queue rather than timing out in Redis's.
const LEAVE_BATCH: usize = 256;

/// The per-room locks of `Hub::subscription_order`.
#[derive(Default)]
struct SubscriptionLocks {
    by_room: HashMap<Arc<str>, Weak<tokio::sync::Mutex<()>>>,
    /// Entries when unheld locks were last forgotten.
    pruned_at: usize,
}

/// How long a connection found stale waits for the bus event that would close it (`close_stale`).
const STALE_CLOSE_DELAY: Duration = Duration::from_secs(1);

/// How the hub behaves; built by `api` from the configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_message_chars: usize,
    pub history_limit: usize,
    pub rate: Rate,
    /// How often live connections refresh their members' liveness (`StoreConfig::refresh_ms`).
    pub refresh_interval: Duration,
    pub ping_interval: Duration,
    /// Bytes a connection may have queued before it is dropped as a slow consumer (4008).
    pub queue_bytes: usize,
    /// A write to a client blocked this long drops it as a slow consumer (4008).
    pub stall_timeout: Duration,
    /// Most WebSockets this instance holds; more are refused with 1013.
    pub max_connections: usize,
    /// New WebSockets accepted per second (and burst); more are refused with 1013.
    pub connect_rate: u32,
    /// How long a room stays subscribed after its last local member left (avoids flapping).
    pub unsubscribe_delay: Duration,
    /// How often the store's deadline schedule is swept.
    pub sweep_interval: Duration,
}

/// The local connections of this instance; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// The runtime the hub's tasks run on.
    runtime: tokio::runtime::Handle,
    /// Rooms with at least one local connection (or waiting out their unsubscribe delay).
    rooms: Mutex<Rooms>,
    /// Serializes the subscribe and unsubscribe calls of each room (a lock per room, alive
    /// while anyone holds it), so a late unsubscribe cannot undo a newer subscription of the
    /// same room, and a room whose subscribing hangs (its shard frozen) holds up no other room.
    subscriptions: Mutex<SubscriptionLocks>,
    /// Store calls of repairs and resubscriptions running at once (`dispatch.rs`).
    pub(crate) repairs: tokio::sync::Semaphore,
    /// Members whose connection closed, for `Hub::leaver`; and how many of them it has not
    /// finished yet.
    leaving: mpsc::UnboundedSender<Live>,
    leaving_count: AtomicUsize,
    /// Connections with a write in progress (`session::guarded`): while there is none, no
    /// write can be stalled and the ticker skips the stall check.
    pub(crate) writing: AtomicUsize,
    /// Set on shutdown: no new connections, readiness fails.
    draining: AtomicBool,
    /// Admission token buckets, (tokens, last refill): new members' and resumes', each at the
    /// connect rate, so a flood of joins never takes the admissions members coming back need.
    admissions: Mutex<[TokenBucket; 2]>,
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
    slot: u64,
}

/// The hosted rooms in `SLICES` slices by their `slot`, so that each liveness tick visits only
/// the slice that is due, not every room.
pub(crate) struct Rooms {
    slices: Vec<HashMap<Arc<str>, LocalRoom>>,
    hasher: RandomState,
}

impl Rooms {
    fn new() -> Rooms {
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
    fn due(&self, n: u64) -> impl Iterator<Item = &LocalRoom> {
        self.slices[((SLICES - n % SLICES) % SLICES) as usize].values()
    }
}

/// How many liveness ticks apart the checks of one room come: for a stalled write (a tenth of
/// the stall timeout), a liveness refresh (the refresh interval) and a ping (the ping
/// interval). Each is rounded down to a multiple of `SLICES` (at least one), so every check of
/// a tick falls on the slice of the rooms it visits.
struct Cycles {
    stall: u64,
    touch: u64,
    ping: u64,
}

impl Cycles {
    fn of(config: &HubConfig) -> Cycles {
        let ticks = |period: Duration| {
            let ticks = (period.as_millis() / LIVENESS_TICK.as_millis()) as u64;
            (ticks / SLICES).max(1) * SLICES
        };
        Cycles {
            stall: ticks(config.stall_timeout / 10),
            touch: ticks(config.refresh_interval),
            ping: ticks(config.ping_interval),
        }
    }
}

/// One local connection as the fan-out sees it.
pub(crate) struct Conn {
    pub(crate) session: u64,
    pub(crate) tx: mpsc::Sender<Arc<Event>>,
    /// Set once the connection holds a member.
    pub(crate) live: OnceLock<Live>,
    /// Why the connection must close now (0: it need not); set from outside its task.
    close_code: AtomicU16,
    pub(crate) wake: Notify,
    /// Last time anything arrived from the client, for the ping timeout.
    pub(crate) last_seen: AtomicU64,
    /// Bytes handed to the queue and not yet taken by the connection's task.
    pub(crate) queued_bytes: AtomicUsize,
    /// When the write in progress started (0: none), to spot a client that stopped reading.
    pub(crate) writing_since: AtomicU64,
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

    /// The session has handled one event from its queue.
    pub(crate) fn handled(&self) {
        let mut fast = self.fast();
        fast.pending = fast.pending.saturating_sub(1);
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
        /// Offline because it left by choice (not: the grace passed, or a replayed event that
        /// does not say).
        left: bool,
        json: bytestring::ByteString,
    },
    Typing {
        member_id: String,
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
            | Event::Typing { json, .. }
            | Event::Closed { json, .. } => json.len(),
            Event::Replaced { .. } | Event::Ping | Event::Flush => 0,
        }
    }
}

/// Closes connections whose member the liveness refresh found gone (4401: join again),
/// attached elsewhere (4000) or whose room is gone (4004). The bus normally closes them first,
/// with the event's own code; this catches those whose event was lost while the subscription
/// was down. It waits `STALE_CLOSE_DELAY` so that an event racing the refresh still decides
/// the code.
fn close_stale(conns: &[Arc<Conn>], stale: Vec<(usize, Stale)>) {
    let stale: Vec<(Arc<Conn>, u16)> = stale
        .into_iter()
        .filter_map(|(i, why)| {
            let code = match why {
                Stale::Gone => close::UNAUTHORIZED,
                Stale::Replaced => close::REPLACED,
                Stale::RoomGone => close::NOT_FOUND,
            };
            Some((conns.get(i)?.clone(), code))
        })
        .collect();
    tokio::spawn(async move {
        sleep(STALE_CLOSE_DELAY).await;
        for (conn, code) in stale {
            conn.close(code);
        }
    });
}

impl Hub {
    /// Starts the dispatcher and the tickers on the current tokio runtime.
    pub fn start(store: Store, bus: Bus, config: HubConfig, metrics: Arc<Metrics>) -> Hub {
        let (leaving, left) = mpsc::unbounded_channel();
        let hub = Hub {
            inner: Arc::new(Inner {
                store,
                config,
                metrics,
                runtime: tokio::runtime::Handle::current(),
                rooms: Mutex::new(Rooms::new()),
                leaving,
                leaving_count: AtomicUsize::new(0),
                writing: AtomicUsize::new(0),
                subscriptions: Mutex::default(),
                repairs: tokio::sync::Semaphore::new(crate::dispatch::REPAIRS_AT_ONCE),
                draining: AtomicBool::new(false),
                admissions: Mutex::new([TokenBucket::new(0.0); 2]),
            }),
        };
        tokio::spawn(hub.clone().dispatch(bus));
        tokio::spawn(hub.clone().sweep_ticker());
        tokio::spawn(hub.clone().liveness_ticker());
        tokio::spawn(hub.clone().leaver(left));
        hub
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The runtime the hub's tasks run on; sessions spawned here share their thread.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        usize::try_from(self.inner.metrics.connections.get()).unwrap_or(0)
    }

    /// Whether a new connection may come in now: not draining, under the connection cap and
    /// within the connect rate (a token bucket of `connect_rate` per second; resumes have a
    /// bucket of their own).
    pub(crate) fn admit(&self, resume: bool) -> bool {
        let config = &self.inner.config;
        if self.is_draining() || self.connections() >= config.max_connections {
            return false;
        }
        let mut buckets = self
            .inner
            .admissions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rate = f64::from(config.connect_rate);
        buckets[usize::from(resume)].take(rate, rate, std::time::Instant::now())
    }

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
                LocalRoom {
                    conns: HashMap::new(),
                    last_id: None,
                    online: None,
                    subscribed: Arc::new(OnceCell::new()),
                    repair: None,
                    behind: None,
                    slot,
                }
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

    /// Writes the client's next message straight to its socket when it can (`Fast`); anything
    /// else, a message it already has or one after a gap included, goes through the queue,
    /// where the session applies its rules.
    pub(crate) fn deliver(&self, conn: &Conn, event: Arc<Event>) {
        let mut fast = conn.fast();
        let mut event = event;
        if let (Event::Message { id, json }, 0, Some(direct)) =
            (&*event, fast.pending, &fast.direct)
            && *id == fast.last_id + 1
        {
            match direct.try_send(json) {
                Ok(Sent::Whole) => {
                    fast.last_id = *id;
                    self.inner.metrics.deliveries.inc();
                    return;
                }
                Ok(Sent::Partly) => {
                    fast.last_id = *id;
                    self.inner.metrics.deliveries.inc();
                    event = Arc::new(Event::Flush);
                }
                // Bytes of the session's own wait to be written (or the socket is gone, which
                // the session finds out): the queue keeps the order.
                Ok(Sent::No) | Err(Gone) => {}
            }
        }
        let size = event.size();
        if conn.queued_bytes.load(Ordering::Acquire) + size > self.inner.config.queue_bytes {
            return self.drop_slow(conn);
        }
        let flush = matches!(*event, Event::Flush);
        match conn.tx.try_send(event) {
            Ok(()) => {
                fast.pending += 1;
                conn.queued_bytes.fetch_add(size, Ordering::AcqRel);
                if !flush {
                    self.inner.metrics.deliveries.inc();
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.drop_slow(conn),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Closes a connection that fell behind with 4008 (it resumes from history).
    fn drop_slow(&self, conn: &Conn) {
        if conn.close_code() == 0 {
            self.inner.metrics.slow_consumers.inc();
        }
        conn.close(close::FELL_BEHIND);
    }

    async fn sweep_ticker(self) {
        let mut tick = interval(self.inner.config.sweep_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.inner.store.sweep().await {
                tracing::warn!(%err, "deadline sweep failed");
            }
        }
    }

    /// Keeps connections and members alive, spread over time: every `LIVENESS_TICK` it handles
    /// one slice of the rooms (`Rooms::due`): it drops their connections whose write has been
    /// stuck for the stall timeout (checked once per tenth of it, while any write is in
    /// progress), refreshes their members' liveness once per refresh interval
    /// (closing, via `close_stale`, those whose member is gone or replaced), and pings their
    /// sockets once per ping interval (closing those that sent nothing for two); each period
    /// rounded down as `Cycles` says. Refreshes run as tasks of their own, so a slow store
    /// never delays the ticker. Only the slice's rooms are visited, and only the connections of
    /// those with a check due, so thousands of idle rooms cost a steady trickle of work instead
    /// of bursts that would delay every busy room behind them.
    async fn liveness_ticker(self) {
        let config = &self.inner.config;
        let every = Cycles::of(config);
        let ping = Arc::new(Event::Ping);
        let mut tick = interval(LIVENESS_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for n in 1u64.. {
            tick.tick().await;
            let now = now_ms();
            let stalled_since = now.saturating_sub(config.stall_timeout.as_millis() as Millis);
            let silent_since = now.saturating_sub(2 * config.ping_interval.as_millis() as Millis);
            let any_writing = self.inner.writing.load(Ordering::Acquire) > 0;
            let (mut live, mut conns) = (Vec::new(), Vec::new());
            for room in self.rooms().due(n) {
                let phase = n + room.slot;
                let stall = any_writing && phase % every.stall == 0;
                let touch = phase % every.touch == 0;
                let ping_now = phase % every.ping == 0;
                if !(stall || touch || ping_now) {
                    continue;
                }
                for conn in room.conns.values() {
                    if stall {
                        let since = conn.writing_since.load(Ordering::Acquire);
                        if since != 0 && since < stalled_since {
                            self.drop_slow(conn);
                        }
                    }
                    if ping_now {
                        if conn.last_seen.load(Ordering::Relaxed) < silent_since {
                            conn.close(close::SERVER_ERROR);
                        } else {
                            self.deliver(conn, ping.clone());
                        }
                    }
                    if touch && let Some(l) = conn.live.get() {
                        live.push(l.clone());
                        conns.push(conn.clone());
                    }
                }
            }
            if live.is_empty() {
                continue;
            }
            // Not awaited here: a slow Redis must not hold up the next slices' refreshes (nor
            // pings and stall checks) until live members outlast their grace.
            let hub = self.clone();
            tokio::spawn(async move {
                match hub.inner.store.touch_members_and_latest(&live).await {
                    Ok((stale, latest)) => {
                        if !stale.is_empty() {
                            close_stale(&conns, stale);
                        }
                        for (room_id, latest) in latest {
                            hub.check_latest(&room_id, latest);
                        }
                    }
                    Err(err) => tracing::warn!(%err, "liveness refresh failed"),
                }
            });
        }
    }

    /// A member's connection closed: its grace starts with the leaver's next batch.
    pub(crate) fn leave(&self, live: Live) {
        self.inner.leaving_count.fetch_add(1, Ordering::AcqRel);
        if self.inner.leaving.send(live).is_err() {
            self.inner.leaving_count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Starts the grace of members whose connection closed, in batches: while one batch is
    /// with the store the next gathers, so a mass disconnect costs a few round trips rather
    /// than two commands per member, and a lone one goes at once.
    async fn leaver(self, mut left: mpsc::UnboundedReceiver<Live>) {
        let mut batch = Vec::new();
        while left.recv_many(&mut batch, LEAVE_BATCH).await > 0 {
            if let Err(err) = self.inner.store.disconnect_members(&batch).await {
                tracing::warn!(%err, members = batch.len(), "could not start members' grace");
            }
            self.inner
                .leaving_count
                .fetch_sub(batch.len(), Ordering::AcqRel);
            batch.clear();
        }
    }

    /// Graceful shutdown: refuse new connections and fail readiness at once; after `delay`,
    /// close every connection with 1001 in batches (members keep their grace, so they resume
    /// elsewhere). Returns when all are gone and their graces started, or `within` has passed.
    pub async fn drain(&self, delay: Duration, within: Duration) {
        self.inner.draining.store(true, Ordering::Release);
        sleep(delay).await;
        let conns: Vec<Arc<Conn>> = self
            .rooms()
            .iter()
            .flat_map(|(_, r)| r.conns.values().cloned())
            .collect();
        for batch in conns.chunks(256) {
            for conn in batch {
                conn.close(close::GOING_AWAY);
            }
            sleep(Duration::from_millis(10)).await;
        }
        let deadline = tokio::time::Instant::now() + within;
        let busy =
            || self.connections() > 0 || self.inner.leaving_count.load(Ordering::Acquire) > 0;
        while busy() && tokio::time::Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stall: u64, refresh_ms: u64, ping: u64) -> HubConfig {
        HubConfig {
            max_message_chars: 1,
            history_limit: 1,
            rate: Rate {
                per_second: 1,
                burst: 1,
            },
            refresh_interval: Duration::from_millis(refresh_ms),
            ping_interval: Duration::from_secs(ping),
            queue_bytes: 1,
            stall_timeout: Duration::from_secs(stall),
            max_connections: 1,
            connect_rate: 1,
            unsubscribe_delay: Duration::ZERO,
            sweep_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn every_period_is_a_multiple_of_the_slice_cycle_and_never_longer_than_configured() {
        // The defaults: stall checks every 1 s, refreshes every 5 s, pings every 20 s.
        let c = Cycles::of(&config(10, 5000, 20));
        assert_eq!((c.stall, c.touch, c.ping), (50, 250, 1000));
        // A refresh every 1/3 s rounds down to one visit cycle (200 ms); none is shorter.
        let c = Cycles::of(&config(1, 333, 1));
        assert_eq!((c.stall, c.touch, c.ping), (10, 10, 50));
    }

    #[test]
    fn each_tick_visits_exactly_the_rooms_due_and_every_room_once_per_cycle() {
        let mut rooms = Rooms::new();
        let ids: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("room{i}"))).collect();
        for id in &ids {
            rooms.get_or_host(id, |slot| LocalRoom {
                conns: HashMap::new(),
                last_id: None,
                online: None,
                subscribed: Arc::new(OnceCell::new()),
                repair: None,
                behind: None,
                slot,
            });
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
