//! Wire types of Ephemera: everything that crosses a process boundary.
//!
//! - [`rest`]: REST request and response bodies.
//! - [`frames`]: WebSocket frames, both directions, and the per-room bus events.
//! - [`ErrorCode`] and [`close`]: the machine-readable error codes and WebSocket close codes,
//!   each mapped once to its HTTP status and close code.
//! - [`limits`]: the contract's defaults and hard bounds.
//! - [`text`]: the contract's rules for names, passwords and message text.
//!
//! Architecture invariant: this crate knows nothing of Redis, actix or tokio.

pub mod frames;
pub mod rest;
pub mod text;

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use utoipa::ToSchema;

/// Milliseconds since the Unix epoch: the one clock type every crate shares.
pub type Millis = u64;

/// Now, in [`Millis`].
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// RFC 3339 in UTC with milliseconds, as every timestamp of the contract.
pub fn rfc3339(ms: Millis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Reads a timestamp written by [`rfc3339`].
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let at = humantime::parse_rfc3339(text).ok()?;
    at.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as Millis)
}

/// Whole seconds left until `deadline` (rounded up, never negative).
pub fn seconds_until(deadline: Millis, now: Millis) -> u64 {
    deadline.saturating_sub(now).div_ceil(1000)
}

/// The contract's defaults and hard bounds.
pub mod limits {
    pub const DEFAULT_EXPIRY_SECONDS: u64 = 3600;
    pub const MIN_EXPIRY_SECONDS: u64 = 60;
    pub const MAX_EXPIRY_SECONDS: u64 = 86_400;
    pub const DEFAULT_MAX_USERS: u32 = 20;
    pub const MAX_USERS_LIMIT: u32 = 1000;
    pub const ROOM_NAME_MAX_CHARS: usize = 80;
    pub const DISPLAY_NAME_MAX_CHARS: usize = 32;
    pub const PASSWORD_MAX_CHARS: usize = 128;
    pub const MAX_MESSAGE_CHARS: usize = 2000;
    /// Longest `client_id` echoed back with a message.
    pub const CLIENT_ID_MAX_CHARS: usize = 64;
    pub const MAX_FRAME_BYTES: usize = 16_384;
    pub const HISTORY_LIMIT: usize = 100;
    pub const TICKET_TTL_SECONDS: u64 = 60;
    pub const PRESENCE_GRACE_SECONDS: u64 = 10;
    /// How long a room that ends with its owner waits for it, by default
    /// (`EPHEMERA_OWNER_GRACE_SECONDS`); a room may ask for the presence grace up to the most.
    pub const OWNER_GRACE_SECONDS: u64 = 120;
    pub const MAX_OWNER_GRACE_SECONDS: u64 = 3600;
    pub const MESSAGE_RATE_PER_SECOND: u32 = 10;
    pub const MESSAGE_BURST: u32 = 20;
    pub const ROOM_CREATE_PER_MINUTE: u32 = 30;
    pub const PASSWORD_ATTEMPTS_PER_MINUTE: u32 = 10;
    /// Wrong passwords per room per minute over every client together.
    pub const ROOM_PASSWORD_ATTEMPTS_PER_MINUTE: u32 = 100;
    pub const PING_INTERVAL_SECONDS: u64 = 20;
    /// How long after sending its author may edit a message (`EPHEMERA_EDIT_WINDOW_SECONDS`).
    pub const EDIT_WINDOW_SECONDS: u64 = 900;
    /// Distinct emoji one message carries at most.
    pub const MAX_EMOJI_PER_MESSAGE: usize = 20;
    /// Minimum time between two `typing` frames of one member.
    pub const TYPING_INTERVAL_MS: u64 = 2000;
    /// Length of `room_id` (nanoid alphabet, ~126 bits).
    pub const ROOM_ID_LEN: usize = 21;
}

/// WebSocket close codes of the contract.
pub mod close {
    pub const LEFT: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_LARGE: u16 = 1009;
    pub const SERVER_ERROR: u16 = 1011;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const REPLACED: u16 = 4000;
    pub const EXPIRED: u16 = 4001;
    pub const CLOSED: u16 = 4002;
    pub const OWNER_OFFLINE: u16 = 4003;
    pub const NOT_FOUND: u16 = 4004;
    pub const FELL_BEHIND: u16 = 4008;
    /// Removed by the owner, or barred from the room: stay closed.
    pub const REMOVED: u16 = 4010;
    pub const RATE_LIMITED: u16 = 4029;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const ROOM_FULL: u16 = 4403;
    pub const NAME_TAKEN: u16 = 4409;
    pub const INVALID_NAME: u16 = 4422;
    /// The room is locked: it takes no new members.
    pub const LOCKED: u16 = 4423;
}

/// A JSON error as a client reads it: serde_json's sentence without its " at line L column C",
/// which says nothing to someone who sent one frame or one body.
pub fn json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Whether `s` has the shape of a room id (nanoid: 21 of `A-Za-z0-9_-`).
pub fn is_room_id(s: &str) -> bool {
    s.len() == limits::ROOM_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Machine-readable error codes (`code` in error bodies and `error` frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    PasswordInUrl,
    PasswordRequired,
    InvalidPassword,
    Unauthorized,
    Forbidden,
    RoomNotFound,
    NotFound,
    MethodNotAllowed,
    /// A request body that is not `application/json`.
    UnsupportedMediaType,
    NameTaken,
    RoomFull,
    /// Removed from this room by its owner, or barred from it (address or name).
    Banned,
    /// The room is locked: no new members.
    RoomLocked,
    RateLimited,
    /// A room over its room-wide message or join rate (not the sender's fault: no strike).
    RoomBusy,
    Unavailable,
    Internal,
    // WebSocket-only codes.
    InvalidFrame,
    EmptyMessage,
    MessageTooLong,
}

impl ErrorCode {
    /// The HTTP status this code is answered with over REST.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson | PasswordInUrl | InvalidFrame => 400,
            PasswordRequired | InvalidPassword | Unauthorized => 401,
            Forbidden | RoomFull | Banned | RoomLocked => 403,
            RoomNotFound | NotFound => 404,
            MethodNotAllowed => 405,
            UnsupportedMediaType => 415,
            NameTaken => 409,
            InvalidRequest | EmptyMessage | MessageTooLong => 422,
            RateLimited | RoomBusy => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    /// The close code a WebSocket refused for this reason is closed with.
    pub fn close_code(self) -> u16 {
        use ErrorCode::*;
        match self {
            RoomNotFound | NotFound => close::NOT_FOUND,
            PasswordRequired | InvalidPassword | Unauthorized | Forbidden => close::UNAUTHORIZED,
            RoomFull => close::ROOM_FULL,
            Banned => close::REMOVED,
            RoomLocked => close::LOCKED,
            NameTaken => close::NAME_TAKEN,
            InvalidRequest | EmptyMessage | MessageTooLong => close::INVALID_NAME,
            RateLimited => close::RATE_LIMITED,
            Unavailable | RoomBusy => close::TRY_AGAIN_LATER,
            InvalidJson | PasswordInUrl | InvalidFrame | MethodNotAllowed
            | UnsupportedMediaType | Internal => close::SERVER_ERROR,
        }
    }

    /// The sentence sent with a refusal when nothing more specific is known.
    pub fn sentence(self) -> &'static str {
        use ErrorCode::*;
        match self {
            RoomNotFound => "Room not found",
            NameTaken => "That display name is taken in this room",
            RoomFull => "Room is full",
            Banned => "You were removed from this room by its owner",
            RoomLocked => "This room is locked: it takes no new members",
            RateLimited => "Too many requests, slow down",
            RoomBusy => "This room is busy, try again in a moment",
            Unauthorized => "Invalid or expired credentials",
            PasswordRequired => "This room needs a password: join with a ticket",
            Unavailable => "Service temporarily unavailable, try again",
            _ => "Request refused",
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            InvalidRequest => "invalid_request",
            PasswordInUrl => "password_in_url",
            PasswordRequired => "password_required",
            InvalidPassword => "invalid_password",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            RoomNotFound => "room_not_found",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            UnsupportedMediaType => "unsupported_media_type",
            NameTaken => "name_taken",
            RoomFull => "room_full",
            Banned => "banned",
            RoomLocked => "room_locked",
            RateLimited => "rate_limited",
            RoomBusy => "room_busy",
            Unavailable => "unavailable",
            Internal => "internal",
            InvalidFrame => "invalid_frame",
            EmptyMessage => "empty_message",
            MessageTooLong => "message_too_long",
        }
    }
}

/// Why a room ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Expired,
    Closed,
    OwnerOffline,
}

impl CloseReason {
    pub fn close_code(self) -> u16 {
        match self {
            CloseReason::Expired => close::EXPIRED,
            CloseReason::Closed => close::CLOSED,
            CloseReason::OwnerOffline => close::OWNER_OFFLINE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CloseReason::Expired => "Room has expired",
            CloseReason::Closed => "Room has been closed by owner",
            CloseReason::OwnerOffline => "Room owner went offline",
        }
    }
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_str() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::PasswordInUrl,
            ErrorCode::RoomNotFound,
            ErrorCode::MessageTooLong,
            ErrorCode::Unavailable,
        ] {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::InvalidJson.http_status(), 400);
        assert_eq!(ErrorCode::InvalidPassword.http_status(), 401);
        assert_eq!(ErrorCode::RoomFull.http_status(), 403);
        assert_eq!(ErrorCode::RoomNotFound.http_status(), 404);
        assert_eq!(ErrorCode::NameTaken.http_status(), 409);
        assert_eq!(ErrorCode::InvalidRequest.http_status(), 422);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::Unavailable.http_status(), 503);
        assert_eq!(ErrorCode::RoomFull.close_code(), close::ROOM_FULL);
        assert_eq!(ErrorCode::NameTaken.close_code(), close::NAME_TAKEN);
        assert_eq!(ErrorCode::Unauthorized.close_code(), close::UNAUTHORIZED);
        assert_eq!(ErrorCode::RoomNotFound.close_code(), close::NOT_FOUND);
    }

    #[test]
    fn timestamps_are_rfc3339_millis_utc() {
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(
            parse_rfc3339("2026-11-18T11:06:40.123Z"),
            Some(1_795_000_000_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(seconds_until(10_001, 9_000), 2);
        assert_eq!(seconds_until(9_000, 10_000), 0);
    }
}
