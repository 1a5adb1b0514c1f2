//! Every route, in one list: the served app and the OpenAPI document both come from it.

use crate::{ops, rest, sse, ws};
use actix_web::App;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

/// Every route. The served routes and the OpenAPI document both come from here, so neither can
/// have one the other lacks.
pub(crate) fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(rest::create_room)
        .service(rest::get_room)
        .service(rest::delete_room)
        .service(rest::update_room)
        .service(rest::kick_member)
        .service(rest::close_room)
        .service(rest::join)
        .service(rest::history)
        .service(rest::post_message)
        .service(rest::edit_message)
        .service(rest::delete_message)
        .service(rest::react)
        .service(rest::leave)
        .service(rest::resume)
        .service(sse::room_events)
        .service(ws::upgrade)
        .service(ops::healthz)
        .service(ops::readyz)
        .service(ops::metrics)
        .service(ops::openapi)
        .service(ops::docs)
        .service(ops::lobby)
        .service(ops::room_page)
        .service(ops::room_qr)
        .service(ops::asset);
}

/// The OpenAPI document of every route in [`routes`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(crate::openapi::ApiDoc::openapi())
        .configure(routes)
        .split_for_parts()
        .1
}
