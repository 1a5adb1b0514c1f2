//! What members and would-be members do: join, read history, post, resume, leave.

use super::*;

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
        (status = 403, description = "`room_full`, `banned` (the owner removed this address or name), `room_locked`", body = ErrorBody),
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
    per_client_limit(&state, ip, JOINS, state.config.limits.joins_per_minute).await?;
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
        expires_in: state.config.ticket_ttl.as_secs(),
    }))
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
    let kept = state.config.store.history_limit;
    let limit = match query_number(&query, "limit")? {
        Some(n) if n < 1 => return Err(ApiError::invalid("limit must be at least 1")),
        Some(n) => (n as u64).min(kept as u64) as usize,
        None => kept,
    };
    let ip = client_ip(&req, &state.config);
    per_client_limit(&state, ip, READS, state.config.limits.reads_per_minute).await?;
    let view = load_room(&state, &path).await?;
    authorize_read(&req, ip, &state, &view).await?;
    let history = state
        .store
        .history_after(&view.room.id, after as u64, limit)
        .await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        messages: history.events,
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
        (status = 200, description = "A retry: the message this member already posted with this `client_id`, not posted again", body = MessageFrame),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 401, response = inline(BadToken)),
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
    let draft = Draft {
        text: body.text.as_deref(),
        ciphertext: body.ciphertext.as_deref(),
        client_id: body.client_id.as_deref(),
        reply_to: body.reply_to,
    };
    let encrypted = view.room.sealing.encrypted;
    let posted = state
        .commands
        .post_message(&view.room.id, &member, encrypted, draft)
        .await?;
    // A retry with a client_id already used gets the original, and nothing was posted.
    let mut answer = match posted.new {
        true => HttpResponse::Created(),
        false => HttpResponse::Ok(),
    };
    Ok(answer.json(ServerFrame::Message(posted.frame)))
}

/// Edit a message.
///
/// Its author's `resume_token` (or the owner token for the owner's messages), within the edit
/// window after sending. Everyone gets `message_edited`, which is the answer too.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath, MessagePath),
    request_body = EditMessageRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The `message_edited` event as broadcast", body = ChatEvent),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: not its author, or past the edit window", body = ErrorBody),
        (status = 404, description = "`room_not_found`, or `not_found`: the message is deleted or no longer kept", body = ErrorBody),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[patch("/rooms/{room_id}/messages/{message_id}")]
pub async fn edit_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let (view, member, target) = message_and_member(&req, &state, path).await?;
    let body: EditMessageRequest = extract::json(&req, payload).await?;
    let change = Change::Edit {
        text: body.text.as_deref(),
        ciphertext: body.ciphertext.as_deref(),
    };
    change_message(&state, &view, &member, target, change).await
}

/// Delete a message.
///
/// Its author's `resume_token`, or the owner token for any message. Its content leaves the
/// store at once (history keeps a tombstone); everyone gets `message_deleted`, which is the
/// answer too.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath, MessagePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The `message_deleted` event as broadcast", body = ChatEvent),
        (status = 401, response = inline(BadToken)),
        (status = 403, description = "`forbidden`: neither its author nor the owner", body = ErrorBody),
        (status = 404, description = "`room_not_found`, or `not_found`: the message is deleted or no longer kept", body = ErrorBody),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[delete("/rooms/{room_id}/messages/{message_id}")]
pub async fn delete_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let (view, member, target) = message_and_member(&req, &state, path).await?;
    change_message(&state, &view, &member, target, Change::Delete).await
}

/// React to a message.
///
/// A member's `resume_token` (or the owner token): puts the member's emoji on the message, or
/// takes it back if it is there. Everyone gets `reaction`, which is the answer too.
#[utoipa::path(
    tag = "rooms",
    params(RoomPath, MessagePath),
    request_body = ReactRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The `reaction` event as broadcast (`on`: whether the emoji is there now)", body = ChatEvent),
        (status = 400, response = inline(BadRequest)),
        (status = 415, response = inline(NotJson)),
        (status = 401, response = inline(BadToken)),
        (status = 404, description = "`room_not_found`, or `not_found`: the message is deleted or no longer kept", body = ErrorBody),
        (status = 422, response = inline(Invalid)),
        (status = 429, response = inline(RateLimited)),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[post("/rooms/{room_id}/messages/{message_id}/reactions")]
pub async fn react(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: Data,
) -> Result<HttpResponse, ApiError> {
    let (view, member, target) = message_and_member(&req, &state, path).await?;
    let body: ReactRequest = extract::json(&req, payload).await?;
    let change = Change::React { emoji: &body.emoji };
    change_message(&state, &view, &member, target, change).await
}

/// A message's path: the room and the message's id (a whole number, else 422).
#[derive(utoipa::IntoParams)]
#[into_params(names("message_id"), parameter_in = Path)]
#[allow(dead_code)]
pub struct MessagePath(
    /// The message's id.
    u64,
);

/// The room, the member acting (by its bearer token) and the id of the message a change names.
async fn message_and_member(
    req: &HttpRequest,
    state: &Data,
    path: web::Path<(String, String)>,
) -> Result<(RoomView, Member, u64), ApiError> {
    let (room_id, message_id) = path.into_inner();
    let target = message_id
        .parse()
        .map_err(|_| ApiError::invalid("message_id must be a message's id"))?;
    let view = load_room(state, &room_id).await?;
    let member = acting_member(req, state, &view).await?;
    Ok((view, member, target))
}

/// Runs a change to a message and answers its event as broadcast.
async fn change_message(
    state: &Data,
    view: &RoomView,
    member: &Member,
    target: u64,
    change: Change<'_>,
) -> Result<HttpResponse, ApiError> {
    let encrypted = view.room.sealing.encrypted;
    let event = state
        .commands
        .change_message(&view.room.id, member, encrypted, target, change)
        .await?;
    Ok(HttpResponse::Ok().json(event))
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
        expires_in: state.config.ticket_ttl.as_secs(),
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
