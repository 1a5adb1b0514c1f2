//! REST request and response bodies (API.md, "REST").
//!
//! Requests keep every field optional but the required ones, so that a missing or wrongly typed
//! field is reported by name; ranges are checked by the server against its configuration.

use crate::frames::MessageFrame;
use crate::{ErrorCode, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /rooms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"owner_name": "alice", "name": "Standup", "expiry_seconds": 600}))]
pub struct CreateRoomRequest {
    #[schema(min_length = 1, max_length = 32)]
    pub owner_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 80)]
    pub name: Option<String>,
    /// Argon2id-hashed at once; empty or absent: an open room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub password: Option<String>,
    /// Default 3600; bounds: `EPHEMERA_MIN_EXPIRY_SECONDS`, `EPHEMERA_MAX_EXPIRY_SECONDS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 86400)]
    pub expiry_seconds: Option<u64>,
    /// Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_users: Option<u32>,
    /// Default true: the room ends when the owner leaves or stays offline past the grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_on_owner_offline: Option<bool>,
    /// Default false: whether members may destroy the room too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_can_destroy: Option<bool>,
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
}

/// `POST /rooms/{room_id}/join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"display_name": "bob", "password": "s3cret"}))]
pub struct JoinRequest {
    /// Required unless the owner joins with its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 32)]
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

/// `GET /rooms/{room_id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryResponse {
    /// Kept messages with `id > after`, oldest first.
    pub messages: Vec<MessageFrame>,
    /// The room's latest message id (0 before the first).
    pub last_id: u64,
}

/// `POST /rooms/{room_id}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"text": "hello", "client_id": "bot-1"}))]
pub struct PostMessageRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub text: String,
    /// Echoed back in the broadcast message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub client_id: Option<String>,
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
            text: "hi".into(),
            client_id: Some("c-1".into()),
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
