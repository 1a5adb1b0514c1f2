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

mod decode;
mod link;
mod liveness;
mod scripts;

use self::decode::*;
use self::link::*;
use self::liveness::*;
use self::scripts::*;
use crate::secret::TokenHash;
use crate::{
    Actor, Amend, AttemptLimits, Bus, BusItem, Claim, Credential, EVERY_CLIENT, Error, History,
    Joined, Limit, Live, MAX_TICKETS_PER_CLIENT, MAX_TICKETS_PER_ROOM, Member, NewMessage, Posted,
    Rate, Result, Room, RoomChange, RoomView, Stale, StoreConfig, Ticket, Via,
};
use fred::prelude::{
    Builder, Client, ClientLike, ClusterInterface, Config, EventInterface, FromValue,
    PubsubInterface, ReconnectPolicy, Value,
};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, ConnectHandle, CustomCommand, RespVersion};
use protocol::frames::{
    ChatEvent, MessageFrame, RelayFrame, RoomClosedFrame, ServerFrame, SystemFrame,
};
use protocol::rest::Sealing;
use protocol::{CloseReason, ErrorCode, Millis, Role, now_ms, rfc3339, text};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A command that gets no answer within this fails (REST answers 503 promptly).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long fred waits on a connection's handshake and on `CLUSTER SLOTS`. While fred learns a
/// Cluster's layout again (after any of its connections is cut, or a slot moves), every command
/// of the client waits; if the node it asks is frozen (accepts connections, answers nothing)
/// each such step waits this out, so it is short: a healthy Redis answers these in a
/// millisecond. With the command timeout here, one frozen shard held every room up for 2 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
/// Pub/sub messages buffered for the dispatcher before it counts as lagging (then: resync).
const PUBSUB_BUFFER: usize = 1 << 16;

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
    /// One subscribe or unsubscribe call in flight per connection (see `RedisStore::lane`).
    lanes: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    scripts: Arc<Scripts>,
    config: Arc<StoreConfig>,
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::Unavailable(err.to_string())
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
        let client_task = client.init().await.map_err(unavailable)?;
        let background_task = background.init().await.map_err(unavailable)?;
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
        tokio::spawn(keep_running(background.clone(), background_task, None));
        let resync = (subscribed.clone(), tx.clone());
        tokio::spawn(keep_running(client.clone(), client_task, Some(resync)));
        tokio::spawn(resync_on_reconnect(client.clone(), subscribed.clone(), tx));
        Ok((
            RedisStore {
                client,
                background,
                subscribed,
                health,
                clustered,
                lanes: Arc::default(),
                scripts,
                config: Arc::new(config),
            },
            bus,
        ))
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
        let args = HoldArgs {
            now: self.now(),
            entry: entry.clone(),
            expires_at: room.expires_at,
            most: self.config.max_rooms_per_client,
        }
        .argv();
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
        let args = AdmitArgs {
            room_id: room.id.clone(),
            expires_at: room.expires_at,
            most: self.config.max_rooms,
        }
        .argv();
        let admitted = self
            .run(&self.scripts.admit, vec![SCHEDULE.into()], args)
            .await?;
        if admitted.as_u64() != Some(1) {
            return Err(Error::Refused(ErrorCode::Unavailable));
        }
        let id = room.id.clone();
        let created = self.write_room(room, hold).await;
        if created.is_err() {
            let args = RescheduleArgs {
                room_id: id,
                lease: 0,
                next: "gone".into(),
            }
            .argv();
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
        field("owner_id", room.owner_member_id.clone());
        field("owner_grace", room.owner_grace_ms.to_string());
        if room.sealing.encrypted {
            field("encrypted", "1".into());
        }
        if let Some(name) = &room.sealing.name_ciphertext {
            field("name_ciphertext", name.clone());
        }
        if let Some(check) = &room.sealing.key_check {
            field("key_check", check.clone());
        }
        field("seq", "0".into());
        if let Some(hold) = hold {
            field("hold", hold);
        }
        self.room_op_reply(&self.scripts.create, &room.id, self.now(), args)
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
                AuthenticateArgs {
                    token: token.to_hex(),
                }
                .argv(),
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
        let args = TicketArgs {
            hash: hash.to_hex(),
            value,
            most_in_room: MAX_TICKETS_PER_ROOM,
            most_per_client: MAX_TICKETS_PER_CLIENT,
        }
        .argv();
        self.room_op(&self.scripts.ticket, room_id, self.now(), args)
            .await?;
        Ok(())
    }

    pub async fn claim_membership(&self, room_id: &str, claim: Claim) -> Result<Joined> {
        let (via, value, fold) = match claim.via {
            Via::Ticket(hash) => ("ticket", hash.to_hex(), String::new()),
            Via::Name(name) => ("name", name.clone(), text::fold(&name)),
        };
        let args = ClaimArgs {
            via,
            value,
            fold,
            member_id: claim.member_id,
            resume: claim.resume.to_hex(),
            session: claim.session,
            live_ms: self.config.live_ms(),
            joins_per_second: self.config.room_joins.per_second,
            joins_burst: self.config.room_joins.burst,
            client: claim.client,
        }
        .argv();
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
        by: &'static str,
        session: u64,
    ) -> Result<Joined> {
        let args = ResumeArgs {
            hash: hash.to_hex(),
            session,
            live_ms: self.config.live_ms(),
            by,
        }
        .argv();
        let now = self.schedule_deadline_of_a_new_connection(room_id).await?;
        let reply = self
            .room_op(&self.scripts.resume, room_id, now, args)
            .await?;
        joined(reply)
    }

    pub async fn release_member(&self, room_id: &str, member_id: &str) -> Result<()> {
        let now = self.now();
        let args = ReleaseArgs {
            member_id: member_id.to_owned(),
            owner_left_frame: closed_frame(room_id, CloseReason::Closed, now)?,
        }
        .argv();
        let reply = self
            .room_op(&self.scripts.release, room_id, now, args)
            .await?;
        self.give_back(&self.client, reply.into_iter().next()).await
    }

    pub async fn append_message(
        &self,
        room_id: &str,
        author: &Member,
        draft: NewMessage,
        rate: Rate,
    ) -> Result<Posted> {
        let now = self.now();
        let reply_to = draft.reply_to;
        let mut frame = author.message(room_id, 0, draft, now);
        let client_id = json_spelling(frame.client_id.as_deref())?;
        let event = ChatEvent::Message(frame.clone());
        let args = self.append_args(room_id, now, &author.id, rate, &event, client_id)?;
        let args = Appended {
            reply_to: reply_to.map(|id| id.to_string()).unwrap_or_default(),
            ..Appended::default()
        }
        .after(args);
        let reply = self
            .run(&self.scripts.append, append_keys(room_id), args)
            .await?;
        if let Some(kept) = retried(&reply) {
            let frame = serde_json::from_str::<MessageFrame>(&kept).map_err(unavailable)?;
            return Ok(Posted { frame, new: false });
        }
        frame.id = room_reply(reply)?
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(malformed)?;
        Ok(Posted { frame, new: true })
    }

    /// Reads the kept message, decides the change in Rust (as the memory store does), and has
    /// append.lua apply it only if the message is still what was read; another change that
    /// came between makes it read and decide again.
    pub async fn amend_message(
        &self,
        room_id: &str,
        by: &Member,
        target: u64,
        amend: Amend,
        rate: Rate,
        edit_window_ms: Millis,
    ) -> Result<ChatEvent> {
        let reach = amend.reach(self.config.history_limit);
        for _ in 0..AMEND_ATTEMPTS {
            let after = target.saturating_sub(1);
            let (last_id, first_kept, read) = self.read_history(room_id, after, reach).await?;
            Amend::locate(target, last_id, first_kept)?;
            if read.is_empty() {
                return Err(Error::Refused(ErrorCode::NotFound));
            }
            let kept = read
                .iter()
                .map(|json| serde_json::from_str::<ChatEvent>(json).map_err(unavailable))
                .collect::<Result<Vec<_>>>()?;
            let now = self.now();
            let amended = amend.clone().apply(&kept, by, now, edit_window_ms)?;
            let mut event = amended.event;
            let args = self.append_args(room_id, now, &by.id, rate, &event, String::new())?;
            let rewrites = amended
                .rewritten
                .into_iter()
                .map(|(at, new)| {
                    let json = serde_json::to_string(&new).map_err(unavailable)?;
                    Ok((new.id(), read[at].clone(), json))
                })
                .collect::<Result<Vec<_>>>()?;
            let args = Appended {
                reply_to: String::new(),
                owner_only: if amended.owner_only { "1" } else { "" },
                rewrites,
            }
            .after(args);
            let reply = self
                .run(&self.scripts.append, append_keys(room_id), args)
                .await?;
            if changed(&reply) {
                continue;
            }
            let id = room_reply(reply)?.first().and_then(Value::as_u64);
            event.set_id(id.ok_or_else(malformed)?);
            return Ok(event);
        }
        Err(Error::Unavailable(
            "a message kept changing under an amendment".into(),
        ))
    }

    /// append.lua's first twelve arguments for `event` by `member_id` (its id left out: the
    /// script puts the one it assigns between the two halves of its JSON).
    fn append_args(
        &self,
        room_id: &str,
        now: Millis,
        member_id: &str,
        rate: Rate,
        event: &ChatEvent,
        client_id: String,
    ) -> Result<Vec<String>> {
        let json = serde_json::to_string(event).map_err(unavailable)?;
        // Every event's JSON starts with its type, then its id.
        let at = json.find(r#","id":"#).ok_or_else(malformed)? + r#","id":"#.len();
        let (before_id, rest) = json.split_at(at);
        let after_id = rest.strip_prefix('0').ok_or_else(malformed)?;
        Ok(AppendArgs {
            room_id: room_id.to_owned(),
            now,
            member_id: member_id.to_owned(),
            per_second: rate.per_second,
            burst: rate.burst,
            history_limit: self.config.history_limit,
            before_id: before_id.to_owned(),
            after_id: after_id.to_owned(),
            history_max_bytes: self.config.history_max_bytes,
            room_per_second: self.config.room_messages.per_second,
            room_burst: self.config.room_messages.burst,
            client_id,
        }
        .argv())
    }

    /// history.lua's answer as kept: the room's last id, the first id kept, and the JSON of the
    /// events after `after` (at most `limit`).
    async fn read_history(
        &self,
        room_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(u64, u64, Vec<String>)> {
        let args = HistoryArgs {
            kept: self.config.history_limit,
            after,
            limit: limit.min(self.config.history_limit),
        }
        .argv();
        let reply = self
            .room_op(&self.scripts.history, room_id, self.now(), args)
            .await?;
        let mut reply = reply.into_iter();
        let mut number = || reply.next().and_then(|v| v.as_u64()).ok_or_else(malformed);
        let (last_id, first_kept) = (number()?, number()?);
        let events = reply
            .next()
            .ok_or_else(malformed)?
            .into_array()
            .into_iter()
            .map(|v| v.as_string().ok_or_else(malformed))
            .collect::<Result<Vec<_>>>()?;
        Ok((last_id, first_kept, events))
    }

    pub async fn history_after(&self, room_id: &str, after: u64, limit: usize) -> Result<History> {
        let (last_id, first_kept, events) = self.read_history(room_id, after, limit).await?;
        let events = events
            .iter()
            .map(|json| serde_json::from_str::<ChatEvent>(json).map_err(unavailable))
            .collect::<Result<Vec<_>>>()?;
        Ok(History::read(after, events, last_id, Some(first_kept)))
    }

    pub async fn relay(&self, room_id: &str, frame: &RelayFrame) -> Result<()> {
        let json = serde_json::to_string(frame).map_err(unavailable)?;
        let args = RelayArgs {
            author: frame.author().to_owned(),
            frame: json,
        }
        .argv();
        self.room_op(&self.scripts.relay, room_id, self.now(), args)
            .await?;
        Ok(())
    }

    pub async fn change_room(
        &self,
        room_id: &str,
        by: Actor<'_>,
        change: RoomChange,
    ) -> Result<RoomView> {
        let (by, actor) = match by {
            Actor::Member(id) => ("member", id.to_owned()),
            Actor::Token(hash) => ("token", hash.to_hex()),
        };
        let mut args = ChangeArgs {
            by,
            actor,
            what: "settings",
            target: String::new(),
            locked: "",
            expires_at: String::new(),
        };
        let mut moved = None;
        match change {
            RoomChange::Kick { member_id } => {
                args.what = "kick";
                args.target = member_id;
            }
            RoomChange::Handover { member_id } => {
                args.what = "handover";
                args.target = member_id;
            }
            RoomChange::Settings { locked, expires_at } => {
                args.locked = locked.map_or("", |on| if on { "1" } else { "0" });
                if let Some(at) = expires_at {
                    args.expires_at = at.to_string();
                    moved = Some(at);
                }
            }
        }
        if let Some(at) = moved {
            // An earlier end is swept in time even if the reply is lost (as before a claim).
            self.schedule_at(&self.client, [room_id], at).await?;
        }
        let now = self.now();
        let mut reply = self
            .room_op(&self.scripts.change, room_id, now, args.argv())
            .await?
            .into_iter();
        let mut parts = reply.next().ok_or_else(malformed)?.into_array().into_iter();
        let meta = parts.next().ok_or_else(malformed)?;
        let members = parts.next().ok_or_else(malformed)?;
        let view = view_from(meta, members, None)?;
        if let Some(at) = moved {
            self.rehold(reply.next(), at).await?;
        }
        Ok(view)
    }

    /// Moves the creator's hold of a room whose end moved to the room's new end, so the room
    /// counts against its creator's cap exactly as long as it lives.
    async fn rehold(&self, hold: Option<Value>, at: Millis) -> Result<()> {
        if let Some((holds, entry)) = hold
            .as_ref()
            .and_then(Value::as_str)
            .as_deref()
            .and_then(|hold| hold.split_once('\n'))
        {
            let at = at.to_string();
            self.command::<Value, _>(&self.client, "ZADD", vec![holds, "XX", &at, entry])
                .await?;
            self.command::<Value, _>(&self.client, "PEXPIREAT", vec![holds, &at, "GT"])
                .await?;
        }
        Ok(())
    }

    pub async fn take_ownership(
        &self,
        room_id: &str,
        member_id: &str,
        token: TokenHash,
    ) -> Result<bool> {
        let args = OwnerTokenArgs {
            member_id: member_id.to_owned(),
            token: token.to_hex(),
        }
        .argv();
        let reply = self
            .room_op(&self.scripts.owner_token, room_id, self.now(), args)
            .await?;
        Ok(reply.first().and_then(Value::as_u64) == Some(1))
    }

    pub async fn destroy_room(&self, room_id: &str, reason: CloseReason) -> Result<bool> {
        let now = self.now();
        let args = DestroyArgs {
            closed_frame: closed_frame(room_id, reason, now)?,
        }
        .argv();
        let mut reply = self
            .room_op_reply(&self.scripts.destroy, room_id, now, args)
            .await?
            .into_array()
            .into_iter();
        if reply.next().and_then(|v| v.as_u64()) != Some(1) {
            return Ok(false);
        }
        self.give_back(&self.client, reply.next()).await?;
        let args = RescheduleArgs {
            room_id: room_id.to_owned(),
            lease: 0,
            next: "gone".into(),
        }
        .argv();
        self.run(&self.scripts.reschedule, vec![SCHEDULE.into()], args)
            .await?;
        Ok(true)
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
        let args = ReserveAttemptArgs {
            client: client.to_owned(),
            every_client: EVERY_CLIENT,
            reserve: "reserve",
            per_client: limits.per_client,
            per_room: limits.per_room,
            window_ms: limits.window_ms,
        }
        .argv();
        let reply = self
            .room_op(&self.scripts.attempts, room_id, self.now(), args)
            .await?;
        Ok(match reply.first().and_then(Value::as_u64) {
            Some(0) => Limit::Reached(reply.get(1).and_then(Value::as_u64).unwrap_or(0)),
            _ => Limit::Within,
        })
    }

    pub async fn refund_password_attempt(&self, room_id: &str, client: &str) -> Result<()> {
        let args = RefundAttemptArgs {
            client: client.to_owned(),
            every_client: EVERY_CLIENT,
            refund: "refund",
        }
        .argv();
        self.room_op(&self.scripts.attempts, room_id, self.now(), args)
            .await?;
        Ok(())
    }
}

/// A string as a JSON string spells it, without its quotes ('' for none): what append.lua finds
/// in a kept frame.
fn json_spelling(text: Option<&str>) -> Result<String> {
    let Some(text) = text else {
        return Ok(String::new());
    };
    let quoted = serde_json::to_string(text).map_err(unavailable)?;
    Ok(quoted[1..quoted.len() - 1].to_owned())
}
