//! The link to Redis: probing it, failing fast while it is down, and the bus that forwards
//! subscribed events (and asks for a resync after a reconnect).

use super::*;

/// How often the link to Redis is probed, and how long a probe may take before the link counts
/// as down (then readiness fails and every operation fails at once, until a probe answers).
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(250);
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl RedisStore {
    /// Now on Redis's clock (ms).
    pub fn now(&self) -> Millis {
        now_ms().saturating_add_signed(self.health.skew.load(Ordering::Relaxed))
    }

    /// Fails at once while the link to Redis is known to be down, instead of each operation
    /// waiting for its own timeout. On a Cluster the link is down only while no primary answers
    /// (one shard's trouble must not fail the rooms of the others).
    pub(super) fn check(&self) -> Result<()> {
        if self.health.up.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::Unavailable("Redis is unreachable".into()))
        }
    }

    /// A failed command: a timeout or a broken connection means the link is down until the
    /// next probe answers (on a Cluster, one command says nothing about the other shards); a
    /// refusal by Redis (OOM, a script error) says nothing about it.
    pub(super) fn failed(&self, err: fred::error::Error) -> Error {
        use fred::error::ErrorKind;
        if !self.clustered
            && matches!(
                err.kind(),
                ErrorKind::Timeout | ErrorKind::IO | ErrorKind::Canceled
            )
        {
            self.health.up.store(false, Ordering::Release);
        }
        unavailable(err)
    }

    pub(super) async fn run_on(
        &self,
        client: &Client,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value> {
        self.check()?;
        script
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(|err| self.failed(err))
    }

    /// A plain command routed by its first key.
    pub(super) async fn command<R, T>(
        &self,
        client: &Client,
        name: &'static str,
        args: Vec<T>,
    ) -> Result<R>
    where
        R: FromValue,
        T: TryInto<Value> + Send,
        T::Error: Into<fred::error::Error> + Send,
    {
        self.check()?;
        let cmd = CustomCommand::new_static(name, ClusterHash::FirstKey, false);
        client
            .custom(cmd, args)
            .await
            .map_err(|err| self.failed(err))
    }

    /// Readiness, from what the instance knows: the link's last probe and the subscriptions.
    pub async fn ping(&self) -> Result<()> {
        self.check()?;
        if !self.health.ready.load(Ordering::Acquire) {
            return Err(Error::Unavailable("a Redis primary does not answer".into()));
        }
        if !self.subscribed.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "the pub/sub subscriptions are down".into(),
            ));
        }
        Ok(())
    }

    pub async fn subscribe(&self, room_id: &str) -> Result<()> {
        self.check()?;
        let channel = channel(room_id);
        let lane = self.lane(&channel);
        let _turn = lane.lock().await;
        self.client
            .ssubscribe(channel)
            .await
            .map_err(|err| self.failed(err))
    }

    /// The lane a channel's subscribe and unsubscribe calls take: one per connection that
    /// carries them, that is one per primary on a Cluster (the primary owning the channel's
    /// slot), one in all on a single Redis. fred never pipelines an `SSUBSCRIBE` (its success
    /// arrives as a push frame), and with thousands in flight at once on the connection that
    /// also carries the chat commands, sockets went unserved for over two ping intervals and
    /// were closed (1011) while 102,000 members joined (`idle-100k`: 9,000 to 25,000 of them in
    /// five runs; none with one call at a time). A lane per primary keeps a frozen shard's calls
    /// from holding up the rooms of the others.
    fn lane(&self, channel: &str) -> Arc<tokio::sync::Mutex<()>> {
        let primary = match self.clustered {
            true => self
                .client
                .cached_cluster_state()
                .and_then(|routing| {
                    let slot = fred::types::cluster::ClusterRouting::hash_key(channel.as_bytes());
                    routing.get_server(slot).map(ToString::to_string)
                })
                .unwrap_or_default(),
            false => String::new(),
        };
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.entry(primary).or_default().clone()
    }

    /// The hub subscribed every room it hosts again after a reconnect.
    pub async fn subscriptions_restored(&self) -> Result<()> {
        self.subscribed.store(true, Ordering::Release);
        Ok(())
    }

    pub async fn unsubscribe(&self, room_id: &str) -> Result<()> {
        let channel = channel(room_id);
        let lane = self.lane(&channel);
        let _turn = lane.lock().await;
        self.client.sunsubscribe(channel).await.map_err(unavailable)
    }
}

/// Probes the link every [`PROBE_INTERVAL`] (see [`probe`]).
pub(super) async fn watch_link(client: Client, background: Client, health: Arc<Health>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let (any, all) = probe(&background, &health.skew).await;
        let connected = client.is_connected();
        health.up.store(connected && any, Ordering::Release);
        health.ready.store(connected && all, Ordering::Release);
    }
}

/// What the link probes found.
pub(super) struct Health {
    /// False while Redis is known to be unreachable: disconnected, or no primary answering a
    /// probe (then every operation fails at once).
    pub(super) up: AtomicBool,
    /// Every primary answered the last probe (readiness).
    pub(super) ready: AtomicBool,
    /// Redis's clock minus this machine's (ms), measured by every probe: every deadline and
    /// every `now` a script gets is on Redis's clock, which also expires the keys, so an
    /// instance whose clock is off neither ends rooms early nor sweeps live members.
    pub(super) skew: AtomicI64,
}

/// Asks every primary its `TIME` (on the background connection, so chat commands never queue
/// behind it) within [`PROBE_TIMEOUT`], and sets `skew` from the first answer. Returns whether
/// any answered and whether all did.
pub(super) async fn probe(background: &Client, skew: &AtomicI64) -> (bool, bool) {
    let asked = now_ms();
    let time = |client: &Client, node: Option<fred::types::config::Server>| {
        let cmd = CustomCommand::new_static("TIME", ClusterHash::Random, false);
        let client = client.clone();
        async move {
            let call = async {
                match node {
                    Some(node) => {
                        client
                            .with_cluster_node(node)
                            .custom::<Vec<u64>, Value>(cmd, vec![])
                            .await
                    }
                    None => client.custom::<Vec<u64>, Value>(cmd, vec![]).await,
                }
            };
            match tokio::time::timeout(PROBE_TIMEOUT, call).await {
                Ok(Ok(time)) if time.len() == 2 => Some(time[0] * 1000 + time[1] / 1000),
                _ => None,
            }
        }
    };
    let answers: Vec<Option<u64>> = match background
        .cached_cluster_state()
        .map(|state| state.unique_primary_nodes())
    {
        Some(nodes) if background.is_clustered() && !nodes.is_empty() => {
            futures_util::future::join_all(nodes.into_iter().map(|n| time(background, Some(n))))
                .await
        }
        _ => vec![time(background, None).await],
    };
    if let Some(redis) = answers.iter().flatten().next() {
        let here = asked + now_ms().saturating_sub(asked) / 2;
        skew.store(*redis as i64 - here as i64, Ordering::Relaxed);
    }
    (
        answers.iter().any(Option::is_some),
        answers.iter().all(Option::is_some),
    )
}

/// Forwards pub/sub messages to the bus; a lagging buffer means lost events: resync.
pub(super) async fn forward_events(
    mut messages: broadcast::Receiver<fred::types::Message>,
    tx: mpsc::Sender<BusItem>,
) {
    loop {
        let item = match messages.recv().await {
            Ok(message) => {
                let room = message
                    .channel
                    .strip_prefix("eph:{")
                    .and_then(|rest| rest.strip_suffix('}'));
                let json = message.value.as_string();
                match (room, json) {
                    (Some(room), Some(json)) => BusItem::Event(Arc::from(room), json.into()),
                    _ => continue,
                }
            }
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::warn!(lost, "pub/sub buffer overflowed");
                BusItem::Resync
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // A full bus waits here; fred's buffer then overflows, which reads as Lagged: a
        // Resync, not lost events nobody notices.
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

/// After the subscribed connection comes back, events published meanwhile are lost: readiness
/// fails and the hub resynchronizes (it subscribes every room it hosts again, repairs them from
/// history, then calls `Store::subscriptions_restored`). The hub, not fred's own bookkeeping,
/// decides what is subscribed: a command that timed out while disconnected may still be sent
/// later, so only the hub's full pass after the reconnect is trusted.
pub(super) async fn resync_on_reconnect(
    client: Client,
    subscribed: Arc<AtomicBool>,
    tx: mpsc::Sender<BusItem>,
) {
    let mut reconnects = client.reconnect_rx();
    loop {
        match reconnects.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        subscribed.store(false, Ordering::Release);
        if tx.send(BusItem::Resync).await.is_err() {
            return;
        }
    }
}

/// How long a client whose connection task ended waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// Starts a client's connection task again whenever it ends. fred ends it, for good, on some
/// errors its reconnect policy does not cover: an `ASK` redirect (a slot migrating between
/// shards) for a command with no attempt left, which `max_command_attempts = 1` makes every
/// command. A slot moving while messages flowed left an instance's client disconnected until
/// it was restarted (`faults::a_rooms_slot_moving_to_another_shard_loses_nothing`). With
/// `resync`, the client carries the subscriptions: once it is back, every hosted room is
/// subscribed again and repaired, as after any reconnect.
pub(super) async fn keep_running(
    client: Client,
    mut task: ConnectHandle,
    resync: Option<(Arc<AtomicBool>, mpsc::Sender<BusItem>)>,
) {
    loop {
        let ended = task.await;
        tracing::warn!(
            ?ended,
            "a Redis client's connection task ended: starting it again"
        );
        task = loop {
            tokio::time::sleep(RESTART_DELAY).await;
            match client.init().await {
                Ok(task) => break task,
                Err(err) => tracing::warn!(%err, "cannot start a Redis client yet"),
            }
        };
        if let Some((subscribed, tx)) = &resync {
            subscribed.store(false, Ordering::Release);
            if tx.send(BusItem::Resync).await.is_err() {
                return;
            }
        }
    }
}
