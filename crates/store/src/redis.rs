//! The Redis backend (fred): every room operation is one Lua script, loaded once and called by
//! SHA, so each is atomic in Redis, and races across instances cannot overfill a room, duplicate
//! a name, reuse an id or redeem a ticket twice. The one exception is the liveness refresh
//! (`touch`): plain commands, safe without atomicity, and four times cheaper for Redis.
//!
//! Layout: every key of a room carries the room id as a hash tag (`eph:{<id>}:meta`, ...), so a
//! room lives in one Redis Cluster slot, its scripts are single-slot, and every key expires at
//! the room's `expires_at`. Events are published with SPUBLISH on the room's shard channel
//! `eph:{<id>}` (sharded pub/sub works on a standalone Redis 7 too: one mechanism for both).
//! The deadline schedule `eph:deadlines` is a sorted set of rooms by their next deadline; any
//! instance leases due rooms from it, so deadlines fire even when the instance that hosted the
//! member is gone. Room scripts cannot touch it (another slot), so the caller moves a room's
//! entry earlier (`ZADD LT`) before each script that sets an earlier deadline (after it, a lost
//! reply would leave a member no sweep comes for).

use crate::secret::TokenHash;
use crate::{
    AttemptLimits, Bus, BusItem, Claim, Credential, EVERY_CLIENT, Error, History, Joined, Limit,
    Live, MAX_TICKETS_PER_CLIENT, MAX_TICKETS_PER_ROOM, Member, Rate, Result, Room, RoomView,
    Stale, StoreConfig, Ticket, Via,
};
use fred::prelude::{
    Builder, Client, ClientLike, ClusterInterface, Config, EventInterface, FromValue,
    PubsubInterface, ReconnectPolicy, Value,
};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, RespVersion};
use protocol::frames::{MessageFrame, RelayFrame, RoomClosedFrame, ServerFrame, SystemFrame};
use protocol::{CloseReason, ErrorCode, Millis, Role, now_ms, rfc3339, text};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The schedule of every room's next deadline.
const SCHEDULE: &str = "eph:deadlines";
/// How long a sweeping instance holds the rooms it took from the schedule.
const LEASE_MS: Millis = 5_000;
/// Most rooms one sweep takes.
const SWEEP_BATCH: usize = 512;
/// Most members one liveness script refreshes (Lua's unpack takes a few thousand values).
const TOUCH_BATCH: usize = 500;
/// A command that gets no answer within this fails (REST answers 503 promptly).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long fred waits on a connection's handshake and on `CLUSTER SLOTS`. While fred learns a
/// Cluster's layout again (after any of its connections is cut, or a slot moves), every command
/// of the client waits; if the node it asks is frozen (accepts connections, answers nothing)
/// each such step waits this out, so it is short: a healthy Redis answers these in a
/// millisecond. With the command timeout here, one frozen shard held every room up for 2 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the link to Redis is probed, and how long a probe may take before the link counts
/// as down (then readiness fails and every operation fails at once, until a probe answers).
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pub/sub messages buffered for the dispatcher before it counts as lagging (then: resync).
const PUBSUB_BUFFER: usize = 1 << 16;

const PRELUDE: &str = include_str!("redis/prelude.lua");

/// Declares every script once: `room` ones run after the shared prelude (`prelude.lua`: a
/// room's keys and helpers), `alone` ones stand by themselves. Each becomes a field of
/// `Scripts`, and `Scripts::all` lists them for loading.
macro_rules! scripts {
    ($($name:ident: $kind:ident($file:literal),)*) => {
        /// Every script, loaded on every primary at start-up and again on NOSCRIPT.
        struct Scripts {
            $($name: Script,)*
        }

        impl Scripts {
            fn new() -> Scripts {
                Scripts {
                    $($name: $kind(include_str!(concat!("redis/", $file))),)*
                }
            }

            fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name),*]
            }
        }
    };
}

/// A room script: the prelude, then `body`.
fn room(body: &str) -> Script {
    Script::from_lua(format!("{PRELUDE}\n{body}"))
}

/// A script that stands alone (no prelude).
fn alone(body: &str) -> Script {
    Script::from_lua(body)
}

scripts! {
    create: room("create.lua"),
    room: room("room.lua"),
    authenticate: room("authenticate.lua"),
    ticket: room("ticket.lua"),
    claim: room("claim.lua"),
    resume: room("resume.lua"),
    release: room("release.lua"),
    // Each message: alone, with only the keys it touches.
    append: alone("append.lua"),
    history: room("history.lua"),
    relay: room("relay.lua"),
    destroy: room("destroy.lua"),
    sweep_room: room("sweep_room.lua"),
    attempts: room("attempts.lua"),
    rate: alone("rate.lua"),
    claim_due: alone("claim_due.lua"),
    reschedule: alone("reschedule.lua"),
    hold: alone("hold.lua"),
    admit: alone("admit.lua"),
}

#[derive(Clone)]
pub struct RedisStore {
    /// Chat commands and the room subscriptions on one RESP3 connection (per primary): a
    /// message's reply and this instance's copy of it leave Redis in one write.
    client: Client,
    /// A connection of its own for the batched background work (liveness refreshes, the
    /// deadline sweep), so that chat commands never queue behind a batch of thousands.
    background: Client,
    /// False from a reconnect of `client` until every room is subscribed again.
    subscribed: Arc<AtomicBool>,
    /// What the link probes found (see [`Health`]).
    health: Arc<Health>,
    /// A Redis Cluster (see `RedisStore::failed`).
    clustered: bool,
    scripts: Arc<Scripts>,
    config: Arc<StoreConfig>,
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::Unavailable(err.to_string())
}

impl RedisStore {
    /// Now on Redis's clock (ms).
    pub fn now(&self) -> Millis {
        now_ms().saturating_add_signed(self.health.skew.load(Ordering::Relaxed))
    }

    /// Fails at once while the link to Redis is known to be down, instead of each operation
    /// waiting for its own timeout. On a Cluster the link is down only while no primary answers
    /// (one shard's trouble must not fail the rooms of the others).
    fn check(&self) -> Result<()> {
        if self.health.up.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::Unavailable("Redis is unreachable".into()))
        }
    }

    /// A failed command: a timeout or a broken connection means the link is down until the
    /// next probe answers (on a Cluster, one command says nothing about the other shards); a
    /// refusal by Redis (OOM, a script error) says nothing about it.
    fn failed(&self, err: fred::error::Error) -> Error {
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

    async fn run_on(
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
    async fn command<R, T>(&self, client: &Client, name: &'static str, args: Vec<T>) -> Result<R>
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
}

/// Probes the link every [`PROBE_INTERVAL`] (see [`probe`]).
async fn watch_link(client: Client, background: Client, health: Arc<Health>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let (any, all) = probe(&background, &health.skew).await;
        let connected = client.is_connected();
        health.up.store(connected && any, Ordering::Release);
        health.ready.store(connected && all, Ordering::Release);
    }
}

/// What a refresh found (`RedisStore::touch_all`).
struct Touched<'a> {
    stale: Vec<(usize, Stale)>,
    latest: Vec<(&'a str, Option<u64>)>,
}

/// What the link probes found.
struct Health {
    /// False while Redis is known to be unreachable: disconnected, or no primary answering a
    /// probe (then every operation fails at once).
    up: AtomicBool,
    /// Every primary answered the last probe (readiness).
    ready: AtomicBool,
    /// Redis's clock minus this machine's (ms), measured by every probe: every deadline and
    /// every `now` a script gets is on Redis's clock, which also expires the keys, so an
    /// instance whose clock is off neither ends rooms early nor sweeps live members.
    skew: AtomicI64,
}

/// Asks every primary its `TIME` (on the background connection, so chat commands never queue
/// behind it) within [`PROBE_TIMEOUT`], and sets `skew` from the first answer. Returns whether
/// any answered and whether all did.
async fn probe(background: &Client, skew: &AtomicI64) -> (bool, bool) {
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

/// The room's keys, in the order the scripts' prelude names them.
fn room_keys(room_id: &str) -> Vec<String> {
    keys_of(
        room_id,
        &[
            "meta",
            "members",
            "state",
            "names",
            "resume",
            "alive",
            "history",
            "rate",
            "tickets",
            "attempts",
            "ticket_expiry",
        ],
    )
}

/// A room script's `{'ok', ...}` as the values after 'ok', or its `{'refused', code}`.
fn room_reply(reply: Value) -> Result<Vec<Value>> {
    let mut reply = reply.into_array().into_iter();
    match reply.next().and_then(|v| v.as_string()).as_deref() {
        Some("ok") => Ok(reply.collect()),
        Some("refused") => {
            let code = reply.next().and_then(|v| v.as_string()).unwrap_or_default();
            let code = serde_json::from_value(serde_json::Value::String(code))
                .map_err(|_| Error::Unavailable("unknown refusal from a script".into()))?;
            Err(Error::Refused(code))
        }
        _ => Err(Error::Unavailable("unexpected script reply".into())),
    }
}

fn keys_of(room_id: &str, parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| key(room_id, part)).collect()
}

/// One of a room's keys, e.g. `eph:{<id>}:meta`.
fn key(room_id: &str, part: &str) -> String {
    format!("eph:{{{room_id}}}:{part}")
}

/// A ticket as kept in Redis: its grant and the folded name the claim checks.
#[derive(Serialize, Deserialize)]
struct Grant {
    display_name: String,
    fold: String,
    role: Role,
    /// A resume ticket's resume token hash (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<String>,
}

/// A member as kept in the room's `members` hash (written by the scripts with cjson).
#[derive(Deserialize)]
struct MemberRecord {
    id: String,
    display_name: String,
    role: Role,
    connected_at: f64,
}

impl RedisStore {
    /// Connects (a `redis://`, `rediss://` or `redis-cluster://` URL), loads the scripts and
    /// starts forwarding subscribed events to the returned bus.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<(RedisStore, Bus)> {
        let redis_config = Config::from_url(url).map_err(unavailable)?;
        let mut builder = Builder::from_config(redis_config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = HANDSHAKE_TIMEOUT;
                // A script whose reply was lost must not run twice (a message would repeat).
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let background = builder.build().map_err(unavailable)?;
        // Only the subscribed client needs deep event channels (their slots are allocated up
        // front), and RESP3, which lets a subscribed connection run commands too.
        builder
            .with_config(|c| c.version = RespVersion::RESP3)
            .with_performance_config(|p| p.broadcast_channel_capacity = PUBSUB_BUFFER);
        let client = builder.build().map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        background.init().await.map_err(unavailable)?;
        let scripts = Arc::new(Scripts::new());
        for script in scripts.all() {
            script.load(&client).await.map_err(unavailable)?;
        }
        let (tx, bus) = mpsc::channel(crate::BUS_CAPACITY);
        let clustered = client.is_clustered();
        let subscribed = Arc::new(AtomicBool::new(true));
        let health = Arc::new(Health {
            up: AtomicBool::new(true),
            ready: AtomicBool::new(true),
            skew: AtomicI64::new(0),
        });
        if !probe(&background, &health.skew).await.0 {
            return Err(Error::Unavailable("Redis does not answer TIME".into()));
        }
        tokio::spawn(watch_link(
            client.clone(),
            background.clone(),
            health.clone(),
        ));
        tokio::spawn(forward_events(client.message_rx(), tx.clone()));
        tokio::spawn(resync_on_reconnect(client.clone(), subscribed.clone(), tx));
        Ok((
            RedisStore {
                client,
                background,
                subscribed,
                health,
                clustered,
                scripts,
                config: Arc::new(config),
            },
            bus,
        ))
    }

    async fn run(&self, script: &Script, keys: Vec<String>, args: Vec<String>) -> Result<Value> {
        self.run_on(&self.client, script, keys, args).await
    }

    /// Runs a room script (with the prelude's keys and first arguments) whose reply is
    /// `{'ok', ...}` or `{'refused', code}`.
    async fn room_op(
        &self,
        script: &Script,
        room_id: &str,
        now: Millis,
        args: Vec<String>,
    ) -> Result<Vec<Value>> {
        let mut all = vec![room_id.to_owned(), now.to_string(), rfc3339(now)];
        all.extend(args);
        room_reply(self.run(script, room_keys(room_id), all).await?)
    }

    /// Moves each room's schedule entry to `at` if that is earlier (`ZADD XX LT`). Every room
    /// has an entry from its creation until it is gone, so a room that is gone gets none back
    /// (`XX`); a late entry just finds nothing due.
    async fn schedule_at<'a>(
        &self,
        client: &Client,
        rooms: impl IntoIterator<Item = &'a str>,
        at: Millis,
    ) -> Result<()> {
        let at = at.to_string();
        let mut args = vec![SCHEDULE, "XX", "LT"];
        for room_id in rooms {
            args.extend([at.as_str(), room_id]);
        }
        self.command::<Value, _>(client, "ZADD", args).await?;
        Ok(())
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

    /// Creates a room within the caps: rooms held by its creator (when given), then rooms in
    /// all. A refused or failed creation gives its hold back.
    pub async fn create_room(&self, room: Room, creator: Option<&str>) -> Result<()> {
        let hold = match creator {
            Some(client) => Some(self.hold(client, &room).await?),
            None => None,
        };
        let hold_field = hold
            .as_ref()
            .map(|(holds, entry)| format!("{holds}\n{entry}"));
        let created = self.admit_and_create(room, hold_field).await;
        if created.is_err()
            && let Some((holds, entry)) = hold
        {
            // Best effort: a hold left behind ends at the room's expiry (its score).
            let _ = self
                .command::<Value, _>(&self.client, "ZREM", vec![holds, entry])
                .await;
        }
        created
    }

    /// Holds a place for the room among its creator's, within `max_rooms_per_client`; returns
    /// the holds' key and this hold's entry (random: the holds never name a room). The room
    /// gives it back when it ends ([`RedisStore::give_back`]), or at its expiry.
    async fn hold(&self, client: &str, room: &Room) -> Result<(String, String)> {
        let holds = format!("eph:held:{client}");
        let entry = crate::secret::new_id();
        let args = vec![
            self.now().to_string(),
            entry.clone(),
            room.expires_at.to_string(),
            self.config.max_rooms_per_client.to_string(),
        ];
        let held = self
            .run(&self.scripts.hold, vec![holds.clone()], args)
            .await?;
        if held.as_u64() == Some(1) {
            Ok((holds, entry))
        } else {
            Err(Error::Refused(ErrorCode::RateLimited))
        }
    }

    /// Gives back the creator's hold of a room that ended: `hold` is what a script that
    /// destroyed it returned (empty for none).
    async fn give_back(&self, client: &Client, hold: Option<Value>) -> Result<()> {
        if let Some((holds, entry)) = hold
            .and_then(|v| v.as_string())
            .as_deref()
            .and_then(|hold| hold.split_once('\n'))
        {
            self.command::<Value, _>(client, "ZREM", vec![holds, entry])
                .await?;
        }
        Ok(())
    }

    /// Enters the room in the schedule within `max_rooms`, then creates it.
    async fn admit_and_create(&self, room: Room, hold: Option<String>) -> Result<()> {
        let args = vec![
            room.id.clone(),
            room.expires_at.to_string(),
            self.config.max_rooms.to_string(),
        ];
        let admitted = self
            .run(&self.scripts.admit, vec![SCHEDULE.into()], args)
            .await?;
        if admitted.as_u64() != Some(1) {
            return Err(Error::Refused(ErrorCode::Unavailable));
        }
        let id = room.id.clone();
        let created = self.write_room(room, hold).await;
        if created.is_err() {
            let args = vec![id, "0".into(), "gone".into()];
            let _ = self
                .run(&self.scripts.reschedule, vec![SCHEDULE.into()], args)
                .await;
        }
        created
    }

    /// create.lua; `hold` (the creator's holds key and entry) is kept in the meta, so that
    /// destroying the room gives the hold back at once.
    async fn write_room(&self, room: Room, hold: Option<String>) -> Result<()> {
        let mut args = vec![room.expires_at.to_string()];
        let mut field = |name: &str, value: String| {
            args.push(name.to_owned());
            args.push(value);
        };
        field("id", room.id.clone());
        if let Some(name) = &room.name {
            field("name", name.clone());
        }
        field("owner_name", room.owner_name.clone());
        field("owner_fold", text::fold(&room.owner_name));
        if let Some(hash) = &room.password_hash {
            field("password_hash", hash.clone());
        }
        field("owner_token", room.owner_token.to_hex());
        field("created_at", room.created_at.to_string());
        field("expires_at", room.expires_at.to_string());
        field("max_users", room.max_users.to_string());
        field(
            "destroy_on_owner_offline",
            flag(room.destroy_on_owner_offline),
        );
        field("members_can_destroy", flag(room.members_can_destroy));
        field("seq", "0".into());
        if let Some(hold) = hold {
            field("hold", hold);
        }
        let mut all = vec![room.id.clone(), self.now().to_string(), String::new()];
        all.extend(args);
        self.run(&self.scripts.create, room_keys(&room.id), all)
            .await?;
        Ok(())
    }

    pub async fn room(&self, room_id: &str) -> Result<Option<RoomView>> {
        match self
            .room_op(&self.scripts.room, room_id, self.now(), vec![])
            .await
        {
            Ok(reply) => {
                let mut reply = reply.into_iter();
                let view = reply.next().ok_or_else(malformed)?;
                let seq = reply.next().ok_or_else(malformed)?;
                Ok(Some(parse_view(view, &seq)?))
            }
            Err(Error::Refused(ErrorCode::RoomNotFound)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn authenticate(
        &self,
        room_id: &str,
        token: &TokenHash,
    ) -> Result<Option<Credential>> {
        let reply = self
            .room_op(
                &self.scripts.authenticate,
                room_id,
                self.now(),
                vec![token.to_hex()],
            )
            .await?;
        let mut reply = reply.into_iter();
        let owner = reply
            .next()
            .and_then(|v| v.as_string())
            .and_then(|hex| TokenHash::from_hex(&hex));
        if owner.is_some_and(|owner| owner.matches(token)) {
            return Ok(Some(Credential::Owner));
        }
        match reply
            .next()
            .and_then(|v| v.as_string())
            .filter(|m| !m.is_empty())
        {
            Some(member) => Ok(Some(Credential::Member(parse_member(&member)?))),
            None => Ok(None),
        }
    }

    pub async fn issue_ticket(&self, room_id: &str, hash: TokenHash, ticket: Ticket) -> Result<()> {
        let grant = Grant {
            fold: text::fold(&ticket.display_name),
            display_name: ticket.display_name,
            role: ticket.role,
            resume: ticket.resume.map(|r| r.to_hex()),
        };
        let grant = serde_json::to_string(&grant).map_err(unavailable)?;
        let value = format!("{}\n{}\n{grant}", ticket.expires_at, ticket.client);
        let args = vec![
            hash.to_hex(),
            value,
            MAX_TICKETS_PER_ROOM.to_string(),
            MAX_TICKETS_PER_CLIENT.to_string(),
        ];
        self.room_op(&self.scripts.ticket, room_id, self.now(), args)
            .await?;
        Ok(())
    }

    pub async fn claim_membership(&self, room_id: &str, claim: Claim) -> Result<Joined> {
        let (via, value, fold) = match claim.via {
            Via::Ticket(hash) => ("ticket", hash.to_hex(), String::new()),
            Via::Name(name) => ("name", name.clone(), text::fold(&name)),
        };
        let args = vec![
            via.into(),
            value,
            fold,
            claim.member_id,
            claim.resume.to_hex(),
            claim.session.to_string(),
            self.config.live_ms().to_string(),
            self.config.room_joins.per_second.to_string(),
            self.config.room_joins.burst.to_string(),
        ];
        let now = self.schedule_deadline_of_a_new_connection(room_id).await?;
        let reply = self
            .room_op(&self.scripts.claim, room_id, now, args)
            .await?;
        joined(reply)
    }

    pub async fn resume_member(
        &self,
        room_id: &str,
        resume: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        self.resume(room_id, resume, "token", session).await
    }

    pub async fn resume_with_ticket(
        &self,
        room_id: &str,
        ticket: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        self.resume(room_id, ticket, "ticket", session).await
    }

    /// resume.lua, by a resume token's hash or a resume ticket's (`by`).
    async fn resume(
        &self,
        room_id: &str,
        hash: &TokenHash,
        by: &str,
        session: u64,
    ) -> Result<Joined> {
        let args = vec![
            hash.to_hex(),
            session.to_string(),
            self.config.live_ms().to_string(),
            by.to_owned(),
        ];
        let now = self.schedule_deadline_of_a_new_connection(room_id).await?;
        let reply = self
            .room_op(&self.scripts.resume, room_id, now, args)
            .await?;
        joined(reply)
    }

    /// Moves the room's schedule entry to the deadline a claim or resume made now will set,
    /// before the script runs: if the script's reply is lost, or Redis fails right after it,
    /// the member it made is still swept in time (a schedule moved after the script could be
    /// missed, leaving a ghost holding a name and a slot until the room expired). A script that
    /// did not run costs one sweep that finds nothing due. Returns the `now` it used.
    async fn schedule_deadline_of_a_new_connection(&self, room_id: &str) -> Result<Millis> {
        let now = self.now();
        self.schedule_at(&self.client, [room_id], now + self.config.live_ms())
            .await?;
        Ok(now)
    }

    pub async fn touch_members(&self, live: &[Live]) -> Result<Vec<(usize, Stale)>> {
        let deadline = self.now() + self.config.live_ms();
        Ok(self.touch_all(live, deadline, false).await?.stale)
    }

    /// [`RedisStore::touch_members`], and each room's latest message id, in one pipeline.
    pub async fn touch_members_and_latest(
        &self,
        live: &[Live],
    ) -> Result<(Vec<(usize, Stale)>, Vec<(Arc<str>, Option<u64>)>)> {
        let deadline = self.now() + self.config.live_ms();
        let touched = self.touch_all(live, deadline, true).await?;
        let latest = touched
            .latest
            .into_iter()
            .map(|(room_id, seq)| (Arc::from(room_id), seq))
            .collect();
        Ok((touched.stale, latest))
    }

    /// Starts the grace of each connection's member. Each room's schedule entry moves first,
    /// for the same reason as before a claim.
    pub async fn disconnect_members(&self, live: &[Live]) -> Result<()> {
        let deadline = self.now() + self.config.presence_grace_ms;
        let mut rooms: Vec<&str> = live.iter().map(|l| &*l.room_id).collect();
        rooms.sort_unstable();
        rooms.dedup();
        self.schedule_at(&self.background, rooms, deadline).await?;
        self.touch_all(live, deadline, false).await?;
        Ok(())
    }

    /// Moves the deadline of each member whose current connection is the given one: one
    /// `ZADD XX CH` per room (per `TOUCH_BATCH` members), pipelined on the background
    /// connection, so a refresh of thousands of rooms is a few writes each way. A member's entry
    /// in the room's `alive` set names its current session, so the ZADD moves exactly the current
    /// ones; only where it moves fewer than all does a read find out why. Plain commands, not a
    /// script: a Lua call costs Redis four times its commands, and this runs for every hosted
    /// room every refresh period. With `latest`, each room's latest message id is read in the
    /// same pipeline. Returns the positions in `live` of the stale connections, in order, and the
    /// latest ids. The first failure fails the whole (Redis
    /// is then failing for every room alike).
    async fn touch_all<'a>(
        &self,
        live: &'a [Live],
        deadline: Millis,
        latest: bool,
    ) -> Result<Touched<'a>> {
        let mut by_room: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, l) in live.iter().enumerate() {
            by_room.entry(&l.room_id).or_default().push(i);
        }
        let batches: Vec<(&'a str, Vec<usize>)> = by_room
            .iter()
            .flat_map(|(room_id, indices)| {
                indices
                    .chunks(TOUCH_BATCH)
                    .map(move |batch| (*room_id, batch.to_vec()))
            })
            .collect();
        let rooms: Vec<&'a str> = if latest {
            by_room.keys().copied().collect()
        } else {
            Vec::new()
        };
        self.check()?;
        let deadline = deadline.to_string();
        let pipeline = self.background.pipeline();
        for (room_id, batch) in &batches {
            let mut zadd: Vec<Value> = vec![key(room_id, "alive").into(), "XX".into(), "CH".into()];
            for &i in batch {
                let l = &live[i];
                zadd.push(deadline.as_str().into());
                zadd.push(format!("{}\n{}", l.member_id, l.session).into());
            }
            let cmd = CustomCommand::new_static("ZADD", ClusterHash::FirstKey, false);
            pipeline
                .custom::<(), Value>(cmd, zadd)
                .await
                .map_err(|err| self.failed(err))?;
        }
        for room_id in &rooms {
            let cmd = CustomCommand::new_static("HGET", ClusterHash::FirstKey, false);
            let args: Vec<Value> = vec![key(room_id, "meta").into(), "seq".into()];
            pipeline
                .custom::<(), Value>(cmd, args)
                .await
                .map_err(|err| self.failed(err))?;
        }
        let mut replies = pipeline.try_all::<Value>().await.into_iter();
        let mut next = || -> Result<Value> {
            replies
                .next()
                .ok_or_else(malformed)?
                .map_err(|err| self.failed(err))
        };
        let mut moved = Vec::with_capacity(batches.len());
        for _ in &batches {
            moved.push(next()?.as_u64().ok_or_else(malformed)? as usize);
        }
        let mut latest = Vec::with_capacity(rooms.len());
        for room_id in &rooms {
            let seq = next()?;
            latest.push((*room_id, seq.as_string().and_then(|s| s.parse().ok())));
        }
        let mut stale = Vec::new();
        for ((room_id, batch), moved) in batches.iter().zip(moved) {
            if moved == batch.len() {
                continue;
            }
            let members: Vec<&Live> = batch.iter().map(|&i| &live[i]).collect();
            let found = self.why_not_moved(room_id, &members).await?;
            stale.extend(
                found
                    .into_iter()
                    .filter_map(|(j, why)| Some((*batch.get(j)?, why))),
            );
        }
        stale.sort_unstable_by_key(|&(i, _)| i);
        Ok(Touched { stale, latest })
    }

    /// For a room where a refresh moved fewer deadlines than it had members: which of them are
    /// stale (the others just had this deadline already, set in the same millisecond).
    async fn why_not_moved(&self, room_id: &str, members: &[&Live]) -> Result<Vec<(usize, Stale)>> {
        let client = &self.background;
        let mut hmget = vec![key(room_id, "state")];
        hmget.extend(members.iter().map(|l| l.member_id.to_string()));
        let states: Vec<Value> = self.command(client, "HMGET", hmget).await?;
        // A missing state may mean the whole room is gone (its keys go together).
        if states.iter().any(Value::is_null)
            && self
                .command::<u64, _>(client, "EXISTS", vec![key(room_id, "meta")])
                .await?
                == 0
        {
            return Ok((0..members.len()).map(|j| (j, Stale::RoomGone)).collect());
        }
        let mut stale = Vec::new();
        for (j, (l, st)) in members.iter().zip(states).enumerate() {
            // A state is "session\nresume\nfold".
            match st.as_str() {
                None => stale.push((j, Stale::Gone)),
                Some(st) if st.starts_with(&format!("{}\n", l.session)) => {}
                Some(_) => stale.push((j, Stale::Replaced)),
            }
        }
        Ok(stale)
    }

    pub async fn release_member(&self, room_id: &str, member_id: &str) -> Result<()> {
        let now = self.now();
        let args = vec![
            member_id.to_owned(),
            closed_frame(room_id, CloseReason::Closed, now)?,
        ];
        let reply = self
            .room_op(&self.scripts.release, room_id, now, args)
            .await?;
        self.give_back(&self.client, reply.into_iter().next()).await
    }

    pub async fn append_message(
        &self,
        room_id: &str,
        author: &Member,
        text: String,
        client_id: Option<String>,
        rate: Rate,
    ) -> Result<MessageFrame> {
        let now = self.now();
        let mut frame = MessageFrame {
            id: 0,
            room_id: room_id.to_owned(),
            member_id: author.id.clone(),
            connection_id: author.id.clone(),
            display_name: author.display_name.clone(),
            text,
            client_id,
            timestamp: rfc3339(now),
        };
        // The script puts the id it assigns between the two halves.
        let json =
            serde_json::to_string(&ServerFrame::Message(frame.clone())).map_err(unavailable)?;
        let prefix = r#"{"type":"message","id":"#;
        let suffix = json
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('0'))
            .ok_or_else(malformed)?;
        let args = vec![
            room_id.to_owned(),
            now.to_string(),
            author.id.clone(),
            rate.per_second.to_string(),
            rate.burst.to_string(),
            self.config.history_limit.to_string(),
            prefix.to_owned(),
            suffix.to_owned(),
            self.config.history_max_bytes.to_string(),
            self.config.room_messages.per_second.to_string(),
            self.config.room_messages.burst.to_string(),
        ];
        let keys = keys_of(room_id, &["meta", "members", "history", "rate"]);
        let reply = room_reply(self.run(&self.scripts.append, keys, args).await?)?;
        frame.id = reply
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(malformed)?;
        Ok(frame)
    }

    pub async fn history_after(&self, room_id: &str, after: u64, limit: usize) -> Result<History> {
        let limit = limit.min(self.config.history_limit);
        let args = vec![
            self.config.history_limit.to_string(),
            after.to_string(),
            limit.to_string(),
        ];
        let reply = self
            .room_op(&self.scripts.history, room_id, self.now(), args)
            .await?;
        let mut reply = reply.into_iter();
        let mut number = || reply.next().and_then(|v| v.as_u64()).ok_or_else(malformed);
        let (last_id, first_kept) = (number()?, number()?);
        let messages = reply
            .next()
            .ok_or_else(malformed)?
            .into_array()
            .into_iter()
            .map(|v| {
                let json = v.as_string().ok_or_else(malformed)?;
                serde_json::from_str::<MessageFrame>(&json).map_err(unavailable)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(History::read(after, messages, last_id, Some(first_kept)))
    }

    pub async fn relay(&self, room_id: &str, frame: &RelayFrame) -> Result<()> {
        let json = serde_json::to_string(frame).map_err(unavailable)?;
        let args = vec![frame.author().to_owned(), json];
        self.room_op(&self.scripts.relay, room_id, self.now(), args)
            .await?;
        Ok(())
    }

    pub async fn destroy_room(&self, room_id: &str, reason: CloseReason) -> Result<bool> {
        let now = self.now();
        let mut args = vec![room_id.to_owned(), now.to_string(), String::new()];
        args.push(closed_frame(room_id, reason, now)?);
        let mut reply = self
            .run(&self.scripts.destroy, room_keys(room_id), args)
            .await?
            .into_array()
            .into_iter();
        if reply.next().and_then(|v| v.as_u64()) != Some(1) {
            return Ok(false);
        }
        self.give_back(&self.client, reply.next()).await?;
        let args = vec![room_id.to_owned(), "0".into(), "gone".into()];
        self.run(&self.scripts.reschedule, vec![SCHEDULE.into()], args)
            .await?;
        Ok(true)
    }

    pub async fn sweep(&self) -> Result<usize> {
        let now = self.now();
        let args = vec![
            now.to_string(),
            LEASE_MS.to_string(),
            SWEEP_BATCH.to_string(),
        ];
        let mut reply = self
            .run_on(
                &self.background,
                &self.scripts.claim_due,
                vec![SCHEDULE.into()],
                args,
            )
            .await?
            .into_array()
            .into_iter();
        let lease = reply
            .next()
            .and_then(|v| v.as_u64())
            .ok_or_else(malformed)?;
        let due: Vec<String> = reply
            .next()
            .map(Value::into_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        // One room at a time: Redis would run a pass sent at once back to back, and chat
        // commands would wait behind it (ANALYSIS.md, "Tried, measured, not kept").
        for room_id in &due {
            self.sweep_room(room_id, lease, now).await?;
        }
        Ok(due.len())
    }

    /// Runs one leased room's deadlines, then gives its schedule entry back.
    async fn sweep_room(&self, room_id: &str, lease: Millis, now: Millis) -> Result<()> {
        let mut args = vec![room_id.to_owned(), now.to_string(), rfc3339(now)];
        args.push(closed_frame(room_id, CloseReason::Expired, now)?);
        args.push(closed_frame(room_id, CloseReason::OwnerOffline, now)?);
        let mut reply = self
            .run_on(
                &self.background,
                &self.scripts.sweep_room,
                room_keys(room_id),
                args,
            )
            .await?
            .into_array()
            .into_iter();
        let next = match reply.next().and_then(|v| v.as_string()).as_deref() {
            Some("next") => reply
                .next()
                .and_then(|v| v.as_u64())
                .ok_or_else(malformed)?
                .to_string(),
            _ => {
                self.give_back(&self.background, reply.next()).await?;
                "gone".into()
            }
        };
        let args = vec![room_id.to_owned(), lease.to_string(), next];
        self.run_on(
            &self.background,
            &self.scripts.reschedule,
            vec![SCHEDULE.into()],
            args,
        )
        .await?;
        Ok(())
    }

    pub async fn rate_hit(&self, key: &str, limit: u32, window_ms: Millis) -> Result<Limit> {
        let key = format!("eph:rate:{key}");
        let reply = self
            .run(&self.scripts.rate, vec![key], vec![window_ms.to_string()])
            .await?
            .into_array();
        let number = |i: usize| reply.get(i).and_then(Value::as_u64);
        Ok(match (number(0), number(1)) {
            (Some(count), _) if count <= u64::from(limit) => Limit::Within,
            (_, left) => Limit::Reached(left.unwrap_or(window_ms)),
        })
    }

    pub async fn reserve_password_attempt(
        &self,
        room_id: &str,
        client: &str,
        limits: AttemptLimits,
    ) -> Result<Limit> {
        let args = vec![
            client.to_owned(),
            EVERY_CLIENT.into(),
            "reserve".into(),
            limits.per_client.to_string(),
            limits.per_room.to_string(),
            limits.window_ms.to_string(),
        ];
        let reply = self
            .room_op(&self.scripts.attempts, room_id, self.now(), args)
            .await?;
        Ok(match reply.first().and_then(Value::as_u64) {
            Some(0) => Limit::Reached(reply.get(1).and_then(Value::as_u64).unwrap_or(0)),
            _ => Limit::Within,
        })
    }

    pub async fn refund_password_attempt(&self, room_id: &str, client: &str) -> Result<()> {
        let args = vec![client.to_owned(), EVERY_CLIENT.into(), "refund".into()];
        self.room_op(&self.scripts.attempts, room_id, self.now(), args)
            .await?;
        Ok(())
    }

    pub async fn subscribe(&self, room_id: &str) -> Result<()> {
        self.check()?;
        self.client
            .ssubscribe(channel(room_id))
            .await
            .map_err(|err| self.failed(err))
    }

    /// The hub subscribed every room it hosts again after a reconnect.
    pub async fn subscriptions_restored(&self) -> Result<()> {
        self.subscribed.store(true, Ordering::Release);
        Ok(())
    }

    pub async fn unsubscribe(&self, room_id: &str) -> Result<()> {
        self.client
            .sunsubscribe(channel(room_id))
            .await
            .map_err(unavailable)
    }
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.into()
}

fn channel(room_id: &str) -> String {
    format!("eph:{{{room_id}}}")
}

fn malformed() -> Error {
    Error::Unavailable("malformed reply from Redis".into())
}

fn closed_frame(room_id: &str, reason: CloseReason, now: Millis) -> Result<String> {
    let frame = ServerFrame::System(SystemFrame::RoomClosed(RoomClosedFrame {
        reason,
        message: reason.message().to_owned(),
        room_id: room_id.to_owned(),
        timestamp: rfc3339(now),
    }));
    serde_json::to_string(&frame).map_err(unavailable)
}

fn parse_member(json: &str) -> Result<Member> {
    let record: MemberRecord = serde_json::from_str(json).map_err(unavailable)?;
    Ok(Member {
        id: record.id,
        display_name: record.display_name,
        role: record.role,
        connected_at: record.connected_at as Millis,
    })
}

/// A claim's or resume's `{member, view, deadline}` (the schedule was moved before it ran).
fn joined(reply: Vec<Value>) -> Result<Joined> {
    let mut reply = reply.into_iter();
    let member = reply
        .next()
        .and_then(|v| v.as_string())
        .ok_or_else(malformed)?;
    let member = parse_member(&member)?;
    let mut parts = reply.next().ok_or_else(malformed)?.into_array().into_iter();
    let meta = parts.next().ok_or_else(malformed)?;
    let members = parts.next().ok_or_else(malformed)?;
    let view = view_from(meta, members, None)?;
    Ok(Joined { member, view })
}

/// `{meta pairs, member records}` and the latest id into a [`RoomView`].
fn parse_view(view: Value, seq: &Value) -> Result<RoomView> {
    let mut parts = view.into_array().into_iter();
    let meta = parts.next().ok_or_else(malformed)?;
    let members = parts.next().ok_or_else(malformed)?;
    view_from(meta, members, seq.as_u64())
}

fn view_from(meta: Value, members: Value, seq: Option<u64>) -> Result<RoomView> {
    let pairs: Vec<String> = meta
        .into_array()
        .iter()
        .filter_map(Value::as_string)
        .collect();
    let meta: HashMap<&str, &str> = pairs
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let field = |name: &str| meta.get(name).copied().ok_or_else(malformed);
    let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().map_err(|_| malformed()));
    let room = Room {
        id: field("id")?.to_owned(),
        name: meta.get("name").map(|n| (*n).to_owned()),
        owner_name: field("owner_name")?.to_owned(),
        password_hash: meta.get("password_hash").map(|h| (*h).to_owned()),
        owner_token: TokenHash::from_hex(field("owner_token")?).ok_or_else(malformed)?,
        created_at: number("created_at")?,
        expires_at: number("expires_at")?,
        max_users: number("max_users")? as u32,
        destroy_on_owner_offline: field("destroy_on_owner_offline")? == "1",
        members_can_destroy: field("members_can_destroy")? == "1",
    };
    let last_id = match seq {
        Some(seq) => seq,
        None => number("seq")?,
    };
    let mut members = members
        .into_array()
        .iter()
        .map(|v| {
            v.as_string()
                .ok_or_else(malformed)
                .and_then(|json| parse_member(&json))
        })
        .collect::<Result<Vec<_>>>()?;
    members.sort_by(|a, b| (a.connected_at, &a.id).cmp(&(b.connected_at, &b.id)));
    Ok(RoomView {
        room,
        members,
        last_id,
    })
}

/// Forwards pub/sub messages to the bus; a lagging buffer means lost events: resync.
async fn forward_events(
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
async fn resync_on_reconnect(
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
