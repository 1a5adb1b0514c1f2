//! REST handlers (API.md, "REST"): each parses and authorizes its request, then calls the store
//! (through `AppState`) or, for what a member does, the command the WebSocket session calls too.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{self, bearer, client_ip};
use crate::openapi::{
    BadCredentials, BadRequest, BadToken, Invalid, NotJson, RateLimited, RoomNotFound, RoomPath,
    Unavailable,
};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use protocol::frames::MessageFrame;
use protocol::frames::ServerFrame;
use protocol::rest::{
    Ack, CreateRoomRequest, CreateRoomResponse, ErrorBody, HistoryResponse, JoinRequest,
    JoinResponse, PostMessageRequest, ResumeResponse, RoomDetails,
};
use protocol::{ErrorCode, Millis, Role, limits, rfc3339, seconds_until, text};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::IntErrorKind;
use store::secret::{TokenHash, new_id, new_token};
use store::{AttemptLimits, Credential, Limit, Member, Room, RoomView, Ticket};

type Data = web::Data<AppState>;
const MINUTE_MS: u64 = 60_000;

fn text_field(
    result: Result<String, text::TextError>,
    field: &str,
    max: usize,
) -> Result<String, ApiError> {
    result.map_err(|e| ApiError::invalid(e.describe(field, max)))
}

/// Create a room.
///
/// The creator is its owner; `owner_token` is shown only in this answer.
#[utoipa::path(
    tag = "rooms",
    request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "Created", body = CreateRoomResponse),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms")]
pub async fn create_room(
    req: HttpRequest,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let s = &state.config.settings;
    let ip = client_ip(&req, &state.config);
    per_client_limit(&state, ip, CREATES, s.room_create_per_minute).await?;
    let body: CreateRoomRequest = extract::json(&req, payload).await?;
    let max = limits::DISPLAY_NAME_MAX_CHARS;
    let owner_name = text_field(text::display_name(&body.owner_name, max), "owner_name", max)?;
    let name = match body
        .name
        .as_deref()
        .map(|n| text::room_name(n, limits::ROOM_NAME_MAX_CHARS))
    {
        Some(Err(e)) => {
            return Err(ApiError::invalid(
                e.describe("name", limits::ROOM_NAME_MAX_CHARS),
            ));
        }
        Some(Ok(name)) => name,
        None => None,
    };
    let password = match body
        .password
        .as_deref()
        .map(|p| text::password(p, limits::PASSWORD_MAX_CHARS))
    {
        Some(Err(e)) => {
            return Err(ApiError::invalid(
                e.describe("password", limits::PASSWORD_MAX_CHARS),
            ));
        }
        Some(Ok(password)) => password,
        None => None,
    };
    let expiry = body.expiry_seconds.unwrap_or(s.default_expiry_seconds);
    if !(s.min_expiry_seconds..=s.max_expiry_seconds).contains(&expiry) {
        return Err(ApiError::invalid(format!(
            "expiry_seconds must be between {} and {}",
            s.min_expiry_seconds, s.max_expiry_seconds
        )));
    }
    let max_users = body.max_users.unwrap_or(s.default_max_users);
    if !(1..=s.max_users_limit).contains(&max_users) {
        return Err(ApiError::invalid(format!(
            "max_users must be between 1 and {}",
            s.max_users_limit
        )));
    }
    let password_hash = match password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let owner_token = new_token();
    let now = state.store.now();
    let room = Room {
        id: new_id(),
        name,
        owner_name,
        password_hash,
        owner_token: TokenHash::of(&owner_token),
        created_at: now,
        expires_at: now + expiry * 1000,
        max_users,
        destroy_on_owner_offline: body.destroy_on_owner_offline.unwrap_or(true),
        members_can_destroy: body.members_can_destroy.unwrap_or(false),
    };
    let client = ip.to_string();
    match state.store.create_room_by(room.clone(), &client).await {
        Ok(()) => {}
        Err(store::Error::Refused(ErrorCode::RateLimited)) => {
            state.metrics.rejected("rooms_held");
            let detail = format!(
                "This address holds {} open rooms, the most it may: close one first",
                s.max_rooms_per_client
            );
            return Err(ApiError::new(ErrorCode::RateLimited, detail).retry_after(60));
        }
        Err(store::Error::Refused(ErrorCode::Unavailable)) => {
            let detail = "The service holds as many rooms as it may; try again later";
            return Err(ApiError::new(ErrorCode::Unavailable, detail).retry_after(60));
        }
        Err(err) => return Err(err.into()),
    }
    tracing::info!(room = %crate::redact::room(&room.id), expiry, max_users, "room created");
    Ok(HttpResponse::Created().json(CreateRoomResponse {
        ws_url: format!("{}/rooms/{}/ws", state.config.public_ws_url, room.id),
        join_url: format!("{}/r/{}", state.config.public_url, room.id),
        room_id: room.id,
        name: room.name,
        owner_name: room.owner_name,
        owner_token,
        created_at: rfc3339(room.created_at),
        expires_at: rfc3339(room.expires_at),
        expires_in: expiry,
        max_users: room.max_users,
        has_password: room.password_hash.is_some(),
        destroy_on_owner_offline: room.destroy_on_owner_offline,
        members_can_destroy: room.members_can_destroy,
    }))
}

async fn load_room(state: &AppState, room_id: &str) -> Result<RoomView, ApiError> {
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
    let s = &state.config.settings;
    let limits = AttemptLimits {
        per_client: s.password_attempts_per_minute,
        per_room: s.room_password_attempts_per_minute,
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
        Some(Credential::Owner) => view
            .members
            .iter()
            .find(|m| m.role == Role::Owner)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Forbidden,
                    "The owner has not joined the room yet",
                )
            }),
        None => Err(ApiError::unauthorized("Invalid or expired token")),
    }
}

fn details(view: &RoomView, now: Millis) -> RoomDetails {
    let room = &view.room;
    RoomDetails {
        room_id: room.id.clone(),
        name: room.name.clone(),
        owner_name: room.owner_name.clone(),
        created_at: rfc3339(room.created_at),
        expires_at: rfc3339(room.expires_at),
        expires_in: seconds_until(room.expires_at, now),
        max_users: room.max_users,
        online_users_count: view.members.len(),
        online_users: view.members.iter().map(Member::online_user).collect(),
        has_password: room.password_hash.is_some(),
        is_full: view.is_full(),
        destroy_on_owner_offline: room.destroy_on_owner_offline,
        members_can_destroy: room.members_can_destroy,
    }
}

/// Room details.
///
/// A password room needs its password, or a member's or the owner's token.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath, ("X-Room-Password" = Option<String>, Header, description = "The room's password (never in the URL)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The room", body = RoomDetails),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(BadCredentials)),
        (status = 404, response = inline(RoomNotFound)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[get("/rooms/{room_id}")]
pub async fn get_room(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.config);
    per_client_limit(&state, ip, READS, state.config.settings.reads_per_minute).await?;
    let view = load_room(&state, &path).await?;
    authorize_read(&req, ip, &state, &view).await?;
    Ok(HttpResponse::Ok().json(details(&view, state.store.now())))
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

/// Get a single-use ticket to connect.
///
/// With the owner token as bearer it is the owner's join: no password, `display_name` ignored.
/// The name and the slot are claimed only when the ticket is redeemed on the WebSocket.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    request_body = JoinRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A ticket", body = JoinResponse),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 401, response = inline(BadCredentials)),
        (status = 403, description = "`room_full`", body = ErrorBody),
        (status = 404, response = inline(RoomNotFound)),
        (status = 409, description = "`name_taken`", body = ErrorBody),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/join")]
pub async fn join(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let body: JoinRequest = extract::json(&req, payload).await?;
    let ip = client_ip(&req, &state.config);
    per_client_limit(&state, ip, JOINS, state.config.settings.joins_per_minute).await?;
    let view = load_room(&state, &path).await?;
    let (display_name, role) = match bearer(&req) {
        Some(token) => match state
            .store
            .authenticate(&view.room.id, &TokenHash::of(token))
            .await?
        {
            Some(Credential::Owner) => (view.room.owner_name.clone(), Role::Owner),
            _ => {
                return Err(ApiError::unauthorized(
                    "Only the owner token joins with a bearer token",
                ));
            }
        },
        None => {
            let name = body
                .display_name
                .as_deref()
                .ok_or_else(|| ApiError::invalid("display_name is required"))?;
            let name = realtime::commands::display_name(name)?;
            check_password(&state, &view, ip, body.password.as_deref()).await?;
            let folded = text::fold(&name);
            if text::fold(&view.room.owner_name) == folded
                || view
                    .members
                    .iter()
                    .any(|m| text::fold(&m.display_name) == folded)
            {
                return Err(ApiError::new(
                    ErrorCode::NameTaken,
                    "That display name is taken in this room",
                ));
            }
            if view.is_full() {
                return Err(ApiError::new(ErrorCode::RoomFull, "Room is full"));
            }
            (name, Role::Member)
        }
    };
    let expires_at = ticket_expiry(&state);
    let grant = Ticket {
        display_name: display_name.clone(),
        role,
        expires_at,
        client: ip.to_string(),
        resume: None,
    };
    let ticket = issue_ticket(&state, &view.room.id, grant).await?;
    Ok(HttpResponse::Ok().json(JoinResponse {
        ws_url: format!(
            "{}/rooms/{}/ws?ticket={ticket}",
            state.config.public_ws_url, view.room.id
        ),
        ticket,
        display_name,
        role,
        expires_at: rfc3339(expires_at),
        expires_in: state.config.settings.ticket_ttl_seconds,
    }))
}

/// When a ticket issued now expires (the ticket lifetime).
fn ticket_expiry(state: &AppState) -> Millis {
    state.store.now() + state.config.settings.ticket_ttl_seconds * 1000
}

/// Stores a fresh single-use ticket for `grant`; returns it.
async fn issue_ticket(state: &AppState, room_id: &str, grant: Ticket) -> Result<String, ApiError> {
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

/// Message history.
///
/// Same credentials as room details.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath, ("after" = Option<i64>, Query, minimum = 0, description = "Only messages with a greater id (default 0)"), ("limit" = Option<i64>, Query, minimum = 1, description = "At most this many (default: the history size; larger values are clamped to it)"), ("X-Room-Password" = Option<String>, Header, description = "The room's password (never in the URL)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Kept messages with `id > after`, oldest first", body = HistoryResponse),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(BadCredentials)),
        (status = 404, response = inline(RoomNotFound)),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[get("/rooms/{room_id}/messages")]
pub async fn history(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let after = query_number(&query, "after")?.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after must be 0 or more"));
    }
    let kept = state.config.settings.history_limit;
    let limit = match query_number(&query, "limit")? {
        Some(n) if n < 1 => return Err(ApiError::invalid("limit must be at least 1")),
        Some(n) => (n as u64).min(kept as u64) as usize,
        None => kept,
    };
    let ip = client_ip(&req, &state.config);
    per_client_limit(&state, ip, READS, state.config.settings.reads_per_minute).await?;
    let view = load_room(&state, &path).await?;
    authorize_read(&req, ip, &state, &view).await?;
    let history = state
        .store
        .history_after(&view.room.id, after as u64, limit)
        .await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        messages: history.messages,
        last_id: history.last_id,
    }))
}

/// Post a message without a WebSocket.
///
/// For scripts and bots: a member's `resume_token` or the owner token (once the owner has joined).
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    request_body = PostMessageRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "The message as broadcast (with `\"type\": \"message\"`)", body = MessageFrame),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: the owner has not joined", body = ErrorBody),
        (status = 404, response = inline(RoomNotFound)),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/messages")]
pub async fn post_message(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let view = load_room(&state, &path).await?;
    let member = acting_member(&req, &state, &view).await?;
    let body: PostMessageRequest = extract::json(&req, payload).await?;
    let frame = state
        .commands
        .post_message(
            &view.room.id,
            &member,
            &body.text,
            body.client_id.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Created().json(ServerFrame::Message(frame)))
}

/// A resume ticket: reconnect without a long-lived secret in the WebSocket URL.
///
/// With the member's resume token as bearer, a single-use ticket that expires with the join
/// ticket lifetime; connect with `?resume_ticket=<ticket>&last_id=<n>`.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A resume ticket", body = ResumeResponse),
        (status = 401, response = inline(BadToken)),
        (status = 404, response = inline(RoomNotFound)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/resume")]
pub async fn resume(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&req)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <resume_token> required"))?;
    let store = &state.store;
    let resume = TokenHash::of(token);
    let Some(Credential::Member(member)) = store.authenticate(&path, &resume).await? else {
        return Err(ApiError::unauthorized("Invalid or expired resume token"));
    };
    let expires_at = ticket_expiry(&state);
    let grant = Ticket {
        display_name: member.display_name,
        role: member.role,
        expires_at,
        client: client_ip(&req, &state.config).to_string(),
        resume: Some(resume),
    };
    let ticket = issue_ticket(&state, &path, grant).await?;
    Ok(HttpResponse::Ok().json(ResumeResponse {
        ws_url: format!(
            "{}/rooms/{}/ws?resume_ticket={ticket}",
            state.config.public_ws_url,
            path.as_str()
        ),
        ticket,
        expires_at: rfc3339(expires_at),
        expires_in: state.config.settings.ticket_ttl_seconds,
    }))
}

/// Leave at once.
///
/// No grace: the member is removed now and the others see `user_offline`.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Left", body = Ack),
        (status = 401, response = inline(BadToken)),
        (status = 404, response = inline(RoomNotFound)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/leave")]
pub async fn leave(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let view = load_room(&state, &path).await?;
    let member = acting_member(&req, &state, &view).await?;
    state.commands.leave(&view.room.id, &member.id).await?;
    Ok(HttpResponse::Ok().json(Ack {
        message: "Left the room".into(),
    }))
}

/// Destroy a room now.
///
/// The owner token, or a member's token when `members_can_destroy`.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Closed", body = Ack),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: members may not destroy this room", body = ErrorBody),
        (status = 404, response = inline(RoomNotFound)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[delete("/rooms/{room_id}")]
pub async fn delete_room(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    destroy(req, path, state).await
}

/// Destroy a room now (alias of `DELETE /rooms/{room_id}`).
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Closed", body = Ack),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: members may not destroy this room", body = ErrorBody),
        (status = 404, response = inline(RoomNotFound)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/close")]
pub async fn close_room(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    destroy(req, path, state).await
}

async fn destroy(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let view = load_room(&state, &path).await?;
    let token = bearer(&req)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <owner_token> required"))?;
    let role = match state
        .store
        .authenticate(&view.room.id, &TokenHash::of(token))
        .await?
    {
        Some(Credential::Owner) => Role::Owner,
        Some(Credential::Member(_)) => Role::Member,
        None => return Err(ApiError::unauthorized("Invalid or expired token")),
    };
    state
        .commands
        .destroy(&view.room.id, role, view.room.members_can_destroy)
        .await?;
    tracing::info!(room = %crate::redact::room(&view.room.id), "room closed");
    Ok(HttpResponse::Ok().json(Ack {
        message: "Room closed successfully".into(),
    }))
}
