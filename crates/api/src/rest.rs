//! REST handlers (API.md, "REST"): each parses and authorizes its request, then calls the store
//! (through `AppState`) or, for what a member does, the command the WebSocket session calls too.

mod members;
mod rooms;

pub use self::members::*;
pub use self::rooms::*;
use crate::error::ApiError;
use crate::extract::{self, bearer, client_ip};
use crate::openapi::{
    BadCredentials, BadRequest, BadToken, Invalid, NotJson, RateLimited, RoomNotFound, RoomPath,
    Unavailable,
};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use protocol::frames::{ChatEvent, MessageFrame, ServerFrame};
use protocol::rest::{
    Ack, CreateRoomRequest, CreateRoomResponse, EditMessageRequest, ErrorBody, HistoryResponse,
    JoinRequest, JoinResponse, PostMessageRequest, ReactRequest, ResumeResponse, RoomDetails,
    Sealing, UpdateRoomRequest,
};
use protocol::{ErrorCode, Millis, Role, limits, rfc3339, seconds_until, text};
use realtime::{Change, Draft};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::IntErrorKind;
use store::secret::{TokenHash, new_id, new_token};
use store::{Actor, AttemptLimits, Credential, Limit, Member, Room, RoomChange, RoomView, Ticket};

type Data = web::Data<AppState>;
const MINUTE_MS: u64 = 60_000;

fn text_field(
    result: Result<String, text::TextError>,
    field: &str,
    max: usize,
) -> Result<String, ApiError> {
    result.map_err(|e| ApiError::invalid(e.describe(field, max)))
}

pub(crate) async fn load_room(state: &AppState, room_id: &str) -> Result<RoomView, ApiError> {
    state
        .store
        .room(room_id)
        .await?
        .ok_or_else(ApiError::room_not_found)
}

/// Checks a password against the room, within the per-IP-and-room attempt limit.
async fn check_password(
    state: &AppState,
    view: &RoomView,
    ip: IpAddr,
    password: Option<&str>,
) -> Result<(), ApiError> {
    let Some(hash) = &view.room.password_hash else {
        return Ok(());
    };
    let Some(password) = password else {
        return Err(ApiError::new(
            ErrorCode::PasswordRequired,
            "This room needs a password",
        ));
    };
    let store = &state.store;
    let client = ip.to_string();
    let l = &state.config.limits;
    let limits = AttemptLimits {
        per_client: l.password_attempts_per_minute,
        per_room: l.room_password_attempts_per_minute,
        window_ms: MINUTE_MS,
    };
    // The attempt is taken before argon2 runs, in one store step: parallel guesses each need
    // one of their own, and a right password gives its back.
    if let Limit::Reached(ms) = store
        .reserve_password_attempt(&view.room.id, &client, limits)
        .await?
    {
        state.metrics.rejected("password");
        return Err(ApiError::rate_limited("Too many wrong passwords", ms));
    }
    match state
        .passwords
        .verify(password.to_owned(), hash.clone())
        .await
    {
        Ok(false) => {}
        right_or_unchecked => {
            store
                .refund_password_attempt(&view.room.id, &client)
                .await?;
            return right_or_unchecked.map(|_| ());
        }
    }
    Err(ApiError::new(ErrorCode::InvalidPassword, "Wrong password"))
}

/// Read access: open rooms need nothing; password rooms need `X-Room-Password` or a bearer
/// owner or resume token.
async fn authorize_read(
    req: &HttpRequest,
    ip: IpAddr,
    state: &AppState,
    view: &RoomView,
) -> Result<(), ApiError> {
    if view.room.password_hash.is_none() {
        return Ok(());
    }
    if let Some(token) = bearer(req) {
        return match state
            .store
            .authenticate(&view.room.id, &TokenHash::of(token))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(ApiError::unauthorized("Invalid or expired token")),
        };
    }
    let password = extract::room_password(req)?;
    check_password(state, view, ip, password).await
}

/// The member a bearer token acts as (an owner token acts as the owner member once it joined).
async fn acting_member(
    req: &HttpRequest,
    state: &AppState,
    view: &RoomView,
) -> Result<Member, ApiError> {
    let token = bearer(req)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <resume_token> required"))?;
    match state
        .store
        .authenticate(&view.room.id, &TokenHash::of(token))
        .await?
    {
        Some(Credential::Member(member)) => Ok(member),
        // The owner member, online or not: a script with the owner token acts as it without
        // ever connecting (and is not counted online for it).
        Some(Credential::Owner) => Ok(view
            .members
            .iter()
            .find(|m| m.role == Role::Owner)
            .cloned()
            .unwrap_or_else(|| Member {
                id: view.room.owner_member_id.clone(),
                display_name: view.room.owner_name.clone(),
                role: Role::Owner,
                connected_at: state.store.now(),
            })),
        None => Err(ApiError::unauthorized("Invalid or expired token")),
    }
}

/// A per-client limit counted in the store, so every instance shares it.
struct PerClient {
    /// The counter's key, before `:<client>`.
    key: &'static str,
    /// The label of `ephemera_rejected_requests`.
    metric: &'static str,
    refusal: &'static str,
}

const CREATES: PerClient = PerClient {
    key: "create",
    metric: "room_create",
    refusal: "Too many rooms created",
};
const JOINS: PerClient = PerClient {
    key: "join",
    metric: "join",
    refusal: "Too many joins",
};
const READS: PerClient = PerClient {
    key: "read",
    metric: "read",
    refusal: "Too many reads",
};

/// Counts one request of `ip` against `limit` a minute; past it, `429` with `Retry-After`.
async fn per_client_limit(
    state: &AppState,
    ip: IpAddr,
    which: PerClient,
    limit: u32,
) -> Result<(), ApiError> {
    if let Limit::Reached(ms) = state
        .store
        .rate_hit(&format!("{}:{ip}", which.key), limit, MINUTE_MS)
        .await?
    {
        state.metrics.rejected(which.metric);
        return Err(ApiError::rate_limited(which.refusal, ms));
    }
    Ok(())
}

/// When a ticket issued now expires (the ticket lifetime).
pub(crate) fn ticket_expiry(state: &AppState) -> Millis {
    state.store.now() + state.config.ticket_ttl.as_millis() as Millis
}

/// Stores a fresh single-use ticket for `grant`; returns it.
pub(crate) async fn issue_ticket(
    state: &AppState,
    room_id: &str,
    grant: Ticket,
) -> Result<String, ApiError> {
    let ticket = new_token();
    state
        .store
        .issue_ticket(room_id, TokenHash::of(&ticket), grant)
        .await?;
    Ok(ticket)
}

/// An integer query parameter (an `i64`, as `/openapi.json` documents it).
fn query_number(query: &HashMap<String, String>, field: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = query.get(field) else {
        return Ok(None);
    };
    value.trim().parse::<i64>().map(Some).map_err(|e| {
        ApiError::invalid(match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                format!("{field} must be between {} and {}", i64::MIN, i64::MAX)
            }
            _ => format!("{field} must be an integer"),
        })
    })
}
