//! `GET /rooms/{room_id}/ws`: the Origin check and the upgrade here; the session itself is
//! `realtime`'s, reached through [`WsTransport`] and [`inbound`].

use crate::AppState;
use crate::config::origin_of;
use crate::error::ApiError;
use crate::extract::client_ip;
use crate::openapi::RoomPath;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseReason, ProtocolError, Session};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};
use protocol::rest::ErrorBody;
use protocol::{ErrorCode, close};
use realtime::{Entry, Gone, Inbound, Transport};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The WebSocket: chat in real time.
///
/// One way in: `ticket`, `display_name` (rooms without password) or `resume` with `last_id`.
/// Frames are `ClientFrame` and `ServerFrame` (see the schemas); a refusal after the upgrade is an
/// `error` frame and a close code (API.md).
#[utoipa::path(
    tag = "websocket",
    params(RoomPath, ("ticket" = Option<String>, Query, description = "A ticket from join"), ("display_name" = Option<String>, Query, description = "Direct join of a room without password"), ("resume" = Option<String>, Query, description = "A member's resume_token"), ("last_id" = Option<u64>, Query, description = "With resume: the last message id seen")),
    responses(
        (status = 101, description = "Switching protocols"),
        (status = 422, description = "`invalid_request`: not a WebSocket upgrade", body = ErrorBody),
        (status = 403, description = "`forbidden`: the Origin is not allowed", body = ErrorBody),
    )
)]
#[get("/rooms/{room_id}/ws")]
pub async fn upgrade(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(origin) = req.headers().get("origin") {
        let allowed = origin
            .to_str()
            .ok()
            .and_then(origin_of)
            .is_some_and(|o| state.config.allowed_origins.contains(&o));
        if !allowed {
            return Err(ApiError::new(ErrorCode::Forbidden, "Origin not allowed"));
        }
    }
    let entry = entry(&query);
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::invalid("Expected a WebSocket upgrade request"))?;
    let max = state.config.settings.max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let hub = state.hub.clone();
    let room_id = path.into_inner();
    let ip = client_ip(&req, &state.config);
    let slot = IpSlots::take(
        &state.sockets_per_ip,
        ip,
        state.config.settings.max_connections_per_ip,
    );
    if slot.is_none() {
        state.metrics.rejected("sockets_per_ip");
    }
    actix_web::rt::spawn(async move {
        let transport = WsTransport(session);
        match (entry, slot) {
            (_, None) => {
                realtime::session::refuse(transport, ErrorCode::RateLimited, close::TRY_AGAIN_LATER)
                    .await
            }
            (Ok(entry), Some(_slot)) => {
                hub.serve(&room_id, entry, transport, inbound(stream)).await
            }
            (Err(detail), Some(_)) => {
                realtime::session::reject(transport, ErrorCode::Unauthorized, detail).await
            }
        }
    });
    Ok(response)
}

/// Open WebSockets per client IP on this instance.
#[derive(Default)]
pub struct IpSlots(Mutex<HashMap<IpAddr, usize>>);

/// One WebSocket's place in [`IpSlots`], given back when dropped.
pub struct IpSlot {
    slots: Arc<IpSlots>,
    ip: IpAddr,
}

impl IpSlots {
    /// A slot for `ip`, unless it already holds `max`.
    fn take(slots: &Arc<IpSlots>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = slots.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            slots: slots.clone(),
            ip,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The way in, from the query: `ticket`, `resume` (+ `last_id`) or `display_name`.
fn entry(query: &HashMap<String, String>) -> Result<Entry, &'static str> {
    if let Some(ticket) = query.get("ticket") {
        return Ok(Entry::Ticket(ticket.clone()));
    }
    if let Some(token) = query.get("resume") {
        let last_id = match query.get("last_id") {
            None => 0,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| "last_id must be a non-negative integer")?,
        };
        return Ok(Entry::Resume {
            token: token.clone(),
            last_id,
        });
    }
    if let Some(name) = query.get("display_name") {
        return Ok(Entry::Name(name.clone()));
    }
    Err("ticket, resume or display_name required")
}

/// actix-ws's session as a [`Transport`].
pub struct WsTransport(Session);

impl Transport for WsTransport {
    async fn send(&mut self, text: ByteString) -> Result<(), Gone> {
        self.0.text(text).await.map_err(|_| Gone)
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.0.ping(b"").await.map_err(|_| Gone)
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), Gone> {
        self.0.pong(&payload).await.map_err(|_| Gone)
    }

    async fn close(self, code: u16, reason: &'static str) {
        let reason = CloseReason {
            code: code.into(),
            description: Some(reason.to_owned()),
        };
        let _ = self.0.close(Some(reason)).await;
    }
}

/// The client's frames as [`Inbound`]s; an oversized frame or message becomes `TooLarge`.
fn inbound(
    stream: impl Stream<Item = Result<AggregatedMessage, ProtocolError>> + Unpin,
) -> impl Stream<Item = Inbound> + Unpin {
    stream.map(|item| match item {
        Ok(AggregatedMessage::Text(text)) => Inbound::Text(text),
        Ok(AggregatedMessage::Binary(_)) => Inbound::Binary,
        Ok(AggregatedMessage::Ping(payload)) => Inbound::Ping(payload),
        Ok(AggregatedMessage::Pong(_)) => Inbound::Pong,
        Ok(AggregatedMessage::Close(reason)) => Inbound::Close(reason.map(|r| r.code.into())),
        Err(ProtocolError::Overflow) => Inbound::TooLarge,
        // actix-ws reports an oversized fragmented message only by this I/O error's text.
        Err(ProtocolError::Io(err)) if err.to_string() == "Exceeded maximum continuation size" => {
            Inbound::TooLarge
        }
        Err(_) => Inbound::Broken,
    })
}
