//! Operations endpoints and the embedded static files (UI, API docs).

use crate::config::Config;
use crate::error::ApiError;
use crate::openapi::RoomPath;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::Bytes;
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
        return Err(ApiError::new(ErrorCode::Unavailable, "Draining for shutdown").retry_after(1));
    }
    Ok(state.store.ping().await?)
}

/// Prometheus metrics: the Prometheus text format (0.0.4), or OpenMetrics when `Accept` asks
/// for it (as Prometheus does when it prefers it).
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Metrics: `text/plain; version=0.0.4`, or `application/openmetrics-text` when asked for in `Accept`", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.config.metrics_bind_addr.is_some() {
        return Err(ApiError::new(ErrorCode::NotFound, "Not found"));
    }
    scrape(req, state).await
}

/// `/metrics` itself, on whichever listener serves it.
pub async fn scrape(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ready = ready(&state).await.is_ok();
    state.metrics.ready.set(i64::from(ready));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "Cannot encode metrics"))?;
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(body)
    } else {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(prometheus_text(&body))
    })
}

/// The Prometheus text format of an OpenMetrics exposition: no `# EOF` or `# UNIT` lines, and a
/// counter's `HELP` and `TYPE` name its `_total` sample, as Prometheus's own clients write them.
fn prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|prefix| line.starts_with(prefix));
        match comment {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The OpenAPI document, generated from the handlers and the protocol types once.
static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(crate::routes::openapi);

static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    DOC.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// Every route's path segments and its methods (`GET, POST`), read from the document; every
/// GET also answers HEAD.
static ROUTES: LazyLock<Vec<(Vec<String>, String)>> = LazyLock::new(|| {
    let paths = serde_json::to_value(&DOC.paths).unwrap_or_default();
    let paths = paths.as_object().cloned().unwrap_or_default();
    paths
        .into_iter()
        .map(|(path, item)| {
            let segments = path.split('/').map(str::to_owned).collect();
            let mut methods: Vec<String> = item
                .as_object()
                .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                .unwrap_or_default();
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".into());
            }
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
    static DOCS: LazyLock<String> =
        LazyLock::new(|| pinned(include_str!("../../../web/docs.html")));
    html(DOCS.as_str())
}

/// The page's static files: name, body, content type.
const ASSETS: [(&str, &str, &str); 7] = [
    (
        "app.js",
        include_str!("../../../web/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "seal.js",
        include_str!("../../../web/seal.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "format.js",
        include_str!("../../../web/format.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "qrcode.js",
        include_str!("../../../web/vendor/qrcode.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "docs.js",
        include_str!("../../../web/docs.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "style.css",
        include_str!("../../../web/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "favicon.svg",
        include_str!("../../../web/favicon.svg"),
        "image/svg+xml",
    ),
];

/// `html` with each `{{integrity <asset>}}` filled with the asset's Subresource Integrity hash,
/// so a browser runs only the scripts and styles this build serves.
fn pinned(html: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    ASSETS
        .iter()
        .fold(html.to_owned(), |html, (name, body, _)| {
            let hash = sha2::Sha384::digest(body.as_bytes());
            let integrity = format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(hash)
            );
            html.replace(&format!("{{{{integrity {name}}}}}"), &integrity)
        })
}

/// The page of the lobby and of every room, with this instance's limits in its inputs (the
/// lifetime in minutes, the user limit, the message length) and its presence grace (how long a
/// dropped page has to come back), rendered once at start-up.
pub fn page(config: &Config) -> Bytes {
    let rooms = &config.rooms;
    let min_minutes = rooms.min_expiry.as_secs().div_ceil(60);
    let max_minutes = (rooms.max_expiry.as_secs() / 60).max(min_minutes);
    let default_minutes = (rooms.default_expiry.as_secs() / 60)
        .max(min_minutes)
        .min(max_minutes);
    let page = pinned(include_str!("../../../web/index.html"))
        .replace("{{min_minutes}}", &min_minutes.to_string())
        .replace("{{max_minutes}}", &max_minutes.to_string())
        .replace("{{default_minutes}}", &default_minutes.to_string())
        .replace("{{max_users}}", &rooms.max_users_limit.to_string())
        .replace("{{default_users}}", &rooms.default_max_users.to_string())
        .replace(
            "{{max_message_chars}}",
            &config.hub.max_message_chars.to_string(),
        )
        .replace(
            "{{grace_seconds}}",
            &(config.store.presence_grace_ms / 1000).to_string(),
        )
        .replace(
            "{{edit_window_seconds}}",
            &config.hub.edit_window.as_secs().to_string(),
        )
        .replace(
            "{{min_expiry_seconds}}",
            &rooms.min_expiry.as_secs().to_string(),
        )
        .replace(
            "{{max_expiry_seconds}}",
            &rooms.max_expiry.as_secs().to_string(),
        );
    Bytes::from(page)
}

/// The lobby: create a room.
#[utoipa::path(tag = "pages", responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
#[get("/")]
pub async fn lobby(state: web::Data<AppState>) -> HttpResponse {
    html(state.page.clone())
}

/// A room's page (its `join_url`); the same page as the lobby, the script tells them apart.
#[utoipa::path(
    tag = "pages",
    params(RoomPath),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
#[get("/r/{room_id}")]
pub async fn room_page(state: web::Data<AppState>) -> HttpResponse {
    html(state.page.clone())
}

fn html(body: impl Into<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body.into())
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
    params(("file" = String, Path, description = "`app.js`, `seal.js`, `format.js`, `qrcode.js`, `docs.js`, `style.css` or `favicon.svg`")),
    responses(
        (status = 200, description = "The file", content_type = "text/plain", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
#[get("/assets/{file}")]
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some(&(_, body, kind)) = ASSETS.iter().find(|(name, _, _)| *name == file.as_str()) else {
        return Err(ApiError::new(ErrorCode::NotFound, "Not found"));
    };
    Ok(HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_text_names_counters_by_their_samples_and_drops_openmetrics_lines() {
        let openmetrics = "# HELP a_in Messages in.\n# TYPE a_in counter\na_in_total 3\n\
            # HELP lag Lag.\n# TYPE lag histogram\n# UNIT lag seconds\nlag_bucket{le=\"1.0\"} 2\n\
            # HELP n Open.\n# TYPE n gauge\nn 1\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP a_in_total Messages in.\n# TYPE a_in_total counter\na_in_total 3\n\
            # HELP lag Lag.\n# TYPE lag histogram\nlag_bucket{le=\"1.0\"} 2\n\
            # HELP n Open.\n# TYPE n gauge\nn 1\n"
        );
    }

    use super::*;

    #[test]
    fn the_page_carries_the_limits_it_is_given() {
        use crate::config::Settings;
        let html = |s: &Settings| {
            let config = Config::new(s.clone()).expect("valid settings");
            String::from_utf8(page(&config).to_vec()).expect("utf-8")
        };
        let page = html(&Settings::default());
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert!(page.contains(r#"min="1" max="1440" value="60""#), "minutes");
        assert!(page.contains(r#"min="1" max="1000" value="20""#), "users");
        assert!(page.contains(r#"data-limit="2000""#), "message");
        assert!(page.contains(r#"grace-seconds" content="10""#), "grace");
        assert!(
            page.contains(r#"edit-window-seconds" content="900""#),
            "edit window"
        );
        // Every script and stylesheet is pinned to what this build serves.
        let tags = page
            .split('<')
            .filter(|tag| tag.starts_with("script") || tag.starts_with("link rel=\"stylesheet"))
            .collect::<Vec<_>>();
        assert_eq!(tags.len(), 5, "{tags:?}");
        for tag in tags {
            let src = tag
                .split(['"'])
                .skip_while(|part| !part.ends_with("src=") && !part.ends_with("href="))
                .nth(1)
                .expect("a source");
            let name = src.strip_prefix("/assets/").expect("an asset");
            let (_, body, _) = ASSETS.iter().find(|(n, _, _)| *n == name).expect("served");
            use base64::Engine;
            use sha2::Digest;
            let hash = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha384::digest(body.as_bytes()));
            assert!(
                tag.contains(&format!(r#"integrity="sha384-{hash}""#)),
                "{tag}"
            );
        }
        let page = html(&Settings {
            min_expiry_seconds: 90,
            default_expiry_seconds: 900,
            max_expiry_seconds: 7 * 86_400,
            default_max_users: 8,
            max_users_limit: 50,
            max_message_chars: 500,
            ..Settings::default()
        });
        assert!(
            page.contains(r#"min="2" max="10080" value="15""#),
            "minutes"
        );
        assert!(page.contains(r#"min="1" max="50" value="8""#), "users");
        assert!(page.contains(r#"data-limit="500""#), "message");
        assert!(
            page.contains(r#"expiry-seconds" content="90 604800""#),
            "the bounds of a room's end"
        );
    }
}
