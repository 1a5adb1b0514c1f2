//! Backends for the conformance suite, and small builders.

use protocol::{Millis, Role, now_ms};
use store::secret::{TokenHash, new_id};
use store::testing::{RedisCluster, RedisServer};
use store::{Bus, BusItem, Claim, Room, Store, StoreConfig, Via};

/// Presence grace used by the suite (short, so cases take a fraction of a second).
pub const GRACE_MS: Millis = 200;
/// Refresh period of live connections that goes with it (`StoreConfig::refresh_ms`).
pub const REFRESH_MS: Millis = GRACE_MS / 2;
pub const HISTORY: usize = 5;
pub const HISTORY_BYTES: usize = 2048;

pub fn config() -> StoreConfig {
    StoreConfig {
        presence_grace_ms: GRACE_MS,
        history_limit: HISTORY,
        // Five short messages fit; `history_is_bounded_in_bytes_too` fills it with long ones.
        history_max_bytes: HISTORY_BYTES,
        max_rooms: 100_000,
        room_messages: store::Rate {
            per_second: 100_000,
            burst: 100_000,
        },
        room_joins: store::Rate {
            per_second: 100_000,
            burst: 100_000,
        },
        max_rooms_per_client: 3,
    }
}

/// [`config`] with room for a conversation: 100 events, 64 KiB.
pub fn long_history() -> StoreConfig {
    StoreConfig {
        history_limit: 100,
        history_max_bytes: 64 * 1024,
        ..config()
    }
}

pub fn memory(config: StoreConfig) -> (Store, Bus) {
    Store::memory(config)
}

/// A store on a fresh `redis-server`, which lives as long as the returned guard.
pub async fn redis(config: StoreConfig) -> (Store, Bus, RedisServer) {
    let server = RedisServer::start();
    let (store, bus) = Store::redis(&server.url(), config)
        .await
        .expect("connects to redis");
    (store, bus, server)
}

/// A store on a fresh three-master Redis Cluster.
pub async fn redis_cluster(config: StoreConfig) -> (Store, Bus, RedisCluster) {
    let cluster = RedisCluster::start();
    let (store, bus) = Store::redis(&cluster.url(), config)
        .await
        .expect("connects to the cluster");
    (store, bus, cluster)
}

/// A room owned by "alice"; returns it with its owner token.
pub fn room(max_users: u32, lifetime_ms: Millis) -> (Room, String) {
    let token = store::secret::new_token();
    let now = now_ms();
    let room = Room {
        id: new_id(),
        name: None,
        owner_name: "alice".into(),
        password_hash: None,
        owner_token: TokenHash::of(&token),
        created_at: now,
        expires_at: now + lifetime_ms,
        max_users,
        destroy_on_owner_offline: true,
        members_can_destroy: false,
        sealing: Default::default(),
        owner_member_id: new_id(),
        owner_grace_ms: 0,
        locked: false,
        owner_away_until: None,
    };
    (room, token)
}

/// A message's content: `text`.
pub fn text(text: impl Into<String>) -> protocol::frames::Content {
    protocol::frames::Content::Text(text.into())
}

/// A message to post: its content and `client_id`.
pub fn post(content: protocol::frames::Content, client_id: Option<String>) -> store::NewMessage {
    store::NewMessage {
        content,
        client_id,
        reply_to: None,
    }
}

/// A claim by display name, with a fresh member id and resume token.
pub fn by_name(name: &str, session: u64) -> (Claim, String) {
    let resume = store::secret::new_token();
    let claim = Claim {
        via: Via::Name(name.into()),
        member_id: new_id(),
        resume: TokenHash::of(&resume),
        session,
        // Each name its own client.
        client: format!("client of {name}"),
    };
    (claim, resume)
}

/// Joins `name` by name (session `session`) and returns the member.
pub async fn join(store: &Store, room_id: &str, name: &str, session: u64) -> store::Member {
    join_resumable(store, room_id, name, session).await.0
}

/// Joins `name` by name (session `session`) and returns the member and its resume token.
pub async fn join_resumable(
    store: &Store,
    room_id: &str,
    name: &str,
    session: u64,
) -> (store::Member, String) {
    let (claim, token) = by_name(name, session);
    let joined = store.claim_membership(room_id, claim).await.expect("join");
    (joined.member, token)
}

/// A claim redeeming a ticket.
pub fn by_ticket(ticket: &str, session: u64) -> (Claim, String) {
    let resume = store::secret::new_token();
    let claim = Claim {
        via: Via::Ticket(TokenHash::of(ticket)),
        member_id: new_id(),
        resume: TokenHash::of(&resume),
        session,
        client: "ticket holder".into(),
    };
    (claim, resume)
}

/// The owner joins (ticket `ticket`, session `session`) and is returned.
pub async fn claim_owner(
    store: &Store,
    room_id: &str,
    ticket: &str,
    session: u64,
) -> store::Member {
    store
        .issue_ticket(room_id, TokenHash::of(ticket), owner_ticket(60_000))
        .await
        .expect("ticket");
    store
        .claim_membership(room_id, by_ticket(ticket, session).0)
        .await
        .expect("owner")
        .member
}

pub fn owner_ticket(expires_in: Millis) -> store::Ticket {
    store::Ticket {
        display_name: "alice".into(),
        role: Role::Owner,
        expires_at: now_ms() + expires_in,
        client: "1.1.1.1".into(),
        resume: None,
    }
}

/// Every bus event delivered until the bus has been quiet for a moment, with its room, as
/// clients see it (a presence note as its frame).
pub async fn delivered(bus: &mut Bus) -> Vec<(String, serde_json::Value)> {
    let mut seen = Vec::new();
    while let Ok(Some(item)) =
        tokio::time::timeout(std::time::Duration::from_millis(150), bus.recv()).await
    {
        if let BusItem::Event(room, json) = item {
            let mut event: serde_json::Value =
                serde_json::from_str(&json).expect("bus events are JSON");
            // Presence travels as a note; the tests read the frame clients get from it.
            if event["type"] == "presence" {
                let note: protocol::frames::PresenceNote =
                    serde_json::from_value(event).expect("a presence note");
                let frame = protocol::frames::ServerFrame::Presence(note.frame(&room));
                event = serde_json::to_value(frame).expect("serializes");
            }
            // So does the room's state (room_updated).
            if event["type"] == "room" {
                let note: protocol::frames::RoomNote =
                    serde_json::from_value(event).expect("a room note");
                let frame = protocol::frames::ServerFrame::RoomUpdated(note.frame(&room));
                event = serde_json::to_value(frame).expect("serializes");
            }
            seen.push((room.to_string(), event));
        }
    }
    seen
}

/// The events of [`delivered`], without their rooms.
pub async fn published(bus: &mut Bus) -> Vec<serde_json::Value> {
    delivered(bus)
        .await
        .into_iter()
        .map(|(_, event)| event)
        .collect()
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
