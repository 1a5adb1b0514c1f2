//! All shared state of Ephemera, and the per-room bus that carries events between instances.
//!
//! [`Store`] exposes domain operations, never backend commands. Each operation is atomic on its
//! own (one lock on the memory backend; one Lua script, or one command, on Redis) and publishes the events it
//! causes on the room's bus channel inside that same atomic step, so every instance sees them in
//! the order the store applied them.
//!
//! - [`memory`]: the single-node backend (`cargo run` with no Redis).
//! - [`redis`]: the shared backend for any number of instances (fred; Lua scripts).
//! - [`secret`]: tokens and tickets, and the hashes that are all the store ever keeps of them.
//! - [`Bus`]: the receiving end of the room channels this instance subscribed to.
//!
//! Architecture invariant: this is the only crate that talks to Redis.

pub mod memory;
pub mod redis;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;

use bytestring::ByteString;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use protocol::frames::{
    ChatEvent, Content, MessageDeletedFrame, MessageEditedFrame, MessageFrame, NotedMember,
    OfflineReason, PresenceEvent, PresenceNote, ReactionFrame, Reactions, RelayFrame,
};
use protocol::rest::{OnlineUser, Sealing};
use protocol::{CloseReason, ErrorCode, Millis, Role};
use secret::TokenHash;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Settings the store applies on its own (the rest arrive with each call).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long a member with no live connection stays online.
    pub presence_grace_ms: Millis,
    /// Messages kept per room.
    pub history_limit: usize,
    /// Bytes of message frames (their JSON) kept per room: the newest messages that fit, and
    /// always the newest one.
    pub history_max_bytes: usize,
    /// Rooms at once, in all.
    pub max_rooms: usize,
    /// Messages a room accepts, every member together (refused beyond: `room_busy`), so a room
    /// costs its instances at most this many fan-outs.
    pub room_messages: Rate,
    /// New members a room takes (refused beyond: `room_busy`); resumes are not counted.
    pub room_joins: Rate,
    /// Rooms one client (an address, IPv6 on its prefix) holds at once.
    pub max_rooms_per_client: usize,
}

/// A refusal the client can act on, or a store that cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("refused: {}", .0.as_str())]
    Refused(ErrorCode),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// The contract's error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Refused(code) => *code,
            Error::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl StoreConfig {
    /// How often live connections must refresh their members' liveness (`touch_members`):
    /// every half grace.
    pub fn refresh_ms(&self) -> Millis {
        self.presence_grace_ms / 2
    }

    /// How far ahead a live connection puts its member's deadline: a grace and a refresh
    /// period, so a member whose instance dies before it can start the grace still stays
    /// online for the whole grace, however long ago the last refresh was.
    pub fn live_ms(&self) -> Millis {
        self.presence_grace_ms + self.refresh_ms()
    }
}

/// A room's settings and credentials: fixed at creation, but for what its owner changes
/// ([`RoomChange`]) and whether the owner is away.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub id: String,
    pub name: Option<String>,
    pub owner_name: String,
    /// argon2id PHC string, when the room has a password.
    pub password_hash: Option<String>,
    pub owner_token: TokenHash,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub max_users: u32,
    pub destroy_on_owner_offline: bool,
    pub members_can_destroy: bool,
    /// Whether it is end-to-end encrypted, its encrypted name and its key check.
    pub sealing: Sealing,
    /// The member id of its owner, fixed at creation so a client can bind what it encrypts
    /// as the owner before it ever joins (a handover changes it).
    pub owner_member_id: String,
    /// How long a room that ends with its owner waits for it once its connection is gone.
    pub owner_grace_ms: Millis,
    /// The owner locked the room: it takes no new members.
    pub locked: bool,
    /// Set while the owner is away (its presence grace ran out in a room that ends with its
    /// owner): when the room ends unless the owner returns.
    pub owner_away_until: Option<Millis>,
}

/// One joined identity in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub display_name: String,
    pub role: Role,
    pub connected_at: Millis,
}

impl Member {
    /// As listed in `online_users`.
    pub fn online_user(&self) -> OnlineUser {
        OnlineUser {
            member_id: self.id.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            connected_at: protocol::rfc3339(self.connected_at),
        }
    }

    /// Message `id` by this member, as broadcast and kept.
    pub fn message(&self, room_id: &str, id: u64, draft: NewMessage, now: Millis) -> MessageFrame {
        MessageFrame {
            id,
            room_id: room_id.to_owned(),
            member_id: self.id.clone(),
            connection_id: self.id.clone(),
            display_name: self.display_name.clone(),
            content: Some(draft.content),
            reply_to: draft.reply_to,
            client_id: draft.client_id,
            timestamp: protocol::rfc3339(now),
            edited: false,
            deleted: false,
            reactions: Vec::new(),
        }
    }

    /// The bus note of this member's going online or offline.
    pub fn presence(
        &self,
        event: PresenceEvent,
        reason: Option<OfflineReason>,
        online_count: usize,
        now: Millis,
    ) -> PresenceNote {
        PresenceNote {
            event,
            reason,
            member: NotedMember {
                id: self.id.clone(),
                display_name: self.display_name.clone(),
                role: self.role,
            },
            online_count,
            at: now,
        }
    }
}

/// A room as seen from outside: settings, members (online, including those in their grace)
/// and the latest message id.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub room: Room,
    pub members: Vec<Member>,
    pub last_id: u64,
}

impl RoomView {
    /// A view with its members in the order every backend gives them: oldest connection first
    /// (ties by id).
    fn new(room: Room, mut members: Vec<Member>, last_id: u64) -> RoomView {
        members.sort_by(|a, b| (a.connected_at, &a.id).cmp(&(b.connected_at, &b.id)));
        RoomView {
            room,
            members,
            last_id,
        }
    }

    /// Whether a new non-owner member would be refused: the owner's slot is always reserved.
    pub fn is_full(&self) -> bool {
        let others = self
            .members
            .iter()
            .filter(|m| m.role == Role::Member)
            .count() as u64;
        others + 1 >= u64::from(self.room.max_users)
    }
}

/// What a single-use join ticket grants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    pub display_name: String,
    pub role: Role,
    pub expires_at: Millis,
    /// Who asked for it (the client key every per-client limit uses): a client holds at most
    /// [`MAX_TICKETS_PER_CLIENT`] of a room's outstanding tickets.
    pub client: String,
    /// A resume ticket: the resume token (its hash) it stands for. Such a ticket joins no one;
    /// it only resumes ([`Store::resume_with_ticket`]).
    #[serde(skip)]
    pub resume: Option<TokenHash>,
}

/// How a new connection becomes a member.
#[derive(Debug, Clone)]
pub enum Via {
    /// Redeem a ticket (consumed whatever the outcome).
    Ticket(TokenHash),
    /// Direct join of a room without password.
    Name(String),
}

/// `claim_membership`'s request: the ids are made by the caller.
#[derive(Debug, Clone)]
pub struct Claim {
    pub via: Via,
    /// Id for the member if a new one is created.
    pub member_id: String,
    /// Hash of the resume token the member will hold from now on.
    pub resume: TokenHash,
    /// The connection that now holds the member; any older one is replaced.
    pub session: u64,
    /// The client's key (its address, IPv6 on its prefix): refused if the owner barred it,
    /// and barred with the member if the owner removes it.
    pub client: String,
}

/// Who asks for an owner's action: the store checks, in the same atomic step as the action,
/// that it is the room's owner now (a handover or a kick racing it cannot slip through).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A member's connection, by its member id.
    Member(&'a str),
    /// A bearer of an owner token, by its hash.
    Token(&'a TokenHash),
}

/// What the owner changes ([`Store::change_room`]), each one store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// Removes a member now (`user_offline`, reason `kicked`) and bars its client key and its
    /// name (as names are compared) from the room for the room's life.
    Kick { member_id: String },
    /// Locks or unlocks the room and/or moves its end (every key's expiry follows); publishes
    /// `room_updated`. The caller checks the end's bounds.
    Settings {
        locked: Option<bool>,
        expires_at: Option<Millis>,
    },
    /// Makes another member the owner: the owner token stops working at once, and the new
    /// owner's next connection event mints its own ([`Store::take_ownership`]); publishes
    /// `room_updated`.
    Handover { member_id: String },
}

/// A connection's member, with the room state it starts from.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member: Member,
    pub view: RoomView,
}

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Owner,
    Member(Member),
}

/// A live connection, for liveness refreshes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Live {
    pub room_id: Arc<str>,
    pub member_id: Arc<str>,
    pub session: u64,
}

/// Why a liveness refresh found a connection stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Its member is no longer in the room (left, or its grace ran out).
    Gone,
    /// Its member has a newer connection.
    Replaced,
    /// Its room no longer exists (expired, closed or destroyed).
    RoomGone,
}

/// A token bucket: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Password attempts allowed in a room per fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Per client (its IP, or its IPv6 prefix).
    pub per_client: u32,
    /// Over every client together.
    pub per_room: u32,
    pub window_ms: Millis,
}

/// The key of the room-wide password-attempt count; no client address looks like it.
pub const EVERY_CLIENT: &str = "*";

/// A fixed-window limit's answer (`rate_hit`, `reserve_password_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Within the limit.
    Within,
    /// Over it until its window ends, this many milliseconds from now.
    Reached(Millis),
}

/// `append_message`'s answer: the message posted, or for a `client_id` its author already used
/// in a message history still holds, that message (a retry: nothing posted again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub frame: MessageFrame,
    /// False for a retry.
    pub new: bool,
}

/// A message to post, as checked by the caller; the store checks `reply_to` names an earlier
/// message of the room (one it still keeps must be a message, not another event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub content: Content,
    pub client_id: Option<String>,
    pub reply_to: Option<u64>,
}

/// A change to a message the room still keeps ([`Store::amend_message`]); each is an event of
/// the conversation with the room's next id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amend {
    /// New content, by the message's author within the edit window.
    Edit(Content),
    /// Its content gone from the store at once, by its author or the room's owner.
    Delete,
    /// Toggles the member's emoji (already one of Unicode's, in its qualified spelling).
    React(String),
}

/// What an amendment changes in history: the kept events it rewrites (their place in the
/// slice it was given, and what they become), the event it appends (id 0: the store assigns
/// it), and whether only the room's owner may make it (someone else's message deleted: the
/// store checks, in the step that applies it, that `by` is the owner).
struct Amended {
    rewritten: Vec<(usize, ChatEvent)>,
    event: ChatEvent,
    owner_only: bool,
}

impl Amend {
    /// Where the target stands in its room (both backends ask here before they read it):
    /// `invalid_frame` for an id the room never gave, `not_found` for one history no longer
    /// keeps (`first_kept`: the oldest id history holds).
    fn locate(target: u64, last_id: u64, first_kept: u64) -> Result<()> {
        if target == 0 || target > last_id {
            return Err(Error::Refused(ErrorCode::InvalidFrame));
        }
        if target < first_kept {
            return Err(Error::Refused(ErrorCode::NotFound));
        }
        Ok(())
    }

    /// How many kept events from the target on the amendment reads: a deletion reads every
    /// later one too (the edits of the message carry its text, and lose it with it).
    fn reach(&self, history_limit: usize) -> usize {
        match self {
            Amend::Delete => history_limit,
            _ => 1,
        }
    }

    /// Applies the amendment to `kept`, the kept events from the target on (both backends
    /// decide here). `invalid_frame` when the target is not a message, `not_found` when it is
    /// deleted, `forbidden` for an edit by anyone but its author or past `edit_window_ms`,
    /// `invalid_frame` for a 21st distinct emoji.
    fn apply(
        self,
        kept: &[ChatEvent],
        by: &Member,
        now: Millis,
        edit_window_ms: Millis,
    ) -> Result<Amended> {
        let Some(ChatEvent::Message(target)) = kept.first() else {
            return Err(Error::Refused(ErrorCode::InvalidFrame));
        };
        if target.deleted {
            return Err(Error::Refused(ErrorCode::NotFound));
        }
        let mut message = target.clone();
        let own = target.member_id == by.id;
        let room_id = target.room_id.clone();
        let (target_id, timestamp) = (target.id, protocol::rfc3339(now));
        let (member_id, display_name) = (by.id.clone(), by.display_name.clone());
        let mut rewritten = Vec::new();
        let mut owner_only = false;
        let event = match self {
            Amend::Edit(content) => {
                let sent = protocol::parse_rfc3339(&target.timestamp).unwrap_or(0);
                if !own || now.saturating_sub(sent) > edit_window_ms {
                    return Err(Error::Refused(ErrorCode::Forbidden));
                }
                message.content = Some(content.clone());
                message.edited = true;
                ChatEvent::MessageEdited(MessageEditedFrame {
                    id: 0,
                    room_id,
                    target: target_id,
                    member_id,
                    display_name,
                    content: Some(content),
                    timestamp,
                })
            }
            Amend::Delete => {
                owner_only = !own;
                message.content = None;
                message.deleted = true;
                message.edited = false;
                message.reply_to = None;
                message.reactions.clear();
                // Its earlier edits carried its text: they keep their place, without it.
                for (at, event) in kept.iter().enumerate().skip(1) {
                    if let ChatEvent::MessageEdited(edit) = event
                        && edit.target == target_id
                        && edit.content.is_some()
                    {
                        let scrubbed = MessageEditedFrame {
                            content: None,
                            ..edit.clone()
                        };
                        rewritten.push((at, ChatEvent::MessageEdited(scrubbed)));
                    }
                }
                ChatEvent::MessageDeleted(MessageDeletedFrame {
                    id: 0,
                    room_id,
                    target: target_id,
                    member_id,
                    display_name,
                    timestamp,
                })
            }
            Amend::React(emoji) => {
                let on = toggle(&mut message.reactions, &emoji, &by.id)?;
                ChatEvent::Reaction(ReactionFrame {
                    id: 0,
                    room_id,
                    target: target_id,
                    emoji,
                    member_id,
                    display_name,
                    on,
                    timestamp,
                })
            }
        };
        rewritten.insert(0, (0, ChatEvent::Message(message)));
        Ok(Amended {
            rewritten,
            event,
            owner_only,
        })
    }
}

/// Puts `member`'s `emoji` on the message, or takes it off: whether it is on now.
fn toggle(reactions: &mut Vec<Reactions>, emoji: &str, member: &str) -> Result<bool> {
    let Some(at) = reactions.iter().position(|r| r.emoji == emoji) else {
        if reactions.len() >= protocol::limits::MAX_EMOJI_PER_MESSAGE {
            return Err(Error::Refused(ErrorCode::InvalidFrame));
        }
        reactions.push(Reactions {
            emoji: emoji.to_owned(),
            member_ids: vec![member.to_owned()],
        });
        return Ok(true);
    };
    let members = &mut reactions[at].member_ids;
    if let Some(mine) = members.iter().position(|m| m == member) {
        members.remove(mine);
        if members.is_empty() {
            reactions.remove(at);
        }
        return Ok(false);
    }
    members.push(member.to_owned());
    Ok(true)
}

/// `history_after`'s answer.
#[derive(Debug, Clone)]
pub struct History {
    /// The conversation's events.
    pub events: Vec<ChatEvent>,
    pub last_id: u64,
    /// False when some messages after the requested id are no longer kept.
    pub complete: bool,
}

impl History {
    /// A read of what follows `after`, given the room's last id and the oldest id still kept:
    /// complete when nothing follows, or when the oldest kept comes right after `after` or
    /// earlier (ids in history are contiguous).
    fn read(after: u64, events: Vec<ChatEvent>, last_id: u64, first_kept: Option<u64>) -> Self {
        let complete =
            last_id <= after || first_kept.is_some_and(|first| first <= after.saturating_add(1));
        History {
            events,
            last_id,
            complete,
        }
    }
}

/// What the bus delivers.
#[derive(Debug, Clone)]
pub enum BusItem {
    /// One event published on a room's channel: the room id and the event's JSON (a client frame
    /// for everything clients see, see `protocol::frames::BusEvent`).
    Event(Arc<str>, ByteString),
    /// Events may have been lost (the subscription was re-established, or the buffer overflowed):
    /// repair every hosted room from the store.
    Resync,
}

/// Receives the events of every room this instance subscribed to, in publish order per room.
pub type Bus = mpsc::Receiver<BusItem>;

/// Bus items waiting for the hub's dispatcher. Bounded: a dispatcher that falls this far behind
/// gets a `Resync` (events were dropped) instead of the store's memory growing.
pub const BUS_CAPACITY: usize = 1 << 16;

/// Most join tickets a room keeps outstanding (expired ones are pruned first).
pub const MAX_TICKETS_PER_ROOM: usize = 1000;

/// Outstanding (unexpired, unredeemed) tickets one client may hold in a room.
pub const MAX_TICKETS_PER_CLIENT: usize = 20;

/// Latency of every store operation, labelled by operation.
pub type LatencyFamily = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The shared state: one of the backends, chosen at start-up.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    latency: LatencyFamily,
}

#[derive(Clone)]
enum Backend {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $op:ident($($arg:expr),*)) => {{
        let started = std::time::Instant::now();
        let result = match &$self.backend {
            Backend::Memory(store) => store.$op($($arg),*).await,
            Backend::Redis(store) => store.$op($($arg),*).await,
        };
        $self.latency.get_or_create(&[("op", stringify!($op))]).observe(started.elapsed().as_secs_f64());
        result
    }};
}

impl Store {
    /// The in-memory backend and its bus.
    pub fn memory(config: StoreConfig) -> (Store, Bus) {
        let (store, bus) = memory::MemoryStore::new(config);
        (Store::on(Backend::Memory(store)), bus)
    }

    fn on(backend: Backend) -> Store {
        let latency = LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        Store { backend, latency }
    }

    /// The Redis backend (`redis://`, `rediss://` or `redis-cluster://`) and its bus.
    pub async fn redis(url: &str, config: StoreConfig) -> Result<(Store, Bus)> {
        let (store, bus) = redis::RedisStore::connect(url, config).await?;
        Ok((Store::on(Backend::Redis(store)), bus))
    }

    /// Registers the store's metrics (`ephemera_store_op_seconds`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "ephemera_store_op",
            "Latency of store operations",
            prometheus_client::registry::Unit::Seconds,
            self.latency.clone(),
        );
    }

    /// Now (ms) on the store's clock: Redis's, which expires its keys, for deadlines and expiry
    /// times that every instance must agree on.
    pub fn now(&self) -> Millis {
        match &self.backend {
            Backend::Memory(_) => protocol::now_ms(),
            Backend::Redis(store) => store.now(),
        }
    }

    /// Whether the backend answers (readiness).
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, ping())
    }

    /// Creates a room; its id and credentials are made by the caller. Refused with
    /// `unavailable` when `max_rooms` rooms exist.
    pub async fn create_room(&self, room: Room) -> Result<()> {
        dispatch!(self, create_room(room, None))
    }

    /// [`Store::create_room`] for a client, who holds at most `max_rooms_per_client` rooms at
    /// once (refused with `rate_limited`); a room stops counting when it ends.
    pub async fn create_room_by(&self, room: Room, client: &str) -> Result<()> {
        dispatch!(self, create_room(room, Some(client)))
    }

    /// The room, its members and its latest message id; `None` once it has ended.
    pub async fn room(&self, room_id: &str) -> Result<Option<RoomView>> {
        dispatch!(self, room(room_id))
    }

    /// Whose bearer token this is in this room.
    pub async fn authenticate(
        &self,
        room_id: &str,
        token: &TokenHash,
    ) -> Result<Option<Credential>> {
        dispatch!(self, authenticate(room_id, token))
    }

    /// Stores a join ticket (single use, until `ticket.expires_at`); refused with `rate_limited`
    /// when the room already has [`MAX_TICKETS_PER_ROOM`] unexpired ones, or its client
    /// [`MAX_TICKETS_PER_CLIENT`]. Issuing one prunes expired ones by expiry order, reading no
    /// other (Redis: a sorted set by expiry beside the tickets).
    pub async fn issue_ticket(&self, room_id: &str, hash: TokenHash, ticket: Ticket) -> Result<()> {
        dispatch!(self, issue_ticket(room_id, hash, ticket))
    }

    /// Makes a connection a member: consumes the ticket or takes the name, checks the name and
    /// the user limit, and publishes `user_online` for a new member. An owner claim while the
    /// owner member exists attaches to it (its older connection is replaced).
    pub async fn claim_membership(&self, room_id: &str, claim: Claim) -> Result<Joined> {
        dispatch!(self, claim_membership(room_id, claim))
    }

    /// Attaches a connection to the member holding this resume token (older connection replaced).
    pub async fn resume_member(
        &self,
        room_id: &str,
        resume: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        dispatch!(self, resume_member(room_id, resume, session))
    }

    /// As [`Store::resume_member`], for the resume token a resume ticket stands for; the ticket
    /// is used up in the same step, whatever the outcome (a join ticket here is `unauthorized`).
    pub async fn resume_with_ticket(
        &self,
        room_id: &str,
        ticket: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        dispatch!(self, resume_with_ticket(room_id, ticket, session))
    }

    /// Keeps members with live connections online for another grace period. Returns, in order,
    /// the positions in `live` of the connections whose member is gone or has a newer
    /// connection (their bus event is lost if it came while the subscription was down).
    pub async fn touch_members(&self, live: &[Live]) -> Result<Vec<(usize, Stale)>> {
        dispatch!(self, touch_members(live))
    }

    /// [`Store::touch_members`], and the latest message id of each of their rooms (`None` for a
    /// room that is gone): the liveness check compares it with what the bus delivered, which
    /// catches a subscription lost unannounced.
    pub async fn touch_members_and_latest(
        &self,
        live: &[Live],
    ) -> Result<(Vec<(usize, Stale)>, Vec<(Arc<str>, Option<u64>)>)> {
        dispatch!(self, touch_members_and_latest(live))
    }

    /// Connections dropped: each one's member stays online for the grace period, unless a newer
    /// connection already holds it.
    pub async fn disconnect_members(&self, live: &[Live]) -> Result<()> {
        dispatch!(self, disconnect_members(live))
    }

    /// Removes a member now (explicit leave): `user_offline`, and the room's destruction if it was
    /// the owner and the room says so.
    pub async fn release_member(&self, room_id: &str, member_id: &str) -> Result<()> {
        dispatch!(self, release_member(room_id, member_id))
    }

    /// Accepts a message from a member: rate-checks it, assigns the next id, keeps it in history
    /// and publishes it. A `reply_to` that is not an earlier message is `invalid_frame`.
    pub async fn append_message(
        &self,
        room_id: &str,
        author: &Member,
        message: NewMessage,
        rate: Rate,
    ) -> Result<Posted> {
        dispatch!(self, append_message(room_id, author, message, rate))
    }

    /// Edits, deletes or reacts to message `target`, which history must still keep
    /// (`not_found` otherwise, and for a deleted one; `invalid_frame` for an id that is not a
    /// message): changes the kept message, then appends the event with the next id and
    /// publishes it, in one step, against the member's and the room's message rates. Refusals
    /// as [`Amend`] says; a deletion of another's message by anyone but the owner is
    /// `forbidden`.
    pub async fn amend_message(
        &self,
        room_id: &str,
        by: &Member,
        target: u64,
        amend: Amend,
        rate: Rate,
        edit_window_ms: Millis,
    ) -> Result<ChatEvent> {
        dispatch!(
            self,
            amend_message(room_id, by, target, amend, rate, edit_window_ms)
        )
    }

    /// Kept messages with `id > after`, oldest first, at most `limit`.
    pub async fn history_after(&self, room_id: &str, after: u64, limit: usize) -> Result<History> {
        dispatch!(self, history_after(room_id, after, limit))
    }

    /// Publishes a frame the server only relays, if its author is a member of the live room.
    pub async fn relay(&self, room_id: &str, frame: &RelayFrame) -> Result<()> {
        dispatch!(self, relay(room_id, frame))
    }

    /// An owner's change to the room, refused with `forbidden` unless `by` is its owner now
    /// (and for a kick of the owner itself), `not_found` for a member who is not in the room.
    /// Answers the room as it is after the change.
    pub async fn change_room(
        &self,
        room_id: &str,
        by: Actor<'_>,
        change: RoomChange,
    ) -> Result<RoomView> {
        dispatch!(self, change_room(room_id, by, change))
    }

    /// After a handover, the new owner's connection sets the owner token it made (its hash):
    /// true if `member_id` is the owner and no owner token is set since the handover, so that
    /// only the new owner, and only once, gets one.
    pub async fn take_ownership(
        &self,
        room_id: &str,
        member_id: &str,
        token: TokenHash,
    ) -> Result<bool> {
        dispatch!(self, take_ownership(room_id, member_id, token))
    }

    /// Deletes every piece of the room and publishes `room_closed`. False if it had already ended.
    pub async fn destroy_room(&self, room_id: &str, reason: CloseReason) -> Result<bool> {
        dispatch!(self, destroy_room(room_id, reason))
    }

    /// Runs every due deadline: expiry, ended presence graces, owner-offline destruction.
    /// Returns how many rooms it looked at.
    pub async fn sweep(&self) -> Result<usize> {
        dispatch!(self, sweep())
    }

    /// Counts one event against `key` in a fixed window of `window_ms`, which it may take past
    /// `limit`.
    pub async fn rate_hit(&self, key: &str, limit: u32, window_ms: Millis) -> Result<Limit> {
        dispatch!(self, rate_hit(key, limit, window_ms))
    }

    /// Takes one password attempt for `client` in this room before the password is checked, in
    /// one atomic step, so parallel guesses cannot all pass a check made before any of them is
    /// counted: `Within` when the client's count and the room's (over every client) are both
    /// under their limits (each is then raised by one), else `Reached` with the time left of
    /// the full window. The counters are the room's and end with it.
    pub async fn reserve_password_attempt(
        &self,
        room_id: &str,
        client: &str,
        limits: AttemptLimits,
    ) -> Result<Limit> {
        dispatch!(self, reserve_password_attempt(room_id, client, limits))
    }

    /// Gives back an attempt [`Store::reserve_password_attempt`] took: the password was right,
    /// and only wrong ones count.
    pub async fn refund_password_attempt(&self, room_id: &str, client: &str) -> Result<()> {
        dispatch!(self, refund_password_attempt(room_id, client))
    }

    /// Starts delivering the room's events to this instance's [`Bus`]; returns once live.
    pub async fn subscribe(&self, room_id: &str) -> Result<()> {
        dispatch!(self, subscribe(room_id))
    }

    /// After a [`BusItem::Resync`], the caller has subscribed again every room it hosts: the
    /// bus is whole again (readiness returns).
    pub async fn subscriptions_restored(&self) -> Result<()> {
        dispatch!(self, subscriptions_restored())
    }

    /// Stops delivering the room's events.
    pub async fn unsubscribe(&self, room_id: &str) -> Result<()> {
        dispatch!(self, unsubscribe(room_id))
    }
}
