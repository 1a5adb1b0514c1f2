//! The OpenAPI document: built by `utoipa-actix-web` from the same route list as the router
//! ([`crate::routes`]); here are its header and the pieces the handlers' `#[utoipa::path]`s share.

use protocol::rest::ErrorBody;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToResponse};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ephemera",
        description = "Ephemeral chat rooms. API.md is the full contract, with the WebSocket frames \
            and close codes. A request with a `password` query parameter is refused with \
            400 `password_in_url`: secrets never travel in URLs."
    ),
    components(schemas(protocol::frames::ClientFrame, protocol::frames::ServerFrame)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `Authorization: Bearer <owner_token | resume_token>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The `{room_id}` of a room's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RoomPath {
    /// The 21-character room id.
    room_id: String,
}

/// `invalid_json`, `password_in_url`
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

/// `unsupported_media_type`: a body not sent as `application/json`
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct NotJson(ErrorBody);

/// `password_required`, `invalid_password`, `unauthorized`
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct BadCredentials(ErrorBody);

/// `unauthorized`: no token, or not one of this room
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct BadToken(ErrorBody);

/// `room_not_found`: never existed, expired or closed
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct RoomNotFound(ErrorBody);

/// `invalid_request`: a field is missing, mistyped or out of range
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Invalid(ErrorBody);

/// `unavailable`: the store does not answer
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// `rate_limited`: a limit of this client is reached (rooms created per IP, wrong passwords per
/// IP and room, a member's messages)
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds until the limit lets this client in again")))]
#[allow(dead_code)]
pub struct RateLimited(ErrorBody);
