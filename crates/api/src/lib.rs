//! The `ephemera` binary's library: configuration, the HTTP routes, the WebSocket upgrade and
//! the embedded UI and docs.
//!
//! - [`config`]: `EPHEMERA_*` settings, read once and validated.
//! - [`Application`]: builds the store, the hub and the HTTP server; `run` serves until the
//!   shutdown future it is given completes (SIGTERM/SIGINT for the binary), then drains
//!   gracefully. Tests build it on port 0.
//! - `routes`: the one list of routes (and the OpenAPI document made from it); `state`: what
//!   every handler shares.
//! - `rest` and `ws`: the contract's endpoints; `ops`: health, readiness, metrics, docs, UI;
//!   `http`: what every answer shares, the app's and the WebSocket front door's.
//! - `error`: the one error type, answered as `{"detail", "code"}`.
//!
//! Architecture invariant: the only crate that reads the environment or knows actix.

pub mod config;
mod error;
mod extract;
mod http;
mod openapi;
mod ops;
mod passwords;
mod redact;
mod rest;
mod routes;
mod socket;
mod sse;
mod state;
mod ws;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::{REQUEST_ID, cors, log_request, password_in, request_id, security_headers};
pub use crate::routes::openapi;
use crate::routes::routes;
use crate::state::ApiMetrics;
pub use crate::state::AppState;
use actix_http::{HttpService, Method};
use actix_server::Server;
use actix_service::{fn_factory, fn_service, map_config};
use actix_web::dev::{AppConfig, Service};
use actix_web::middleware::{Condition, NormalizePath};
use actix_web::{App, web};
use anyhow::Context;
use futures_util::FutureExt;
use realtime::Hub;
use realtime::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;
use tokio::net::{TcpSocket, TcpStream};
use utoipa_actix_web::AppExt;

/// A built, bound server.
pub struct Application {
    server: Server,
    port: u16,
    hub: Hub,
    shutdown_timeout: Duration,
    drain_delay: Duration,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        redact::init(config.log_key.as_deref());
        let (store, bus) = match &config.redis_url {
            Some(url) => Store::redis(url, config.store.clone())
                .await
                .with_context(|| "cannot use the Redis store (EPHEMERA_REDIS_URL)")?,
            None => Store::memory(config.store.clone()),
        };
        let metrics = Arc::new(Metrics::default());
        let api_metrics = ApiMetrics::default();
        let registry = api_metrics.registry(&store, &metrics);
        let hub = Hub::start(store.clone(), bus, config.hub.clone(), metrics);
        let listener = listen(config.bind_addr).with_context(|| {
            format!("cannot listen on {} (EPHEMERA_BIND_ADDR)", config.bind_addr)
        })?;
        let metrics_listener = match config.metrics_bind_addr {
            Some(addr) => Some(listen(addr).with_context(|| {
                format!("cannot listen on {addr} (EPHEMERA_METRICS_BIND_ADDR)")
            })?),
            None => None,
        };
        let (shutdown_timeout, drain_delay) = (config.shutdown_timeout, config.drain_delay);
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let state = web::Data::new(AppState {
            page: ops::page(&config),
            config,
            store,
            commands: hub.commands().clone(),
            hub: hub.clone(),
            passwords: passwords::Passwords::new(cores),
            sockets_per_ip: Arc::default(),
            connects_per_ip: ws::IpRates::default(),
            metrics: api_metrics,
            registry,
        });
        let port = listener.local_addr()?.port();
        let server = serve(state, listener, metrics_listener, shutdown_timeout)?;
        Ok(Application {
            server,
            port,
            hub,
            shutdown_timeout,
            drain_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance's hub (tests drain it directly).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Serves until `shutdown` completes (the binary passes [`shutdown_signal`]), then drains:
    /// readiness fails at once, connections close with 1001 in batches (members keep their
    /// grace), and the server stops.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let hub = self.hub.clone();
        let (delay, timeout) = (self.drain_delay, self.shutdown_timeout);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining connections");
            hub.drain(delay, timeout).await;
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// The HTTP server on `listener` (and `/metrics` alone on `metrics_listener`, if given):
/// actix-web's app, but with an upgrade service, so WebSocket upgrades reach `ws::accept` with
/// their socket instead of the app (see ws.rs).
fn serve(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    shutdown_timeout: Duration,
) -> std::io::Result<Server> {
    // A peer that has acknowledged nothing, or kept its window closed, for twice the stall
    // timeout is gone, even while nothing is being written to it (everything sent sits in the
    // kernel's buffers): the kernel drops the connection. Twice, so that while the app writes,
    // its own stall check (4008) comes first.
    let user_timeout = state.hub.config().stall_timeout * 2;
    let app_state = state.clone();
    let server = Server::build()
        .backlog(BACKLOG)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout.as_secs())
        .listen("ephemera", listener, move || {
            let state = app_state.clone();
            let app = app(state.clone());
            HttpService::<TcpStream, _, _>::build()
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .on_connect_ext(move |io: &TcpStream, _| tune(io, user_timeout))
                .upgrade(fn_factory(move || {
                    let state = state.clone();
                    async move {
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            ws::accept(state.clone(), req, framed)
                        }))
                    }
                }))
                .h1(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    let server = match metrics_listener {
        Some(listener) => server.listen("metrics", listener, move || {
            let state = state.clone();
            HttpService::<TcpStream, _, _>::build()
                .client_request_timeout(Duration::from_secs(5))
                .h1(map_config(
                    App::new()
                        .app_data(state)
                        .route("/metrics", web::get().to(ops::scrape)),
                    |_| AppConfig::default(),
                ))
                .tcp()
        })?,
        None => server,
    };
    Ok(server.run())
}

/// The app: every route, and the middleware every request passes (`http.rs`'s helpers).
fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors_origins = state.config.cors_origins.clone();
    App::new()
        .into_utoipa_app()
        .configure(routes)
        .into_app()
        .app_data(state)
        .app_data(
            web::QueryConfig::default().error_handler(|err, _| ApiError::invalid_query(err).into()),
        )
        .default_service(web::to(ops::fallback))
        .wrap_fn(|mut req, srv| {
            if password_in(req.query_string()) {
                let res = req.error_response(ApiError::password_in_url());
                return futures_util::future::ready(Ok(res)).boxed_local();
            }
            // A room id of another shape names no room: 404 before any store call.
            if let Some(id) = req.path().strip_prefix("/rooms/")
                && !protocol::is_room_id(id.split('/').next().unwrap_or(id))
            {
                let res = req.error_response(ApiError::room_not_found());
                return futures_util::future::ready(Ok(res)).boxed_local();
            }
            // HEAD is GET without the body, which actix-http leaves out of a HEAD
            // request's response by itself.
            if req.method() == Method::HEAD {
                req.head_mut().method = Method::GET;
            }
            srv.call(req).boxed_local()
        })
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        .wrap(security_headers())
        .wrap_fn(|req, srv| {
            // Method, path and status only: query strings carry tickets. Each request
            // has an id (the caller's `X-Request-Id` if it is a sane one), logged and
            // echoed in the response.
            let started = Instant::now();
            let method = req.method().clone();
            let path = req.path().to_owned();
            let request_id = request_id(req.headers());
            srv.call(req).map(move |mut res| {
                let status = match &mut res {
                    Ok(res) => {
                        let headers = res.headers_mut();
                        if let Ok(value) = request_id.parse() {
                            headers.insert(REQUEST_ID.clone(), value);
                        }
                        // A room's state changes by the second: no answer about a
                        // room may be cached (a page restored by Back asks again).
                        if path.starts_with("/rooms") {
                            headers.insert(
                                actix_web::http::header::CACHE_CONTROL,
                                actix_web::http::header::HeaderValue::from_static("no-store"),
                            );
                        }
                        res.status().as_u16()
                    }
                    Err(err) => err.as_response_error().status_code().as_u16(),
                };
                log_request(&request_id, &method, &path, status, started);
                res
            })
        })
        .wrap(NormalizePath::trim())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// An accepted connection's options: no Nagle delay, and `TCP_USER_TIMEOUT`.
fn tune(io: &TcpStream, user_timeout: Duration) {
    let _ = io.set_nodelay(true);
    let _ = socket2::SockRef::from(io).set_tcp_user_timeout(Some(user_timeout));
}

/// Connections the kernel may queue before they are accepted.
const BACKLOG: u32 = 4096;

/// The listening socket (port 0 picks a free port).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::tune;
    use std::time::Duration;

    /// A peer that stops acknowledging (a phone that lost its network) is dropped by the kernel
    /// after the stall timeout, whether or not anything is being written to it.
    #[tokio::test]
    async fn accepted_sockets_give_up_on_a_silent_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        tune(&accepted, Duration::from_secs(7));
        let sock = socket2::SockRef::from(&accepted);
        assert_eq!(
            sock.tcp_user_timeout().expect("read"),
            Some(Duration::from_secs(7))
        );
        assert!(sock.tcp_nodelay().expect("read"));
    }
}
