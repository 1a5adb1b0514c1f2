//! `GET /rooms/{room_id}/ws`. actix-http hands every upgrade request, with its socket, to
//! [`accept`] before actix-web routes anything (the server's upgrade service, see `lib.rs`):
//! the checks and the handshake are here, the framing in [`crate::socket`], and the session is
//! `realtime`'s, on the hub's thread. actix-web's own WebSocket path would keep its HTTP dispatcher, and the 16 KiB of
//! buffers it holds, for the socket's whole life.

use crate::config::origin_of;
use crate::error::ApiError;
use crate::extract::client_ip_of;
use crate::openapi::RoomPath;
use crate::socket;
use crate::state::AppState;
use actix_codec::Framed;
use actix_http::body::{self, BodySize, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_http::{ConnectionType, HttpMessage, Method, Request, Response};
use actix_web::{HttpResponse, ResponseError, get, web};
use futures_util::SinkExt;
use protocol::rest::ErrorBody;
use protocol::{ErrorCode, close};
use realtime::Entry;
use realtime::bucket::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpStream;

/// The WebSocket: chat in real time.
///
/// One way in: `ticket`, `display_name` (rooms without password) or `resume_ticket` (from
/// `POST .../resume`) with `last_id`; `resume` with the token itself is kept for old scripts.
/// Frames are `ClientFrame` and `ServerFrame` (see the schemas); a refusal after the upgrade is an
/// `error` frame and a close code (API.md).
#[utoipa::path(
    tag = "websocket",
    params(RoomPath, ("ticket" = Option<String>, Query, description = "A ticket from join"), ("display_name" = Option<String>, Query, description = "Direct join of a room without password"), ("resume_ticket" = Option<String>, Query, description = "A resume ticket from POST .../resume"), ("resume" = Option<String>, Query, description = "A member's resume_token (old scripts: a long-lived secret in the URL)"), ("last_id" = Option<u64>, Query, description = "With resume_ticket or resume: the last message id seen")),
    responses(
        (status = 101, description = "Switching protocols"),
        (status = 422, description = "`invalid_request`: not a WebSocket upgrade", body = ErrorBody),
        (status = 403, description = "`forbidden`: the Origin is not allowed", body = ErrorBody),
        (status = 404, description = "`room_not_found`: not a room id", body = ErrorBody),
    )
)]
#[get("/rooms/{room_id}/ws")]
pub async fn upgrade(_room: web::Path<String>) -> Result<HttpResponse, ApiError> {
    // Upgrade requests never get here: they go to `accept`.
    Err(not_an_upgrade())
}

fn not_an_upgrade() -> ApiError {
    ApiError::invalid("Expected a WebSocket upgrade request")
}

/// Serves one upgrade request: a refusal in the contract's shape, or the 101 and then the
/// session, until the socket closes.
pub async fn accept(
    state: web::Data<AppState>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_http::Error> {
    // An I/O error here is the client gone: nothing to answer, nobody to tell.
    let _ = serve(state, req, framed).await;
    Ok(())
}

async fn serve(
    state: web::Data<AppState>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> std::io::Result<()> {
    let started = Instant::now();
    let request_id = crate::http::request_id(req.headers());
    let admitted = admit(&state, &req);
    let status = admitted
        .as_ref()
        .map_or_else(|res| res.status().as_u16(), |_| 101);
    crate::http::log_request(&request_id, req.method(), req.path(), status, started);
    let admission = match admitted {
        Ok(admission) => admission,
        Err(res) => return refuse(&mut framed, *res, &request_id).await,
    };
    let mut switching = actix_http::ws::handshake_response(req.head())
        .message_body(())
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    stamp(switching.headers_mut(), &request_id);
    framed
        .send(Message::Item((switching, BodySize::None)))
        .await?;
    let parts = framed.into_parts();
    let max = state.config.limits.max_frame_bytes;
    let Admission {
        room_id,
        client,
        entry,
        slot,
    } = admission;
    // The session moves to the hub's thread: the fan-out then wakes no other thread. It is a
    // task of its own, so actix's connection task, and all it holds, ends here (inline, the
    // session measured 29 KiB per idle socket instead of 6.5).
    let io = parts.io.into_std()?;
    let read_buf = parts.read_buf;
    let hub = state.hub.clone();
    state.hub.runtime().spawn(async move {
        let Ok(io) = TcpStream::from_std(io) else {
            return;
        };
        let (transport, frames) = socket::split(io, read_buf, max);
        match (entry, slot) {
            (_, None) => {
                realtime::session::refuse(transport, ErrorCode::RateLimited, close::TRY_AGAIN_LATER)
                    .await
            }
            (Ok(entry), Some(_slot)) => {
                hub.serve(&room_id, &client, entry, transport, frames).await
            }
            (Err(detail), Some(_)) => {
                realtime::session::reject(transport, ErrorCode::Unauthorized, detail).await
            }
        }
    });
    Ok(())
}

/// An upgrade that passed the HTTP checks. A bad way in or a full IP still gets the upgrade,
/// and then an `error` frame and a close code that browsers can read.
struct Admission {
    room_id: String,
    /// The client's key (its address, IPv6 on its prefix).
    client: String,
    entry: Result<Entry, &'static str>,
    slot: Option<IpSlot>,
}

/// Routing (only this route upgrades; another method gets the app's 405) and the checks the
/// app's middleware and this route's handler would make.
fn admit(state: &AppState, req: &Request) -> Result<Admission, Box<HttpResponse>> {
    let room_id = req
        .path()
        .trim_end_matches('/')
        .strip_prefix("/rooms/")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            Box::new(ApiError::new(ErrorCode::NotFound, "Not found").error_response())
        })?;
    // No id of another shape is ever a room: nothing is subscribed or asked for it.
    if !protocol::is_room_id(room_id) {
        return Err(Box::new(ApiError::room_not_found().error_response()));
    }
    if req.method() != Method::GET {
        return Err(Box::new(crate::ops::unrouted(req.path())));
    }
    check(state, req, room_id).map_err(|err| Box::new(err.error_response()))
}

/// No password in the URL, a readable query, an allowed Origin, a valid handshake.
fn check(state: &AppState, req: &Request, room_id: &str) -> Result<Admission, ApiError> {
    let query = req.uri().query().unwrap_or("");
    if crate::http::password_in(query) {
        return Err(ApiError::password_in_url());
    }
    let query = web::Query::<HashMap<String, String>>::from_query(query)
        .map_err(ApiError::invalid_query)?;
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .ok()
            .and_then(origin_of)
            .is_some_and(|o| state.config.allowed_origins.contains(&o));
        if !allowed {
            return Err(ApiError::new(ErrorCode::Forbidden, "Origin not allowed"));
        }
    }
    actix_http::ws::verify_handshake(req.head()).map_err(|_| not_an_upgrade())?;
    let ip = client_ip_of(req.peer_addr(), req.headers(), &state.config);
    // The client's own connect rate first: one client opening and closing sockets in a loop
    // spends its own budget, not the instance's admissions everyone shares.
    if !state
        .connects_per_ip
        .allow(ip, state.config.limits.connect_rate_per_ip_per_second)
    {
        state.metrics.rejected("connects_per_ip");
        return Ok(Admission {
            room_id: room_id.to_owned(),
            client: ip.to_string(),
            entry: entry(&query),
            slot: None,
        });
    }
    let slot = IpSlots::take(
        &state.sockets_per_ip,
        ip,
        state.config.limits.max_connections_per_ip,
    );
    if slot.is_none() {
        state.metrics.rejected("sockets_per_ip");
    }
    Ok(Admission {
        room_id: room_id.to_owned(),
        client: ip.to_string(),
        entry: entry(&query),
        slot,
    })
}

/// What the app's middleware adds to every response: its security headers and the request id.
fn stamp(headers: &mut HeaderMap, request_id: &str) {
    for (name, value) in crate::http::SECURITY_HEADERS {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(crate::http::REQUEST_ID.clone(), value);
    }
}

/// Answers a refused upgrade, then closes the connection.
async fn refuse(
    framed: &mut Framed<TcpStream, h1::Codec>,
    res: HttpResponse,
    request_id: &str,
) -> std::io::Result<()> {
    let mut res: Response<_> = res.into();
    res.head_mut().set_connection_type(ConnectionType::Close);
    stamp(res.headers_mut(), request_id);
    let (res, body) = res.into_parts();
    let body = body::to_bytes(body).await.unwrap_or_default();
    let size = body.size();
    framed.send(Message::Item((res, size))).await?;
    framed.send(Message::Chunk(Some(body))).await?;
    framed.send(Message::Chunk(None)).await?;
    Ok(())
}

/// WebSocket connects per client IP on this instance: a token bucket each, refilled at the
/// rate and holding two seconds of it.
#[derive(Default)]
pub struct IpRates(Mutex<HashMap<IpAddr, TokenBucket>>);

/// Clients tracked before full buckets (idle clients) are dropped.
const TRACKED_CLIENTS: usize = 10_000;

impl IpRates {
    /// Whether `ip` may connect now, at `per_second`.
    fn allow(&self, ip: IpAddr, per_second: u32) -> bool {
        let rate = f64::from(per_second);
        let capacity = (2.0 * rate).max(1.0);
        let now = Instant::now();
        let mut buckets = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= TRACKED_CLIENTS {
            buckets.retain(|_, bucket| !bucket.full(rate, capacity, now));
        }
        buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(capacity))
            .take(rate, capacity, now)
    }
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
    pub(crate) fn take(slots: &Arc<IpSlots>, ip: IpAddr, max: usize) -> Option<IpSlot> {
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
        return Ok(Entry::Ticket {
            ticket: ticket.clone(),
            last_id: None,
        });
    }
    let last_id = || match query.get("last_id") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| "last_id must be a non-negative integer"),
    };
    if let Some(ticket) = query.get("resume_ticket") {
        return Ok(Entry::ResumeTicket {
            ticket: ticket.clone(),
            last_id: last_id()?,
        });
    }
    if let Some(token) = query.get("resume") {
        return Ok(Entry::Resume {
            token: token.clone(),
            last_id: last_id()?,
        });
    }
    if let Some(name) = query.get("display_name") {
        return Ok(Entry::Name(name.clone()));
    }
    Err("ticket, resume_ticket or display_name required")
}
