//! What this instance counts, in Prometheus types (registered by `api`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Members whose live connection is on this instance.
    pub members: Gauge,
    /// Rooms with at least one local connection.
    pub rooms_hosted: Gauge,
    /// Messages accepted from this instance's clients.
    pub messages_in: Counter,
    /// Message events this instance received from the bus (one per message per hosting instance).
    pub messages_out: Counter,
    /// Frames handed to local connections' queues.
    pub deliveries: Counter,
    /// Connections closed with 4008 because their queue was full.
    pub slow_consumers: Counter,
    /// Messages refused by the per-member rate limit.
    pub rate_limited: Counter,
    /// Delay from a message's timestamp to its fan-out here, in seconds.
    pub pubsub_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Gauge::default(),
            members: Gauge::default(),
            rooms_hosted: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            deliveries: Counter::default(),
            slow_consumers: Counter::default(),
            rate_limited: Counter::default(),
            pubsub_lag: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ephemera_connections",
            "Open WebSocket connections",
            self.connections.clone(),
        );
        registry.register(
            "ephemera_members",
            "Members whose live connection is on this instance",
            self.members.clone(),
        );
        registry.register(
            "ephemera_rooms_hosted",
            "Rooms with a local connection",
            self.rooms_hosted.clone(),
        );
        registry.register(
            "ephemera_messages_in",
            "Messages accepted from local clients",
            self.messages_in.clone(),
        );
        registry.register(
            "ephemera_messages_out",
            "Message events fanned out by this instance",
            self.messages_out.clone(),
        );
        registry.register(
            "ephemera_deliveries",
            "Frames queued to local connections",
            self.deliveries.clone(),
        );
        registry.register(
            "ephemera_slow_consumers",
            "Connections dropped for a full queue (4008)",
            self.slow_consumers.clone(),
        );
        registry.register(
            "ephemera_rate_limited_messages",
            "Messages refused by the rate limit",
            self.rate_limited.clone(),
        );
        registry.register_with_unit(
            "ephemera_pubsub_lag",
            "Delay from a message's acceptance to its fan-out on this instance",
            Unit::Seconds,
            self.pubsub_lag.clone(),
        );
    }
}
