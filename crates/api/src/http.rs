//! What every HTTP answer shares, the app's and the WebSocket front door's alike: security
//! headers, the request id, the log line, CORS, and the rule that no password travels in a URL.

use crate::redact;
use actix_http::Method;
use actix_web::middleware::DefaultHeaders;
use std::time::Instant;

/// Secrets never travel in URLs: a `password` query parameter anywhere is refused.
pub(crate) fn password_in(query: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split('=').next() == Some("password"))
}

pub(crate) static REQUEST_ID: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("x-request-id");

/// One request's log line: method, path and status only, as query strings carry tickets, and
/// a room id in the path only as its keyed hash (`redact`).
pub(crate) fn log_request(
    request_id: &str,
    method: &Method,
    path: &str,
    status: u16,
    started: Instant,
) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let path = redact::path(path);
    tracing::info!(%request_id, %method, %path, status, ms, "request");
}

/// The caller's `X-Request-Id` when it is short and plain, else a fresh one.
pub(crate) fn request_id(headers: &actix_web::http::header::HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map_or_else(store::secret::new_id, str::to_owned)
}

/// CORS for the configured origins only; other origins get no CORS header (browsers then keep
/// their scripts from reading the answer).
pub(crate) fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            "content-type",
            "authorization",
            "x-room-password",
            "x-request-id",
        ])
        .expose_headers(["x-request-id"])
        .block_on_origin_mismatch(false)
        .max_age(3600)
}

/// Headers every response carries (the WebSocket upgrade's too, see `ws::stamp`).
pub(crate) const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("X-Frame-Options", "DENY"),
];

pub(crate) fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .into_iter()
        .fold(DefaultHeaders::new(), |headers, header| headers.add(header))
}
