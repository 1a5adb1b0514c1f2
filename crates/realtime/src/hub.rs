//! The hub: this instance's live connections, grouped by room (`rooms.rs`), fed by the bus
//! dispatcher (`dispatch.rs`) and kept alive by the background tickers (`tickers.rs`).

use crate::bucket::TokenBucket;
use crate::conn::{Conn, Event, Offered};
use crate::metrics::Metrics;
use crate::rooms::{Rooms, SubscriptionLocks};
use protocol::close;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Bus, Live, Rate, Store};
use tokio::sync::mpsc;

/// How the hub behaves; built by `api` from the configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_message_chars: usize,
    pub history_limit: usize,
    /// How long after sending its author may edit a message.
    pub edit_window: Duration,
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
    pub(crate) commands: crate::Commands,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// The runtime the hub's tasks run on.
    pub(crate) runtime: tokio::runtime::Handle,
    /// Rooms with at least one local connection (or waiting out their unsubscribe delay).
    pub(crate) rooms: Mutex<Rooms>,
    /// Serializes the subscribe and unsubscribe calls of each room (a lock per room, alive
    /// while anyone holds it), so a late unsubscribe cannot undo a newer subscription of the
    /// same room, and a room whose subscribing hangs (its shard frozen) holds up no other room.
    pub(crate) subscriptions: Mutex<SubscriptionLocks>,
    /// Store calls of repairs and resubscriptions running at once (`dispatch.rs`).
    pub(crate) repairs: tokio::sync::Semaphore,
    /// Members whose connection closed, for `Hub::leaver`; and how many of them it has not
    /// finished yet.
    pub(crate) leaving: mpsc::UnboundedSender<Live>,
    pub(crate) leaving_count: AtomicUsize,
    /// Connections with a write in progress (`session::guarded`): while there is none, no
    /// write can be stalled and the ticker skips the stall check.
    pub(crate) writing: AtomicUsize,
    /// Set on shutdown: no new connections, readiness fails.
    pub(crate) draining: AtomicBool,
    /// Admission token buckets, (tokens, last refill): new members' and resumes', each at the
    /// connect rate, so a flood of joins never takes the admissions members coming back need.
    pub(crate) admissions: Mutex<[TokenBucket; 2]>,
}

impl Hub {
    /// Starts the dispatcher and the tickers on the current tokio runtime.
    pub fn start(store: Store, bus: Bus, config: HubConfig, metrics: Arc<Metrics>) -> Hub {
        let (leaving, left) = mpsc::unbounded_channel();
        let hub = Hub {
            inner: Arc::new(Inner {
                commands: crate::Commands::new(store.clone(), metrics.clone(), &config),
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

    /// The actions members take; the REST handlers share them.
    pub fn commands(&self) -> &crate::Commands {
        &self.inner.commands
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
    /// Hands one event to a connection (`Conn::offer`); a connection that fell behind is
    /// closed with 4008.
    pub(crate) fn deliver(&self, conn: &Conn, event: Arc<Event>) {
        match conn.offer(event, self.inner.config.queue_bytes) {
            Offered::Delivered => {
                self.inner.metrics.deliveries.inc();
            }
            Offered::Flush | Offered::Closed => {}
            Offered::Full => self.drop_slow(conn),
        }
    }

    /// Closes a connection that fell behind with 4008 (it resumes from history).
    pub(crate) fn drop_slow(&self, conn: &Conn) {
        if conn.close_code() == 0 {
            self.inner.metrics.slow_consumers.inc();
        }
        conn.close(close::FELL_BEHIND);
    }
}
