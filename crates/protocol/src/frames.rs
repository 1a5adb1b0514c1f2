//! WebSocket frames (API.md, "WebSocket") and the per-room bus events.
//!
//! A bus event that clients see (message, typing, room_closed) is published as exactly the JSON
//! of its client frame, so an instance forwards the published bytes unchanged. Presence is
//! published as facts (`PresenceNote`), and each instance makes its frame once.

use crate::rest::OnlineUser;
use crate::{CloseReason, ErrorCode, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    System(SystemFrame),
    Message(MessageFrame),
    Presence(PresenceFrame),
    Error(ErrorFrame),
    MessageEdited(MessageEditedFrame),
    MessageDeleted(MessageDeletedFrame),
    Reaction(ReactionFrame),
    RoomUpdated(RoomUpdatedFrame),
    /// To a new owner alone, after a handover: its owner token.
    OwnerToken(OwnerTokenFrame),
    /// Frames the server only relays (`RelayFrame`), spelled as their own `type`.
    #[serde(untagged)]
    Relay(RelayFrame),
}

/// Frames the server relays without behaviour of its own: it checks the author is a member of
/// the room, publishes the frame, and every instance hands it to the room's connections (the
/// author's own ones only if `to_author`). A new frame of this kind is a variant here, the
/// client command that makes it, and a line in the session: no store operation, script, bus
/// event or hub event of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayFrame {
    Typing(TypingFrame),
}

impl RelayFrame {
    /// The member who sent it.
    pub fn author(&self) -> &str {
        match self {
            RelayFrame::Typing(t) => &t.member_id,
        }
    }

    /// Whether the author's own connections get it too.
    pub fn to_author(&self) -> bool {
        match self {
            RelayFrame::Typing(_) => false,
        }
    }
}

/// `{"type": "system", "event": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
// A frame lives only while it is serialized or parsed: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum SystemFrame {
    Welcome(Welcome),
    RoomClosed(RoomClosedFrame),
}

/// Always the first frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Welcome {
    pub message: String,
    pub room_id: String,
    pub member_id: String,
    pub connection_id: String,
    pub display_name: String,
    pub role: Role,
    /// The member's resume token: absent after a resume by ticket (the client holds the token,
    /// and the server keeps only its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    pub expires_at: String,
    pub expires_in: u64,
    /// Whether messages here are `ciphertext` (end-to-end encrypted) rather than `text`.
    pub encrypted: bool,
    /// Whether the room takes new members (the owner's lock).
    pub locked: bool,
    /// The owner's member id (it changes with a handover).
    pub owner_member_id: String,
    /// While the owner is away in a room that ends with its owner: when it ends unless the
    /// owner returns (RFC 3339), else null.
    pub owner_away_until: Option<String>,
    pub online_users: Vec<OnlineUser>,
    pub online_count: usize,
    /// The conversation's latest events as broadcast (`ChatEvent`), `"type"` included.
    pub history: Vec<ChatEvent>,
    pub recovered: bool,
    pub timestamp: String,
}

/// A chat message as broadcast and kept in history. History keeps it as it is now: its latest
/// text once edited, a tombstone (no content) once deleted, and who reacted with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageFrame {
    pub id: u64,
    pub room_id: String,
    pub member_id: String,
    pub connection_id: String,
    pub display_name: String,
    /// `text` or `ciphertext`; absent once the message is deleted.
    #[serde(flatten)]
    pub content: Option<Content>,
    /// The id of the earlier message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    // The Redis store finds `client_id` right before `timestamp` in a kept message's JSON
    // (append.lua): keep the two together, in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub timestamp: String,
    /// Its author changed its content (`message_edited`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub edited: bool,
    /// Deleted (`message_deleted`): its content is gone from the store.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Who reacted with what, each emoji in the order it was first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reactions>,
}

impl MessageFrame {
    /// The text of a message of an open room, unless deleted.
    pub fn text(&self) -> Option<&str> {
        self.content.as_ref().and_then(Content::text)
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// One emoji on a message and the members who put it there, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reactions {
    pub emoji: String,
    pub member_ids: Vec<String>,
}

/// An event of a room's conversation: each takes the room's next id, is kept in its history and
/// comes again on a resume, like messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    Message(MessageFrame),
    MessageEdited(MessageEditedFrame),
    MessageDeleted(MessageDeletedFrame),
    Reaction(ReactionFrame),
}

impl ChatEvent {
    /// Its place in the room's conversation.
    pub fn id(&self) -> u64 {
        match self {
            ChatEvent::Message(m) => m.id,
            ChatEvent::MessageEdited(e) => e.id,
            ChatEvent::MessageDeleted(e) => e.id,
            ChatEvent::Reaction(e) => e.id,
        }
    }

    /// Sets its id (the store assigns it).
    pub fn set_id(&mut self, id: u64) {
        match self {
            ChatEvent::Message(m) => m.id = id,
            ChatEvent::MessageEdited(e) => e.id = id,
            ChatEvent::MessageDeleted(e) => e.id = id,
            ChatEvent::Reaction(e) => e.id = id,
        }
    }

    /// The message, if it is one.
    pub fn message(&self) -> Option<&MessageFrame> {
        match self {
            ChatEvent::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// A message's author changed it: `text` (or `ciphertext`) is its content from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageEditedFrame {
    pub id: u64,
    pub room_id: String,
    /// The message edited.
    pub target: u64,
    pub member_id: String,
    pub display_name: String,
    /// Absent from history once the message is deleted (its `message_deleted` follows).
    #[serde(flatten)]
    pub content: Option<Content>,
    pub timestamp: String,
}

/// A message was deleted, by its author or by the room's owner (`member_id`: who deleted it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageDeletedFrame {
    pub id: u64,
    pub room_id: String,
    pub target: u64,
    pub member_id: String,
    pub display_name: String,
    pub timestamp: String,
}

/// A member put an emoji on a message (`on`) or took it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReactionFrame {
    pub id: u64,
    pub room_id: String,
    pub target: u64,
    pub emoji: String,
    pub member_id: String,
    pub display_name: String,
    pub on: bool,
    pub timestamp: String,
}

/// What a message says: `text`, or in an encrypted room `ciphertext` (unpadded base64url of
/// IV ‖ ciphertext ‖ tag), which the server relays and keeps byte for byte and cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Text(String),
    Ciphertext(String),
}

impl Content {
    /// The text of a message of an open room.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Text(text) => Some(text),
            Content::Ciphertext(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    UserOnline,
    UserOffline,
}

/// Why a member went offline, on `user_offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// It left (a `leave` frame, `POST .../leave`).
    Left,
    /// Its connection was gone for longer than the presence grace.
    Timeout,
    /// The owner removed it (and barred it from the room).
    Kicked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresenceFrame {
    pub event: PresenceEvent,
    /// On `user_offline` from the store: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
    pub member_id: String,
    pub connection_id: String,
    pub display_name: String,
    pub role: Role,
    pub room_id: String,
    pub online_count: usize,
    pub timestamp: String,
}

/// A presence change as the store publishes it on the bus: the facts (who, what, how many are
/// online, when), from which every instance makes the `PresenceFrame` its clients get. The
/// Redis scripts know the facts, not the frame, so the frame is spelled once, here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceNote {
    pub event: PresenceEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
    /// The member as the store keeps it (other fields of its record are ignored).
    pub member: NotedMember,
    pub online_count: usize,
    /// When, in ms since the epoch (on the store's clock).
    pub at: crate::Millis,
}

/// Who a `PresenceNote` is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotedMember {
    pub id: String,
    pub display_name: String,
    pub role: Role,
}

impl PresenceNote {
    /// The frame clients of `room_id` get.
    pub fn frame(&self, room_id: &str) -> PresenceFrame {
        PresenceFrame {
            event: self.event,
            reason: self.reason,
            member_id: self.member.id.clone(),
            connection_id: self.member.id.clone(),
            display_name: self.member.display_name.clone(),
            role: self.member.role,
            room_id: room_id.to_owned(),
            online_count: self.online_count,
            timestamp: crate::rfc3339(self.at),
        }
    }
}

/// The room's state the owner changes, all of it in every `room_updated` (so a client that
/// missed one is right again with the next, and the welcome carries the same fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomUpdatedFrame {
    pub room_id: String,
    pub locked: bool,
    pub expires_at: String,
    pub expires_in: u64,
    pub owner_member_id: String,
    /// While the owner is away in a room that ends with its owner: when it ends unless the
    /// owner returns; null otherwise.
    pub owner_away_until: Option<String>,
    pub timestamp: String,
}

/// The room's state as the store publishes it on the bus (`RoomUpdatedFrame`'s facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomNote {
    pub locked: bool,
    pub expires_at: crate::Millis,
    pub owner_id: String,
    #[serde(default)]
    pub owner_away_until: Option<crate::Millis>,
    /// When, in ms since the epoch (on the store's clock).
    pub at: crate::Millis,
}

impl RoomNote {
    /// The frame clients of `room_id` get.
    pub fn frame(&self, room_id: &str) -> RoomUpdatedFrame {
        RoomUpdatedFrame {
            room_id: room_id.to_owned(),
            locked: self.locked,
            expires_at: crate::rfc3339(self.expires_at),
            expires_in: crate::seconds_until(self.expires_at, self.at),
            owner_member_id: self.owner_id.clone(),
            owner_away_until: self.owner_away_until.map(crate::rfc3339),
            timestamp: crate::rfc3339(self.at),
        }
    }
}

/// A new owner's owner token (it holds it as the room's creator holds its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OwnerTokenFrame {
    pub room_id: String,
    pub owner_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TypingFrame {
    pub member_id: String,
    pub display_name: String,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomClosedFrame {
    pub reason: CloseReason,
    pub message: String,
    pub room_id: String,
    pub timestamp: String,
}

impl RoomClosedFrame {
    /// The room ended for `reason` at `now`; `message` is the reason's sentence.
    pub fn new(room_id: &str, reason: CloseReason, now: crate::Millis) -> RoomClosedFrame {
        RoomClosedFrame {
            reason,
            message: reason.message().to_owned(),
            room_id: room_id.to_owned(),
            timestamp: crate::rfc3339(now),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
}

impl ServerFrame {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error(ErrorFrame {
            code,
            message: message.into(),
        })
    }
}

/// Every command a client may send as a JSON text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `text` in an open room, `ciphertext` in an encrypted one (the command checks which).
    Message {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// The id of the earlier message this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
    },
    /// The author changes its message (`text`, or `ciphertext` in an encrypted room).
    Edit {
        target: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
    },
    /// The author, or the owner, deletes a message.
    Delete {
        target: u64,
    },
    /// Puts the sender's `emoji` on a message, or takes it back if it is there.
    React {
        target: u64,
        emoji: String,
    },
    Typing,
    Leave,
    CloseRoom,
    /// The owner removes a member and bars it from the room.
    Kick {
        member_id: String,
    },
    /// The owner locks (no new members) or unlocks the room.
    Lock {
        locked: bool,
    },
    /// The owner makes another member the owner.
    Handover {
        member_id: String,
    },
}

impl ClientFrame {
    /// Reads one inbound text frame: a command if its first non-space character is `{`, else a
    /// plain message with that text (EphemeralChat-style).
    pub fn parse(text: &str) -> Result<ClientFrame, serde_json::Error> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
        } else {
            Ok(ClientFrame::Message {
                text: Some(text.to_owned()),
                ciphertext: None,
                client_id: None,
                reply_to: None,
            })
        }
    }
}

/// What travels on a room's bus channel between instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusEvent {
    Message(MessageFrame),
    MessageEdited(MessageEditedFrame),
    MessageDeleted(MessageDeletedFrame),
    Reaction(ReactionFrame),
    /// Made into its client frame by each instance (`PresenceNote::frame`).
    Presence(PresenceNote),
    /// Only `room_closed` travels on the bus.
    System(SystemFrame),
    /// Made into `room_updated` by each instance (`RoomNote::frame`).
    Room(RoomNote),
    /// A member attached a newer connection: every other connection of it closes with 4000.
    Replaced {
        member_id: String,
        session: u64,
    },
    #[serde(untagged)]
    Relay(RelayFrame),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::OnlineUser;
    use serde_json::json;

    fn message() -> MessageFrame {
        MessageFrame {
            id: 42,
            room_id: "r".into(),
            member_id: "m".into(),
            connection_id: "m".into(),
            display_name: "bob".into(),
            content: Some(Content::Text("hello".into())),
            reply_to: None,
            client_id: Some("c-17".into()),
            timestamp: "2026-11-21T12:34:56.789Z".into(),
            edited: false,
            deleted: false,
            reactions: vec![],
        }
    }

    fn presence() -> PresenceFrame {
        PresenceFrame {
            event: PresenceEvent::UserOnline,
            reason: None,
            member_id: "m".into(),
            connection_id: "m".into(),
            display_name: "bob".into(),
            role: Role::Member,
            room_id: "r".into(),
            online_count: 3,
            timestamp: "t".into(),
        }
    }

    fn round_trip(frame: ServerFrame) -> serde_json::Value {
        let value = serde_json::to_value(&frame).expect("serializes");
        let back: ServerFrame = serde_json::from_value(value.clone()).expect("parses back");
        assert_eq!(back, frame);
        value
    }

    #[test]
    fn server_frames_round_trip_with_their_tags() {
        let welcome = round_trip(ServerFrame::System(SystemFrame::Welcome(Welcome {
            message: "Connected to room".into(),
            room_id: "r".into(),
            member_id: "m".into(),
            connection_id: "m".into(),
            display_name: "bob".into(),
            role: Role::Member,
            resume_token: Some("secret".into()),
            expires_at: "e".into(),
            expires_in: 3599,
            encrypted: false,
            locked: false,
            owner_member_id: "o".into(),
            owner_away_until: None,
            online_users: vec![OnlineUser {
                member_id: "m".into(),
                display_name: "bob".into(),
                role: Role::Member,
                connected_at: "c".into(),
            }],
            online_count: 1,
            history: vec![ChatEvent::Message(message())],
            recovered: true,
            timestamp: "t".into(),
        })));
        assert_eq!(welcome["type"], "system");
        assert_eq!(welcome["event"], "welcome");
        assert_eq!(welcome["history"][0]["type"], "message");
        assert_eq!(welcome["history"][0]["id"], 42);

        let msg = round_trip(ServerFrame::Message(message()));
        assert_eq!(
            msg,
            json!({"type": "message", "id": 42, "room_id": "r", "member_id": "m",
                   "connection_id": "m", "display_name": "bob", "text": "hello",
                   "client_id": "c-17", "timestamp": "2026-11-21T12:34:56.789Z"})
        );
        let sealed = round_trip(ServerFrame::Message(MessageFrame {
            content: Some(Content::Ciphertext("AAAA-_".into())),
            ..message()
        }));
        assert_eq!(sealed["ciphertext"], "AAAA-_");
        assert!(sealed.get("text").is_none(), "ciphertext in place of text");
        let p = round_trip(ServerFrame::Presence(presence()));
        assert_eq!(p["type"], "presence");
        assert_eq!(p["event"], "user_online");
        let t = round_trip(ServerFrame::Relay(RelayFrame::Typing(TypingFrame {
            member_id: "m".into(),
            display_name: "bob".into(),
            timestamp: "t".into(),
        })));
        assert_eq!(
            t,
            json!({"type": "typing", "member_id": "m", "display_name": "bob", "timestamp": "t"})
        );
        let closed = round_trip(ServerFrame::System(SystemFrame::RoomClosed(
            RoomClosedFrame {
                reason: CloseReason::OwnerOffline,
                message: CloseReason::OwnerOffline.message().into(),
                room_id: "r".into(),
                timestamp: "t".into(),
            },
        )));
        assert_eq!(closed["event"], "room_closed");
        assert_eq!(closed["reason"], "owner_offline");
        let err = round_trip(ServerFrame::error(ErrorCode::RateLimited, "slow down"));
        assert_eq!(
            err,
            json!({"type": "error", "code": "rate_limited", "message": "slow down"})
        );
    }

    #[test]
    fn conversation_events_round_trip_and_a_tombstone_has_no_content() {
        let tombstone = MessageFrame {
            content: None,
            deleted: true,
            ..message()
        };
        let json = round_trip(ServerFrame::Message(tombstone));
        assert_eq!(json["deleted"], true);
        assert!(json.get("text").is_none() && json.get("ciphertext").is_none());
        let reacted = MessageFrame {
            edited: true,
            reply_to: Some(7),
            reactions: vec![Reactions {
                emoji: "👍".into(),
                member_ids: vec!["a".into(), "b".into()],
            }],
            ..message()
        };
        let json = round_trip(ServerFrame::Message(reacted));
        assert_eq!(json["reactions"][0]["member_ids"][1], "b");
        assert_eq!(json["reply_to"], 7);
        let events = [
            ChatEvent::MessageEdited(MessageEditedFrame {
                id: 43,
                room_id: "r".into(),
                target: 42,
                member_id: "m".into(),
                display_name: "bob".into(),
                content: Some(Content::Text("fixed".into())),
                timestamp: "t".into(),
            }),
            ChatEvent::MessageDeleted(MessageDeletedFrame {
                id: 44,
                room_id: "r".into(),
                target: 42,
                member_id: "o".into(),
                display_name: "owner".into(),
                timestamp: "t".into(),
            }),
            ChatEvent::Reaction(ReactionFrame {
                id: 45,
                room_id: "r".into(),
                target: 42,
                emoji: "👍".into(),
                member_id: "m".into(),
                display_name: "bob".into(),
                on: true,
                timestamp: "t".into(),
            }),
        ];
        for (event, tag) in events
            .iter()
            .zip(["message_edited", "message_deleted", "reaction"])
        {
            let json = serde_json::to_string(event).expect("serializes");
            let value: serde_json::Value = serde_json::from_str(&json).expect("json");
            assert_eq!(value["type"], tag);
            assert_eq!(value["target"], 42);
            let back: ChatEvent = serde_json::from_str(&json).expect("parses");
            assert_eq!(&back, event);
            let bus: BusEvent = serde_json::from_str(&json).expect("a bus event");
            assert_eq!(serde_json::to_string(&bus).expect("serializes"), json);
        }
    }

    #[test]
    fn bus_events_are_client_frames_byte_for_byte() {
        let bus = serde_json::to_string(&BusEvent::Message(message())).expect("serializes");
        let client = serde_json::to_string(&ServerFrame::Message(message())).expect("serializes");
        assert_eq!(bus, client);
        let note = PresenceNote {
            event: PresenceEvent::UserOnline,
            reason: None,
            member: NotedMember {
                id: "m".into(),
                display_name: "bob".into(),
                role: Role::Member,
            },
            online_count: 3,
            at: 1_764_000_000_000,
        };
        let json = serde_json::to_string(&BusEvent::Presence(note.clone())).expect("serializes");
        assert_eq!(
            serde_json::from_str::<BusEvent>(&json).expect("parses"),
            BusEvent::Presence(note.clone())
        );
        assert_eq!(
            note.frame("r"),
            PresenceFrame {
                timestamp: crate::rfc3339(1_764_000_000_000),
                ..presence()
            }
        );
        let typing = RelayFrame::Typing(TypingFrame {
            member_id: "m".into(),
            display_name: "bob".into(),
            timestamp: "t".into(),
        });
        let bus = serde_json::to_string(&BusEvent::Relay(typing.clone())).expect("serializes");
        let client =
            serde_json::to_string(&ServerFrame::Relay(typing.clone())).expect("serializes");
        assert_eq!(bus, client);
        assert_eq!(
            serde_json::from_str::<BusEvent>(&bus).expect("parses"),
            BusEvent::Relay(typing)
        );
        let replaced = BusEvent::Replaced {
            member_id: "m".into(),
            session: 7,
        };
        let json = serde_json::to_string(&replaced).expect("serializes");
        assert_eq!(
            serde_json::from_str::<BusEvent>(&json).expect("parses"),
            replaced
        );
    }

    #[test]
    fn client_frames_parse_commands_and_plain_text() {
        assert_eq!(
            ClientFrame::parse(r#" {"type":"message","text":"hi","client_id":"c1","x":1}"#)
                .expect("parses"),
            ClientFrame::Message {
                text: Some("hi".into()),
                ciphertext: None,
                client_id: Some("c1".into()),
                reply_to: None
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"typing"}"#).expect("parses"),
            ClientFrame::Typing
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"leave"}"#).expect("parses"),
            ClientFrame::Leave
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"close_room"}"#).expect("parses"),
            ClientFrame::CloseRoom
        );
        assert_eq!(
            ClientFrame::parse("42").expect("parses"),
            ClientFrame::Message {
                text: Some("42".into()),
                ciphertext: None,
                client_id: None,
                reply_to: None
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"message","ciphertext":"AAAA"}"#).expect("parses"),
            ClientFrame::Message {
                text: None,
                ciphertext: Some("AAAA".into()),
                client_id: None,
                reply_to: None
            }
        );
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"type":"message","ciphertext":5}"#,
            r#"{"type":"message","text":5}"#,
            "{oops",
            "{}",
        ] {
            assert!(ClientFrame::parse(bad).is_err(), "{bad}");
        }
    }
}
