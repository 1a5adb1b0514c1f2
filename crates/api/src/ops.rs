//! Operations endpoints and the embedded static files (UI, API docs).

use crate::AppState;
use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use protocol::ErrorCode;

/// `GET /healthz`: the process runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the store and its pub/sub answer and the instance is not draining.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.hub.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "Draining for shutdown",
        ));
    }
    state.hub.store().ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ready = readyz(state.clone()).await.is_ok();
    state.metrics.ready.set(i64::from(ready));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "Cannot encode metrics"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}

/// The OpenAPI 3 document of the contract.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// `GET /docs`: interactive documentation rendered from `/openapi.json`, no CDN.
pub async fn docs() -> HttpResponse {
    html(include_str!("../../../web/docs.html"))
}

/// `GET /` and `GET /r/{room_id}`: one page; the script tells lobby and room apart.
pub async fn page() -> HttpResponse {
    html(include_str!("../../../web/index.html"))
}

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// `GET /assets/{file}`
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
