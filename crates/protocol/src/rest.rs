//! REST request and response bodies (API.md, "REST").
//!
//! Requests keep every field optional but the required ones, so that a missing or wrongly typed
//! field is reported by name; ranges are checked by the server against its configuration.

use crate::frames::ChatEvent;
use crate::{ErrorCode, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// Text fields carry the contract's text rules (`crate::text`) as patterns: lengths count
// characters after trimming whitespace, and control characters are refused (message text may
// hold `\n` and `\t`). In them, `[\t\n…\u3000]` is whitespace as Rust's `trim` sees it, the next
// class a character that is neither whitespace nor control, `[^\u0000-\u001F\u007F-\u009F]`
// any non-control character. A test checks each pattern against `crate::text`.

/// `POST /rooms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"owner_name": "alice", "name": "Standup", "expiry_seconds": 600}))]
pub struct CreateRoomRequest {
    #[schema(
        pattern = r"^[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF](?:[^\u0000-\u001F\u007F-\u009F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]{0,30}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF])?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub owner_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\u0000-\u001F\u007F-\u009F]{0,78}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?)?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub name: Option<String>,
    /// Argon2id-hashed at once; empty or absent: an open room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(?:[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\u0000-\u001F\u007F-\u009F]{0,126}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*)?$"
    )]
    pub password: Option<String>,
    /// Default 3600; bounds: `EPHEMERA_MIN_EXPIRY_SECONDS`, `EPHEMERA_MAX_EXPIRY_SECONDS`.
    #[serde(
        default,
        deserialize_with = "whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 60, maximum = 86400)]
    pub expiry_seconds: Option<u64>,
    /// Default 20.
    #[serde(
        default,
        deserialize_with = "whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_users: Option<u32>,
    /// Default true: the room ends when the owner leaves or stays offline past the grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_on_owner_offline: Option<bool>,
    /// Default false: whether members may destroy the room too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_can_destroy: Option<bool>,
    /// How long a room that ends with its owner waits for the owner to come back once its
    /// connection is gone (a phone that locked its screen). Default
    /// `EPHEMERA_OWNER_GRACE_SECONDS` (120); bounds: the presence grace (10) to 3600.
    #[serde(
        default,
        deserialize_with = "whole",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 10, maximum = 3600)]
    pub owner_grace_seconds: Option<u64>,
    /// Default false: an end-to-end encrypted room, whose messages are `ciphertext` under a key
    /// only its link's fragment carries. Needs `key_check`; its name, if any, is
    /// `name_ciphertext` (`name` must be absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// In an encrypted room: the room name encrypted with the room key (additional data
    /// `ephemera/1|name`), unpadded base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        min_length = 39,
        max_length = 464
    )]
    pub name_ciphertext: Option<String>,
    /// In an encrypted room, required: HMAC-SHA-256 over `ephemera/1` under the key
    /// HKDF-SHA-256 derives from the room key (info `ephemera key check`), unpadded base64url,
    /// so a page can tell a wrong key from a broken message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub key_check: Option<String>,
}

/// A whole number as JSON Schema counts one: `600` and `600.0` alike.
fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
}

/// `201` answer to `POST /rooms`. The only time `owner_token` is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateRoomResponse {
    pub room_id: String,
    pub name: Option<String>,
    pub owner_name: String,
    /// Shown only here, once: the owner's credential.
    pub owner_token: String,
    pub ws_url: String,
    pub join_url: String,
    pub created_at: String,
    pub expires_at: String,
    pub expires_in: u64,
    pub max_users: u32,
    pub has_password: bool,
    pub destroy_on_owner_offline: bool,
    pub members_can_destroy: bool,
    pub owner_grace_seconds: u64,
    #[serde(flatten)]
    pub sealing: Sealing,
    /// The member id the owner acts as, whether or not it has joined yet: what an encrypting
    /// client binds the owner's messages to.
    pub owner_member_id: String,
}

/// Whether a room is end-to-end encrypted, and what its clients need to check their key and
/// read its name: in `POST /rooms`'s answer and in details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sealing {
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
}

/// One member in `online_users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OnlineUser {
    pub member_id: String,
    pub display_name: String,
    pub role: Role,
    pub connected_at: String,
}

/// `GET /rooms/{room_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomDetails {
    pub room_id: String,
    pub name: Option<String>,
    pub owner_name: String,
    pub created_at: String,
    pub expires_at: String,
    pub expires_in: u64,
    pub max_users: u32,
    pub online_users_count: usize,
    pub online_users: Vec<OnlineUser>,
    pub has_password: bool,
    pub is_full: bool,
    pub destroy_on_owner_offline: bool,
    pub members_can_destroy: bool,
    pub owner_grace_seconds: u64,
    /// Whether the owner locked the room (it takes no new members).
    pub locked: bool,
    /// While the owner is away in a room that ends with its owner: when it ends unless the
    /// owner returns; null otherwise.
    pub owner_away_until: Option<String>,
    #[serde(flatten)]
    pub sealing: Sealing,
    /// The member id the owner acts as (see `POST /rooms`; a handover changes it), so a client
    /// encrypting as the owner can learn it from the room's link and the owner token alone.
    pub owner_member_id: String,
}

/// `PATCH /rooms/{room_id}` (owner token): what to change; at least one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"locked": true}))]
pub struct UpdateRoomRequest {
    /// Lock (no new members) or unlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// The room's new end (RFC 3339), within `[now + EPHEMERA_MIN_EXPIRY_SECONDS, created_at +
    /// EPHEMERA_MAX_EXPIRY_SECONDS]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `POST /rooms/{room_id}/join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"display_name": "bob", "password": "s3cret"}))]
pub struct JoinRequest {
    /// Required unless the owner joins with its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF](?:[^\u0000-\u001F\u007F-\u009F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]{0,30}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF])?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `200` answer to `POST /rooms/{room_id}/join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JoinResponse {
    /// Single use, short lived.
    pub ticket: String,
    pub ws_url: String,
    pub display_name: String,
    pub role: Role,
    pub expires_at: String,
    pub expires_in: u64,
}

/// `200` answer to `POST /rooms/{room_id}/resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResumeResponse {
    /// Single use, short lived: `resume_ticket` on the WebSocket URL.
    pub ticket: String,
    /// The WebSocket URL with the ticket; add `&last_id=<n>`.
    pub ws_url: String,
    pub expires_at: String,
    pub expires_in: u64,
}

/// `GET /rooms/{room_id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryResponse {
    /// Kept events with `id > after` (messages as they are now, edits, deletions, reactions),
    /// oldest first, as broadcast (`"type"` included).
    pub messages: Vec<ChatEvent>,
    /// The room's latest event id (0 before the first).
    pub last_id: u64,
}

/// `POST /rooms/{room_id}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"text": "hello", "client_id": "bot-1"}))]
pub struct PostMessageRequest {
    /// In an open room: the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]{0,1998}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub text: Option<String>,
    /// In an encrypted room, in place of `text`: unpadded base64url of IV ‖ ciphertext ‖ tag
    /// (AES-256-GCM, additional data `ephemera/1|<room_id>|<member_id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        min_length = 39,
        max_length = 10704
    )]
    pub ciphertext: Option<String>,
    /// Echoed back in the broadcast message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[^\u0000-\u001F\u007F-\u009F]{0,62}[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub client_id: Option<String>,
    /// The id of an earlier message of the room this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
}

/// `PATCH /rooms/{room_id}/messages/{message_id}`: the message's new content (its author only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"text": "hello, corrected"}))]
pub struct EditMessageRequest {
    /// In an open room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// In an encrypted room, in place of `text` (as in `PostMessageRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
}

/// `POST /rooms/{room_id}/messages/{message_id}/reactions`: toggles the member's `emoji`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"emoji": "👍"}))]
pub struct ReactRequest {
    /// One emoji (as Unicode lists them, skin tones and sequences included).
    pub emoji: String,
}

/// A plain acknowledgement: `{"message": "Left the room"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ack {
    pub message: String,
}

/// Every error response: `{"detail": "...", "code": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
    pub code: ErrorCode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
        let json = serde_json::to_string(&value).expect("serializes");
        let back: T = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, value, "{json}");
    }

    #[test]
    fn bodies_round_trip() {
        round_trip(CreateRoomRequest {
            owner_name: "alice".into(),
            name: Some("Standup".into()),
            password: Some("s3cret".into()),
            expiry_seconds: Some(600),
            max_users: Some(10),
            destroy_on_owner_offline: Some(true),
            members_can_destroy: Some(false),
            owner_grace_seconds: Some(120),
            encrypted: Some(true),
            name_ciphertext: Some("n".repeat(39)),
            key_check: Some("k".repeat(43)),
        });
        round_trip(CreateRoomResponse {
            room_id: "V1StGXR8_Z5jdHi6B-myT".into(),
            name: None,
            owner_name: "alice".into(),
            owner_token: "t".into(),
            ws_url: "ws://h/rooms/x/ws".into(),
            join_url: "http://h/r/x".into(),
            created_at: "2026-11-21T12:34:56.789Z".into(),
            expires_at: "2026-11-21T13:34:56.789Z".into(),
            expires_in: 3600,
            max_users: 20,
            has_password: false,
            destroy_on_owner_offline: true,
            members_can_destroy: false,
            owner_grace_seconds: 120,
            sealing: Sealing {
                encrypted: true,
                name_ciphertext: None,
                key_check: Some("k".repeat(43)),
            },
            owner_member_id: "o".into(),
        });
        round_trip(RoomDetails {
            room_id: "r".into(),
            name: Some("n".into()),
            owner_name: "alice".into(),
            created_at: "c".into(),
            expires_at: "e".into(),
            expires_in: 5,
            max_users: 3,
            online_users_count: 1,
            online_users: vec![OnlineUser {
                member_id: "m".into(),
                display_name: "alice".into(),
                role: Role::Owner,
                connected_at: "c".into(),
            }],
            has_password: true,
            is_full: false,
            destroy_on_owner_offline: true,
            members_can_destroy: true,
            owner_grace_seconds: 120,
            locked: true,
            owner_away_until: Some("a".into()),
            sealing: Sealing::default(),
            owner_member_id: "o".into(),
        });
        round_trip(JoinRequest {
            display_name: Some("bob".into()),
            password: None,
        });
        round_trip(JoinResponse {
            ticket: "t".into(),
            ws_url: "ws://x".into(),
            display_name: "bob".into(),
            role: Role::Member,
            expires_at: "e".into(),
            expires_in: 60,
        });
        round_trip(HistoryResponse {
            messages: vec![],
            last_id: 0,
        });
        round_trip(PostMessageRequest {
            text: Some("hi".into()),
            ciphertext: None,
            client_id: Some("c-1".into()),
            reply_to: Some(3),
        });
        round_trip(Ack {
            message: "Left the room".into(),
        });
        round_trip(ErrorBody {
            detail: "no".into(),
            code: ErrorCode::RoomFull,
        });
    }

    #[test]
    fn only_owner_name_is_required_and_unknown_fields_are_ignored() {
        let req: CreateRoomRequest =
            serde_json::from_str(r#"{"owner_name":"a","surprise":1,"name":null}"#).expect("parses");
        assert_eq!(
            req,
            CreateRoomRequest {
                owner_name: "a".into(),
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<CreateRoomRequest>("{}").is_err());
    }

    /// Each text field's OpenAPI pattern accepts exactly what `crate::text` accepts.
    #[test]
    fn text_patterns_match_the_text_rules() {
        use crate::{limits, text};
        use utoipa::PartialSchema;
        type Rule = fn(&str) -> bool;
        let name: Rule = |s| text::display_name(s, limits::DISPLAY_NAME_MAX_CHARS).is_ok();
        let fields: [(serde_json::Value, &str, Rule, usize); 6] = [
            (
                schema::<CreateRoomRequest>(),
                "owner_name",
                name,
                limits::DISPLAY_NAME_MAX_CHARS,
            ),
            (
                schema::<CreateRoomRequest>(),
                "name",
                |s| text::room_name(s, limits::ROOM_NAME_MAX_CHARS).is_ok(),
                limits::ROOM_NAME_MAX_CHARS,
            ),
            (
                schema::<CreateRoomRequest>(),
                "password",
                |s| text::password(s, limits::PASSWORD_MAX_CHARS).is_ok(),
                limits::PASSWORD_MAX_CHARS,
            ),
            (
                schema::<JoinRequest>(),
                "display_name",
                name,
                limits::DISPLAY_NAME_MAX_CHARS,
            ),
            (
                schema::<PostMessageRequest>(),
                "text",
                |s| text::message(s, limits::MAX_MESSAGE_CHARS).is_ok(),
                limits::MAX_MESSAGE_CHARS,
            ),
            (
                schema::<PostMessageRequest>(),
                "client_id",
                |s| text::name(s, limits::CLIENT_ID_MAX_CHARS).is_ok(),
                limits::CLIENT_ID_MAX_CHARS,
            ),
        ];
        fn schema<T: PartialSchema>() -> serde_json::Value {
            serde_json::to_value(T::schema()).expect("schema")
        }
        for (schema, field, rule, max) in fields {
            let pattern = schema["properties"][field]["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{field} has a pattern"));
            let regex = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 28)
                .build()
                .expect("pattern compiles");
            let samples = [
                String::new(),
                " ".into(),
                "a".into(),
                " a ".into(),
                "a b".into(),
                "\ta\n".into(),
                "\u{85}a\u{a0}\u{3000}".into(),
                "a\u{7}b".into(),
                "a\nb".into(),
                "a\tb".into(),
                "a\rb".into(),
                "\u{1c}a".into(),
                "a\u{9f}".into(),
                "x".repeat(max),
                "x".repeat(max + 1),
                format!(" {} ", "x".repeat(max)),
                format!("\n{}\t", "é".repeat(max)),
                "é".repeat(max + 1),
                format!("a{}b", " ".repeat(max - 2)),
                "Ali\u{200b}ce".into(),
                "\u{202e}ecila".into(),
                "a\u{ad}".into(),
                "\u{3164}".into(),
                "a\u{e0041}b".into(),
                "a\u{1d173}".into(),
                "❤\u{fe0f}".into(),
                "a\u{2065}b".into(),
            ];
            for sample in samples {
                assert_eq!(
                    regex.is_match(&sample),
                    rule(&sample),
                    "{field}: {sample:?}"
                );
            }
        }
    }

    #[test]
    fn ciphertext_schemas_match_the_ciphertext_rule() {
        use crate::{limits, text};
        use utoipa::PartialSchema;
        let fields = [
            (
                serde_json::to_value(CreateRoomRequest::schema()).expect("schema"),
                "name_ciphertext",
                limits::ROOM_NAME_MAX_CHARS,
            ),
            (
                serde_json::to_value(PostMessageRequest::schema()).expect("schema"),
                "ciphertext",
                limits::MAX_MESSAGE_CHARS,
            ),
        ];
        for (schema, field, chars) in fields {
            let property = &schema["properties"][field];
            let max = text::sealed_max(chars);
            assert_eq!(property["maxLength"], max, "{field}");
            let min = property["minLength"].as_u64().expect("minLength") as usize;
            let pattern = property["pattern"].as_str().expect("pattern");
            let regex = regex::Regex::new(pattern).expect("pattern compiles");
            let lengths = (0..min + 6).chain(max - 5..max + 6);
            for sample in lengths.map(|n| "A".repeat(n)).chain([
                "A=".repeat(20),
                "A+".repeat(20),
                "é".repeat(40),
            ]) {
                let schema_allows =
                    regex.is_match(&sample) && (min..=max).contains(&sample.chars().count());
                assert_eq!(
                    schema_allows,
                    text::sealed(&sample, max).is_ok(),
                    "{field}: {} characters of {:?}",
                    sample.len(),
                    sample.chars().next()
                );
            }
        }
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        let req: CreateRoomRequest =
            serde_json::from_str(r#"{"owner_name":"a","expiry_seconds":600.0,"max_users":5}"#)
                .expect("parses");
        assert_eq!((req.expiry_seconds, req.max_users), (Some(600), Some(5)));
        for bad in [r#"600.5"#, "-1", "1e30", r#""600""#] {
            let json = format!(r#"{{"owner_name":"a","max_users":{bad}}}"#);
            assert!(
                serde_json::from_str::<CreateRoomRequest>(&json).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn numeric_bounds_are_the_limits() {
        use crate::limits;
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(CreateRoomRequest::schema()).expect("schema");
        let bound = |field: &str, key: &str| schema["properties"][field][key].as_u64();
        assert_eq!(
            bound("expiry_seconds", "minimum"),
            Some(limits::MIN_EXPIRY_SECONDS)
        );
        assert_eq!(
            bound("expiry_seconds", "maximum"),
            Some(limits::MAX_EXPIRY_SECONDS)
        );
        assert_eq!(
            bound("max_users", "maximum"),
            Some(u64::from(limits::MAX_USERS_LIMIT))
        );
    }

    #[test]
    fn error_body_has_detail_and_code() {
        let body = ErrorBody {
            detail: "Room not found".into(),
            code: ErrorCode::RoomNotFound,
        };
        assert_eq!(
            serde_json::to_value(&body).expect("serializes"),
            serde_json::json!({"detail": "Room not found", "code": "room_not_found"})
        );
    }
}
