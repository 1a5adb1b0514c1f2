//! `GET /rooms/{room_id}/events`: a room as Server-Sent Events, for `curl -N` and scripts. The
//! stream is a connection of the hub like a WebSocket (the member is online while it is open,
//! and it resumes from `Last-Event-ID`); this module is its transport: each frame the session
//! writes becomes one event, a ping a comment, and the end a `close` event.

use crate::error::ApiError;
use crate::extract::{bearer, client_ip};
use crate::openapi::{BadToken, RoomNotFound, RoomPath, Unavailable};
use crate::state::AppState;
use crate::ws::IpSlots;
use actix_web::{HttpRequest, HttpResponse, get, web};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::Stream;
use protocol::rest::ErrorBody;
use protocol::{ErrorCode, Role};
use realtime::session::Entry;
use realtime::{Direct, Gone, Inbound, Sent, Transport};
use serde::Deserialize;
use std::sync::Arc;
use store::Credential;
use store::secret::TokenHash;
use tokio::sync::mpsc;

/// Events buffered between the session and the HTTP response: beyond them the hub's own queue
/// (bounded in bytes, under the stall timeout) takes over, as for a socket.
const EVENTS_IN_FLIGHT: usize = 64;

/// Follow a room as Server-Sent Events.
///
/// With a member's resume token (or the owner token) as bearer: the member's `welcome` first,
/// then every frame a WebSocket of it would get, one event each (`event:` its type, or for a
/// `system` frame its `event`; `id:` a message's id), comments as keep-alives, and `close` at
/// the end. Send `Last-Event-ID` to resume after the last event received.
#[utoipa::path(
    tag = "rooms",
    params(
        RoomPath,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last message id received: resume after it"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, response = inline(BadToken)),
        (status = 404, response = inline(RoomNotFound)),
        (status = 422, description = "`invalid_request`: `Last-Event-ID` is not a message id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this address holds as many connections as it may", body = ErrorBody),
        (status = 503, response = inline(Unavailable)),
    )
)]
#[get("/rooms/{room_id}/events")]
pub async fn room_events(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room_id = path.into_inner();
    let token = bearer(&req).ok_or_else(|| {
        ApiError::unauthorized("Authorization: Bearer <resume_token or owner_token> required")
    })?;
    let last_id = match req.headers().get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID must be a message id"))?,
        ),
    };
    let view = crate::rest::load_room(&state, &room_id).await?;
    let ip = client_ip(&req, &state.config);
    let entry = match state
        .store
        .authenticate(&view.room.id, &TokenHash::of(token))
        .await?
    {
        Some(Credential::Member(_)) => Entry::Resume {
            token: token.to_owned(),
            last_id: last_id.unwrap_or(0),
        },
        Some(Credential::Owner) => {
            let grant = store::Ticket {
                display_name: view.room.owner_name.clone(),
                role: Role::Owner,
                expires_at: crate::rest::ticket_expiry(&state),
                client: ip.to_string(),
                resume: None,
            };
            let ticket = crate::rest::issue_ticket(&state, &view.room.id, grant).await?;
            Entry::Ticket { ticket, last_id }
        }
        None => return Err(ApiError::unauthorized("Invalid or expired token")),
    };
    let max = state.config.limits.max_connections_per_ip;
    let Some(slot) = IpSlots::take(&state.sockets_per_ip, ip, max) else {
        state.metrics.rejected("sockets_per_ip");
        let detail = "This address holds as many connections as it may";
        return Err(ApiError::new(ErrorCode::RateLimited, detail).retry_after(1));
    };
    let (events_tx, events_rx) = mpsc::channel(EVENTS_IN_FLIGHT);
    let (pongs_tx, pongs_rx) = mpsc::channel(4);
    let transport = Events {
        out: events_tx.clone(),
        pongs: pongs_tx,
    };
    let inbound = inbound(events_tx, pongs_rx);
    let hub = state.hub.clone();
    let client = ip.to_string();
    state.hub.runtime().spawn(async move {
        let _slot = slot;
        hub.serve(&view.room.id, &client, entry, transport, inbound)
            .await;
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // nginx (and proxies like it) pass each event on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body(events_rx)))
}

/// The response body: the events as the session writes them, until it ends.
fn body(events: mpsc::Receiver<Bytes>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok(event), events))
    })
}

/// What the session hears from an event stream: a pong for each keep-alive written (a stream
/// has no other answer), and a close when the client has gone (the response was dropped).
fn inbound(
    events: mpsc::Sender<Bytes>,
    pongs: mpsc::Receiver<()>,
) -> impl Stream<Item = Inbound> + Unpin {
    Box::pin(futures_util::stream::unfold(
        (events, pongs),
        |(events, mut pongs)| async move {
            let next = tokio::select! {
                pong = pongs.recv() => match pong {
                    Some(()) => Inbound::Pong,
                    None => Inbound::Close(None),
                },
                () = events.closed() => Inbound::Close(None),
            };
            Some((next, (events, pongs)))
        },
    ))
}

/// The writing half of an event stream.
struct Events {
    out: mpsc::Sender<Bytes>,
    pongs: mpsc::Sender<()>,
}

struct DirectEvents(mpsc::Sender<Bytes>);

impl Direct for DirectEvents {
    fn try_send(&self, text: &ByteString) -> Result<Sent, Gone> {
        match self.0.try_send(event(text)) {
            Ok(()) => Ok(Sent::Whole),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(Sent::No),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }
}

impl Transport for Events {
    async fn send(&mut self, text: ByteString) -> Result<(), Gone> {
        self.out.send(event(&text)).await.map_err(|_| Gone)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        Ok(())
    }

    fn direct(&self) -> Arc<dyn Direct> {
        Arc::new(DirectEvents(self.out.clone()))
    }

    /// A comment keeps proxies from timing the stream out; it stands for the pong a socket
    /// would send once it is written.
    async fn ping(&mut self) -> Result<(), Gone> {
        self.out
            .send(Bytes::from_static(b": keep-alive\n\n"))
            .await
            .map_err(|_| Gone)?;
        let _ = self.pongs.try_send(());
        Ok(())
    }

    async fn pong(&mut self, _payload: Bytes) -> Result<(), Gone> {
        Ok(())
    }

    /// The last event: the close code a WebSocket would get, and why.
    async fn close(self, code: u16, reason: &'static str) {
        let data = serde_json::json!({"code": code, "reason": reason});
        let _ = self
            .out
            .send(Bytes::from(format!("event: close\ndata: {data}\n\n")))
            .await;
    }
}

/// One frame as an event: `event:` its type (a `system` frame's `event`), `id:` a message's id
/// (a welcome's: the last message it brings, so a reconnect resumes after it), `data:` the
/// frame's JSON, which is one line.
fn event(frame: &str) -> Bytes {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(default, borrow)]
        event: Option<&'a str>,
        #[serde(default)]
        id: Option<u64>,
        #[serde(default)]
        history: Option<Vec<Id>>,
    }
    #[derive(Deserialize)]
    struct Id {
        id: u64,
    }
    let head: Option<Head> = serde_json::from_str(frame).ok();
    let mut out = String::with_capacity(frame.len() + 48);
    if let Some(head) = &head {
        let kind = match (head.kind, head.event) {
            ("system", Some(event)) => event,
            (kind, _) => kind,
        };
        out.push_str("event: ");
        out.push_str(kind);
        out.push('\n');
        let id = head
            .id
            .or_else(|| head.history.as_ref()?.last().map(|m| m.id));
        if let Some(id) = id {
            out.push_str(&format!("id: {id}\n"));
        }
    }
    out.push_str("data: ");
    out.push_str(frame);
    out.push_str("\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_events_with_their_type_and_id() {
        let message = r#"{"type":"message","id":7,"text":"hi"}"#;
        assert_eq!(
            event(message),
            Bytes::from(format!("event: message\nid: 7\ndata: {message}\n\n"))
        );
        let welcome = r#"{"type":"system","event":"welcome","history":[{"id":3},{"id":4}]}"#;
        assert_eq!(
            event(welcome),
            Bytes::from(format!("event: welcome\nid: 4\ndata: {welcome}\n\n"))
        );
        let fresh = r#"{"type":"system","event":"welcome","history":[]}"#;
        assert_eq!(
            event(fresh),
            Bytes::from(format!("event: welcome\ndata: {fresh}\n\n"))
        );
        let typing = r#"{"type":"typing","member_id":"m"}"#;
        assert_eq!(
            event(typing),
            Bytes::from(format!("event: typing\ndata: {typing}\n\n"))
        );
    }
}
