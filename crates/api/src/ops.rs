//! Operations endpoints and the embedded static files (UI, API docs).

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::RoomPath;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};
use protocol::ErrorCode;
use protocol::rest::ErrorBody;
use serde::Serialize;
use std::sync::LazyLock;
use utoipa::ToSchema;

/// The body of `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process runs.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness: the store and its pub/sub answer and the instance is not draining.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "`unavailable`: store or pub/sub down, or draining", body = ErrorBody),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    ready(&state).await?;
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

async fn ready(state: &AppState) -> Result<(), ApiError> {
    if state.hub.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "Draining for shutdown",
        ));
    }
    Ok(state.hub.store().ping().await?)
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ready = ready(&state).await.is_ok();
    state.metrics.ready.set(i64::from(ready));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "Cannot encode metrics"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}

/// The OpenAPI document, generated from the handlers and the protocol types once.
static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(crate::openapi);

static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    DOC.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// Every route's path segments and its methods (`GET, POST`), read from the document.
static ROUTES: LazyLock<Vec<(Vec<String>, String)>> = LazyLock::new(|| {
    let paths = serde_json::to_value(&DOC.paths).unwrap_or_default();
    let paths = paths.as_object().cloned().unwrap_or_default();
    paths
        .into_iter()
        .map(|(path, item)| {
            let segments = path.split('/').map(str::to_owned).collect();
            let methods: Vec<String> = item
                .as_object()
                .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                .unwrap_or_default();
            (segments, methods.join(", "))
        })
        .collect()
});

/// What no route answers: 405 with `Allow` on a known path, else 404.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    unrouted(req.path())
}

/// [`fallback`]'s answer for `path`.
pub fn unrouted(path: &str) -> HttpResponse {
    let segments: Vec<&str> = path.split('/').collect();
    let route = ROUTES.iter().find(|(pattern, _)| {
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
    });
    let Some((_, allow)) = route else {
        return ApiError::new(ErrorCode::NotFound, "Not found").error_response();
    };
    let mut res = ApiError::new(ErrorCode::MethodNotAllowed, "Method not allowed").error_response();
    if let Ok(value) = allow.parse() {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// This OpenAPI 3.1 document.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI.as_str())
}

/// This documentation: `/openapi.json` rendered offline.
#[utoipa::path(tag = "pages", responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    html(include_str!("../../../web/docs.html"))
}

const PAGE: &str = include_str!("../../../web/index.html");

/// The lobby: create a room.
#[utoipa::path(tag = "pages", responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
#[get("/")]
pub async fn lobby() -> HttpResponse {
    html(PAGE)
}

/// A room's page (its `join_url`); the same page as the lobby, the script tells them apart.
#[utoipa::path(
    tag = "pages",
    params(RoomPath),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
#[get("/r/{room_id}")]
pub async fn room_page() -> HttpResponse {
    html(PAGE)
}

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// A QR code (SVG) of a room's link, for joining from a phone.
#[utoipa::path(
    tag = "pages",
    params(RoomPath),
    responses(
        (status = 200, description = "SVG", content_type = "image/svg+xml", body = String),
        (status = 404, description = "`not_found`: not a room id", body = ErrorBody),
    )
)]
#[get("/r/{room_id}/qr.svg")]
pub async fn room_qr(
    room_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !protocol::is_room_id(&room_id) {
        return Err(ApiError::new(ErrorCode::NotFound, "Not found"));
    }
    let link = format!("{}/r/{room_id}", state.config.public_url);
    let code = qrcode::QrCode::new(link.as_bytes())
        .map_err(|_| ApiError::new(ErrorCode::Internal, "Cannot encode the link"))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "private, max-age=3600"))
        .body(svg))
}

/// The page's static files.
#[utoipa::path(
    tag = "pages",
    params(("file" = String, Path, description = "`app.js`, `docs.js` or `style.css`")),
    responses(
        (status = 200, description = "The file", content_type = "text/plain", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
#[get("/assets/{file}")]
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (
            include_str!("../../../web/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "docs.js" => (
            include_str!("../../../web/docs.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (
            include_str!("../../../web/style.css"),
            "text/css; charset=utf-8",
        ),
        _ => return Err(ApiError::new(ErrorCode::NotFound, "Not found")),
    };
    Ok(HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body))
}
