//! What every handler shares (`AppState`), and the counters only the HTTP layer keeps.

use crate::config::Config;
use crate::{passwords, ws};
use actix_web::web;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use realtime::metrics::Metrics;
use realtime::{Commands, Hub};
use std::sync::Arc;
use store::Store;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    /// What members do, shared with the WebSocket sessions.
    pub commands: Commands,
    pub hub: Hub,
    pub(crate) passwords: passwords::Passwords,
    /// Open WebSockets per client IP.
    pub(crate) sockets_per_ip: Arc<ws::IpSlots>,
    /// WebSocket connects per client IP (a rate).
    pub(crate) connects_per_ip: ws::IpRates,
    pub(crate) metrics: ApiMetrics,
    pub(crate) registry: Registry,
    /// The UI's page with this instance's limits (`ops::page`).
    pub(crate) page: web::Bytes,
}

/// What only the HTTP layer sees.
#[derive(Default)]
pub(crate) struct ApiMetrics {
    /// Requests refused by a per-IP limit, by limit.
    pub(crate) rejections: Family<[(&'static str, &'static str); 1], Counter>,
    /// 1 while `/readyz` would answer 200 (refreshed on every scrape).
    pub(crate) ready: prometheus_client::metrics::gauge::Gauge,
}

impl ApiMetrics {
    pub(crate) fn rejected(&self, limit: &'static str) {
        self.rejections.get_or_create(&[("limit", limit)]).inc();
    }

    /// The registry `/metrics` serves: the store's, the hub's and these.
    pub(crate) fn registry(&self, store: &Store, hub: &Metrics) -> Registry {
        let mut registry = Registry::default();
        store.register_metrics(&mut registry);
        hub.register(&mut registry);
        registry.register(
            "ephemera_rejected_requests",
            "Requests refused by a per-IP limit",
            self.rejections.clone(),
        );
        registry.register(
            "ephemera_ready",
            "1 while the instance is ready (store and pub/sub up, not draining)",
            self.ready.clone(),
        );
        registry
    }
}
