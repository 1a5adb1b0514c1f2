//! The room itself: create it, read its details, destroy it.

use super::*;

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
    let rules = &state.config.rooms;
    let ip = client_ip(&req, &state.config);
    let creates = state.config.limits.room_creates_per_minute;
    per_client_limit(&state, ip, CREATES, creates).await?;
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
    let sealing = sealing(&body, name.is_some())?;
    let (min, max) = (rules.min_expiry.as_secs(), rules.max_expiry.as_secs());
    let expiry = body
        .expiry_seconds
        .unwrap_or(rules.default_expiry.as_secs());
    if !(min..=max).contains(&expiry) {
        return Err(ApiError::invalid(format!(
            "expiry_seconds must be between {min} and {max}"
        )));
    }
    let max_users = body.max_users.unwrap_or(rules.default_max_users);
    if !(1..=rules.max_users_limit).contains(&max_users) {
        return Err(ApiError::invalid(format!(
            "max_users must be between 1 and {}",
            rules.max_users_limit
        )));
    }
    let (min, max) = (
        rules.min_owner_grace.as_secs(),
        rules.max_owner_grace.as_secs(),
    );
    let owner_grace = body
        .owner_grace_seconds
        .unwrap_or(rules.default_owner_grace.as_secs());
    if !(min..=max).contains(&owner_grace) {
        return Err(ApiError::invalid(format!(
            "owner_grace_seconds must be between {min} and {max}"
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
        sealing,
        owner_member_id: new_id(),
        owner_grace_ms: owner_grace * 1000,
        locked: false,
        owner_away_until: None,
    };
    let client = ip.to_string();
    match state.store.create_room_by(room.clone(), &client).await {
        Ok(()) => {}
        Err(store::Error::Refused(ErrorCode::RateLimited)) => {
            state.metrics.rejected("rooms_held");
            let detail = format!(
                "This address holds {} open rooms, the most it may: close one first",
                state.config.store.max_rooms_per_client
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
        owner_grace_seconds: owner_grace,
        sealing: room.sealing,
        owner_member_id: room.owner_member_id,
    }))
}

/// An encrypted room's fields, checked for shape (the server cannot read them): `key_check`
/// required, the name only as `name_ciphertext`; an open room takes neither.
fn sealing(body: &CreateRoomRequest, named: bool) -> Result<Sealing, ApiError> {
    let encrypted = body.encrypted.unwrap_or(false);
    if !encrypted {
        if body.name_ciphertext.is_some() || body.key_check.is_some() {
            return Err(ApiError::invalid(
                "name_ciphertext and key_check are for encrypted rooms (\"encrypted\": true)",
            ));
        }
        return Ok(Sealing::default());
    }
    if named {
        return Err(ApiError::invalid(
            "An encrypted room's name is name_ciphertext: name must be absent",
        ));
    }
    let max = text::sealed_max(limits::ROOM_NAME_MAX_CHARS);
    let name_ciphertext = body
        .name_ciphertext
        .as_deref()
        .map(|sealed| text::sealed(sealed, max))
        .transpose()
        .map_err(|e| ApiError::invalid(e.describe("name_ciphertext", max)))?
        .map(str::to_owned);
    let key_check = body
        .key_check
        .as_deref()
        .ok_or_else(|| ApiError::invalid("An encrypted room needs key_check"))?;
    if key_check.len() != KEY_CHECK_CHARS || !text::is_base64url(key_check) {
        return Err(ApiError::invalid(format!(
            "key_check must be {KEY_CHECK_CHARS} characters of unpadded base64url (an HMAC-SHA-256)"
        )));
    }
    Ok(Sealing {
        encrypted,
        name_ciphertext,
        key_check: Some(key_check.to_owned()),
    })
}

/// Unpadded base64url characters of a 32-byte HMAC-SHA-256.
const KEY_CHECK_CHARS: usize = 43;

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
    per_client_limit(&state, ip, READS, state.config.limits.reads_per_minute).await?;
    let view = load_room(&state, &path).await?;
    authorize_read(&req, ip, &state, &view).await?;
    Ok(HttpResponse::Ok().json(details(&view, state.store.now())))
}

pub(super) fn details(view: &RoomView, now: Millis) -> RoomDetails {
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
        owner_grace_seconds: room.owner_grace_ms / 1000,
        locked: room.locked,
        owner_away_until: room.owner_away_until.map(rfc3339),
        sealing: room.sealing.clone(),
        owner_member_id: room.owner_member_id.clone(),
    }
}

/// Change a room: lock or unlock it, move its end.
///
/// The owner token. Everyone in the room gets `room_updated`; the answer is the room's details.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath),
    request_body = UpdateRoomRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room as changed", body = RoomDetails),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: only the owner may", body = ErrorBody),
        (status = 404, response = inline(RoomNotFound)),
        (status = 415, response = inline(NotJson)),
        (status = 422, response = inline(Invalid)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[patch("/rooms/{room_id}")]
pub async fn update_room(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let view = load_room(&state, &path).await?;
    let token = owner_token(&req)?;
    let body: UpdateRoomRequest = extract::json(&req, payload).await?;
    let expires_at = match body.expires_at.as_deref() {
        None => None,
        Some(at) => Some(new_end(&state, &view, at)?),
    };
    if body.locked.is_none() && expires_at.is_none() {
        return Err(ApiError::invalid(
            "Nothing to change: give locked or expires_at",
        ));
    }
    let change = RoomChange::Settings {
        locked: body.locked,
        expires_at,
    };
    let view = state
        .commands
        .change_room(&view.room.id, Actor::Token(&token), change)
        .await?;
    tracing::info!(room = %crate::redact::room(&view.room.id), "room changed");
    Ok(HttpResponse::Ok().json(details(&view, state.store.now())))
}

/// Remove a member and bar it from the room.
///
/// The owner token. The member's connection closes with 4010, everyone else gets
/// `user_offline` with reason `kicked`, and its address (IPv6 on its prefix) and name are
/// refused (`banned`) for the room's life.
#[utoipa::path(
    tag = "members",
    params(RoomPath, ("member_id" = String, Path, description = "The member to remove")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = Ack),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: only the owner may, and not itself", body = ErrorBody),
        (status = 404, description = "`room_not_found`, or `not_found`: no such member", body = ErrorBody),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/members/{member_id}/kick")]
pub async fn kick_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let (room_id, member_id) = path.into_inner();
    let view = load_room(&state, &room_id).await?;
    let token = owner_token(&req)?;
    let change = RoomChange::Kick { member_id };
    state
        .commands
        .change_room(&view.room.id, Actor::Token(&token), change)
        .await?;
    tracing::info!(room = %crate::redact::room(&view.room.id), "member removed");
    Ok(HttpResponse::Ok().json(Ack {
        message: "Member removed".into(),
    }))
}

/// The bearer token's hash (whether it is the owner's, or a member's where that may act, the
/// store checks).
pub(super) fn owner_token(req: &HttpRequest) -> Result<TokenHash, ApiError> {
    bearer(req)
        .map(TokenHash::of)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <owner_token> required"))
}

/// A room's new end as asked: RFC 3339, within `[now + the minimum expiry, created_at + the
/// maximum expiry]`.
fn new_end(state: &Data, view: &RoomView, at: &str) -> Result<Millis, ApiError> {
    let at = protocol::parse_rfc3339(at)
        .ok_or_else(|| ApiError::invalid("expires_at must be an RFC 3339 time"))?;
    let rules = &state.config.rooms;
    let earliest = state.store.now() + rules.min_expiry.as_millis() as Millis;
    let latest = view.room.created_at + rules.max_expiry.as_millis() as Millis;
    if !(earliest..=latest).contains(&at) {
        return Err(ApiError::invalid(format!(
            "expires_at must lie between {} (the minimum expiry from now) and {} (the maximum from the room's creation)",
            rfc3339(earliest),
            rfc3339(latest)
        )));
    }
    Ok(at)
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

pub(super) async fn destroy(
    req: HttpRequest,
    path: web::Path<String>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let view = load_room(&state, &path).await?;
    let token = owner_token(&req)?;
    let role = match state.store.authenticate(&view.room.id, &token).await? {
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
