//! Configuration: every `EPHEMERA_*` variable of API.md (plus a few operational knobs), read
//! once with envy and validated before anything starts. The only place that reads the
//! environment.

use ipnet::IpNet;
use protocol::limits;
use realtime::HubConfig;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use store::{Rate, StoreConfig};

/// Raw settings, as named in the environment without the `EPHEMERA_` prefix.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    pub bind_addr: String,
    /// Where `/metrics` is served instead of `bind_addr`, so that it stays off the public
    /// listener (empty: on `bind_addr`).
    pub metrics_bind_addr: String,
    pub public_url: String,
    pub redis_url: Option<String>,
    pub default_expiry_seconds: u64,
    pub min_expiry_seconds: u64,
    pub max_expiry_seconds: u64,
    pub default_max_users: u32,
    pub max_users_limit: u32,
    pub max_message_chars: usize,
    pub max_frame_bytes: usize,
    pub history_limit: usize,
    /// Bytes of message frames kept per room (the newest messages that fit).
    pub history_max_bytes: usize,
    /// Rooms at once, in all (past it, creating answers 503).
    pub max_rooms: usize,
    /// Rooms one client address (IPv6 on its prefix) holds at once (past it, 429).
    pub max_rooms_per_client: usize,
    pub ticket_ttl_seconds: u64,
    pub presence_grace_seconds: u64,
    /// How long a room that ends with its owner waits for it by default (a room may set its
    /// own, from the presence grace to 3600 s).
    pub owner_grace_seconds: u64,
    /// How long after sending its author may edit a message (0: never).
    pub edit_window_seconds: u64,
    pub message_rate_per_second: u32,
    pub message_burst: u32,
    /// Messages a room accepts per second, every member together (burst: twice).
    pub room_message_rate_per_second: u32,
    /// New members a room takes per second (burst: twice).
    pub room_join_rate_per_second: u32,
    pub room_create_per_minute: u32,
    pub password_attempts_per_minute: u32,
    /// Wrong passwords per room per minute over every client IP.
    pub room_password_attempts_per_minute: u32,
    /// Room details and history reads per client IP per minute.
    pub reads_per_minute: u32,
    /// Join tickets asked for per client IP per minute.
    pub joins_per_minute: u32,
    pub allowed_origins: Option<String>,
    /// Origins whose scripts may call the REST API (CORS); none by default.
    pub cors_origins: Option<String>,
    pub trusted_proxies: Option<String>,
    /// IPv6 clients are one client per prefix of this many bits (48 to 128): a home connection
    /// has a whole /64, so per-address limits would give it 2^64 budgets.
    pub ipv6_prefix: u8,
    /// `text` or `json`.
    pub log_format: String,
    /// The key of the room-id hashes in logs; instances that share it log one room alike.
    pub log_key: Option<String>,
    /// Seconds between WebSocket pings; a socket silent for two intervals is dropped.
    pub ping_interval_seconds: u64,
    /// Bytes queued per connection before it is dropped as a slow consumer (4008).
    pub outbound_queue_bytes: usize,
    /// A write to a client blocked this long drops it as a slow consumer (4008).
    pub stall_timeout_seconds: u64,
    /// WebSockets one instance holds at most; more are refused with 1013.
    pub max_connections: usize,
    /// WebSockets one instance holds for one client IP; more are refused with 1013.
    pub max_connections_per_ip: usize,
    /// New WebSockets one instance accepts per second (burst: as many); more get 1013.
    pub connect_rate_per_second: u32,
    /// WebSocket connects per client IP per second (a bucket of two seconds' worth).
    pub connect_rate_per_ip_per_second: u32,
    /// On SIGTERM, how long readiness fails before connections are closed (lets load
    /// balancers stop routing here first).
    pub drain_delay_seconds: u64,
    /// Longest a graceful shutdown waits for connections to close.
    pub shutdown_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind_addr: "0.0.0.0:8080".into(),
            metrics_bind_addr: String::new(),
            public_url: "http://localhost:8080".into(),
            redis_url: None,
            default_expiry_seconds: limits::DEFAULT_EXPIRY_SECONDS,
            min_expiry_seconds: limits::MIN_EXPIRY_SECONDS,
            max_expiry_seconds: limits::MAX_EXPIRY_SECONDS,
            default_max_users: limits::DEFAULT_MAX_USERS,
            max_users_limit: limits::MAX_USERS_LIMIT,
            max_message_chars: limits::MAX_MESSAGE_CHARS,
            max_frame_bytes: limits::MAX_FRAME_BYTES,
            history_limit: limits::HISTORY_LIMIT,
            history_max_bytes: 256 * 1024,
            max_rooms: 100_000,
            max_rooms_per_client: 20,
            ticket_ttl_seconds: limits::TICKET_TTL_SECONDS,
            presence_grace_seconds: limits::PRESENCE_GRACE_SECONDS,
            owner_grace_seconds: limits::OWNER_GRACE_SECONDS,
            edit_window_seconds: limits::EDIT_WINDOW_SECONDS,
            message_rate_per_second: limits::MESSAGE_RATE_PER_SECOND,
            message_burst: limits::MESSAGE_BURST,
            room_message_rate_per_second: 100,
            room_join_rate_per_second: 50,
            room_create_per_minute: limits::ROOM_CREATE_PER_MINUTE,
            password_attempts_per_minute: limits::PASSWORD_ATTEMPTS_PER_MINUTE,
            room_password_attempts_per_minute: limits::ROOM_PASSWORD_ATTEMPTS_PER_MINUTE,
            reads_per_minute: 600,
            joins_per_minute: 60,
            allowed_origins: None,
            cors_origins: None,
            trusted_proxies: None,
            ipv6_prefix: 64,
            log_format: "text".into(),
            log_key: None,
            ping_interval_seconds: limits::PING_INTERVAL_SECONDS,
            outbound_queue_bytes: 1 << 20,
            stall_timeout_seconds: 10,
            max_connections: 50_000,
            max_connections_per_ip: 200,
            connect_rate_per_second: 1000,
            connect_rate_per_ip_per_second: 20,
            drain_delay_seconds: 0,
            shutdown_timeout_seconds: 25,
        }
    }
}

/// Validated configuration in sections, each value in its unit; passed down from `main`.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind_addr: SocketAddr,
    /// `EPHEMERA_METRICS_BIND_ADDR`: `/metrics` on a listener of its own.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// `EPHEMERA_PUBLIC_URL` without a trailing slash.
    pub public_url: String,
    /// The same with `ws`/`wss`, for `ws_url`.
    pub public_ws_url: String,
    /// Browser origins allowed on the WebSocket, normalized (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Origins allowed to call the REST API from scripts (CORS), normalized.
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// IPv6 clients are one client per prefix of this many bits.
    pub ipv6_prefix: u8,
    pub log_format: LogFormat,
    /// The key of the room-id hashes in logs (a random one per process without it).
    pub log_key: Option<String>,
    /// The shared store; the in-memory one without it.
    pub redis_url: Option<String>,
    /// What a room may be, as `POST /rooms` and the page offer it.
    pub rooms: RoomRules,
    /// Per-client limits of the front door.
    pub limits: ClientLimits,
    /// The store's rules.
    pub store: StoreConfig,
    /// The hub's rules.
    pub hub: HubConfig,
    /// How long a join ticket lives.
    pub ticket_ttl: Duration,
    /// On SIGTERM, how long readiness fails before connections are closed.
    pub drain_delay: Duration,
    /// Longest a graceful shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
}

/// What a room may be.
#[derive(Debug, Clone)]
pub struct RoomRules {
    pub min_expiry: Duration,
    pub max_expiry: Duration,
    pub default_expiry: Duration,
    pub default_max_users: u32,
    pub max_users_limit: u32,
    /// A room's owner grace: its bounds (the presence grace, and at most an hour) and default.
    pub min_owner_grace: Duration,
    pub max_owner_grace: Duration,
    pub default_owner_grace: Duration,
}

/// Limits per client (its IP, or its IPv6 prefix) at the front door.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    pub room_creates_per_minute: u32,
    pub password_attempts_per_minute: u32,
    /// Wrong passwords per room per minute, every client together.
    pub room_password_attempts_per_minute: u32,
    pub reads_per_minute: u32,
    pub joins_per_minute: u32,
    /// A WebSocket frame larger than this closes the socket (1009).
    pub max_frame_bytes: usize,
    pub max_connections_per_ip: usize,
    pub connect_rate_per_ip_per_second: u32,
}

/// The store's rules, with their units.
fn store_config(s: &Settings) -> StoreConfig {
    let twice = |per_second: u32| Rate {
        per_second,
        burst: per_second.saturating_mul(2),
    };
    StoreConfig {
        presence_grace_ms: s.presence_grace_seconds * 1000,
        history_limit: s.history_limit,
        history_max_bytes: s.history_max_bytes,
        max_rooms: s.max_rooms,
        max_rooms_per_client: s.max_rooms_per_client,
        room_messages: twice(s.room_message_rate_per_second),
        room_joins: twice(s.room_join_rate_per_second),
    }
}

/// The hub's rules, with their units.
fn hub_config(s: &Settings, store: &StoreConfig) -> HubConfig {
    HubConfig {
        max_message_chars: s.max_message_chars,
        history_limit: s.history_limit,
        edit_window: Duration::from_secs(s.edit_window_seconds),
        rate: Rate {
            per_second: s.message_rate_per_second,
            burst: s.message_burst,
        },
        refresh_interval: Duration::from_millis(store.refresh_ms()),
        ping_interval: Duration::from_secs(s.ping_interval_seconds),
        queue_bytes: s.outbound_queue_bytes,
        stall_timeout: Duration::from_secs(s.stall_timeout_seconds),
        max_connections: s.max_connections,
        connect_rate: s.connect_rate_per_second,
        unsubscribe_delay: Duration::from_secs(5),
        sweep_interval: Duration::from_millis(100),
    }
}

/// A setting that cannot be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("EPHEMERA_{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn bad(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads `EPHEMERA_*` from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let settings: Settings = envy::prefixed("EPHEMERA_")
            .from_env()
            // envy names the variable without its prefix.
            .map_err(|e| {
                anyhow::anyhow!(
                    e.to_string()
                        .replace(" provided by ", " provided by EPHEMERA_")
                )
            })?;
        Ok(Config::new(settings)?)
    }

    /// Validates settings; every error names its variable.
    pub fn new(s: Settings) -> Result<Config, ConfigError> {
        let bind_addr = s.bind_addr.parse().map_err(|_| {
            bad(
                "BIND_ADDR",
                format!("'{}' is not an address like 0.0.0.0:8080", s.bind_addr),
            )
        })?;
        let metrics_bind_addr = match s.metrics_bind_addr.trim() {
            "" => None,
            addr => Some(addr.parse().map_err(|_| {
                bad(
                    "METRICS_BIND_ADDR",
                    format!("'{addr}' is not an address like 0.0.0.0:9090"),
                )
            })?),
        };
        let public_url = s.public_url.trim_end_matches('/').to_owned();
        let origin = origin_of(&public_url).ok_or_else(|| {
            bad(
                "PUBLIC_URL",
                format!("'{}' is not an http(s) URL", s.public_url),
            )
        })?;
        let public_ws_url = if let Some(rest) = public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", public_url.trim_start_matches("http://"))
        };
        let origins = |name: &'static str, list: &str| {
            list.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| origin_of(o).ok_or_else(|| bad(name, format!("'{o}' is not an origin"))))
                .collect::<Result<Vec<_>, _>>()
        };
        let allowed_origins = match &s.allowed_origins {
            None => vec![origin],
            Some(list) => origins("ALLOWED_ORIGINS", list)?,
        };
        let cors_origins = origins("CORS_ORIGINS", s.cors_origins.as_deref().unwrap_or(""))?;
        let trusted_proxies = match &s.trusted_proxies {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<IpNet>()
                        .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| bad("TRUSTED_PROXIES", format!("'{p}' is not an IP or CIDR")))
                })
                .collect::<Result<_, _>>()?,
        };
        let log_format = match s.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "LOG_FORMAT",
                    format!("'{other}' is neither text nor json"),
                ));
            }
        };
        if s.min_expiry_seconds == 0 {
            return Err(bad("MIN_EXPIRY_SECONDS", "must be at least 1"));
        }
        if s.max_expiry_seconds < s.min_expiry_seconds {
            return Err(bad(
                "MAX_EXPIRY_SECONDS",
                "must not be below EPHEMERA_MIN_EXPIRY_SECONDS",
            ));
        }
        if !(s.min_expiry_seconds..=s.max_expiry_seconds).contains(&s.default_expiry_seconds) {
            return Err(bad(
                "DEFAULT_EXPIRY_SECONDS",
                "must lie between the minimum and maximum expiry",
            ));
        }
        if !(s.presence_grace_seconds..=limits::MAX_OWNER_GRACE_SECONDS)
            .contains(&s.owner_grace_seconds)
        {
            return Err(bad(
                "OWNER_GRACE_SECONDS",
                format!(
                    "must lie between EPHEMERA_PRESENCE_GRACE_SECONDS and {}",
                    limits::MAX_OWNER_GRACE_SECONDS
                ),
            ));
        }
        if s.max_users_limit == 0 {
            return Err(bad("MAX_USERS_LIMIT", "must be at least 1"));
        }
        if !(1..=s.max_users_limit).contains(&s.default_max_users) {
            return Err(bad(
                "DEFAULT_MAX_USERS",
                "must lie between 1 and EPHEMERA_MAX_USERS_LIMIT",
            ));
        }
        let positive: [(&'static str, u64); 18] = [
            ("MAX_MESSAGE_CHARS", s.max_message_chars as u64),
            ("MAX_FRAME_BYTES", s.max_frame_bytes as u64),
            ("HISTORY_LIMIT", s.history_limit as u64),
            ("HISTORY_MAX_BYTES", s.history_max_bytes as u64),
            ("MAX_ROOMS", s.max_rooms as u64),
            ("MAX_ROOMS_PER_CLIENT", s.max_rooms_per_client as u64),
            ("TICKET_TTL_SECONDS", s.ticket_ttl_seconds),
            ("PRESENCE_GRACE_SECONDS", s.presence_grace_seconds),
            (
                "MESSAGE_RATE_PER_SECOND",
                u64::from(s.message_rate_per_second),
            ),
            ("MESSAGE_BURST", u64::from(s.message_burst)),
            (
                "ROOM_MESSAGE_RATE_PER_SECOND",
                u64::from(s.room_message_rate_per_second),
            ),
            (
                "ROOM_JOIN_RATE_PER_SECOND",
                u64::from(s.room_join_rate_per_second),
            ),
            ("PING_INTERVAL_SECONDS", s.ping_interval_seconds),
            ("OUTBOUND_QUEUE_BYTES", s.outbound_queue_bytes as u64),
            ("STALL_TIMEOUT_SECONDS", s.stall_timeout_seconds),
            ("MAX_CONNECTIONS", s.max_connections as u64),
            ("MAX_CONNECTIONS_PER_IP", s.max_connections_per_ip as u64),
            (
                "CONNECT_RATE_PER_SECOND",
                u64::from(s.connect_rate_per_second),
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(name, "must be at least 1"));
        }
        if s.max_frame_bytes < 1024 {
            return Err(bad("MAX_FRAME_BYTES", "must be at least 1024"));
        }
        if !(48..=128).contains(&s.ipv6_prefix) {
            return Err(bad("IPV6_PREFIX", "must be 48 to 128"));
        }
        let store = store_config(&s);
        let hub = hub_config(&s, &store);
        Ok(Config {
            bind_addr,
            metrics_bind_addr,
            public_url,
            public_ws_url,
            allowed_origins,
            cors_origins,
            trusted_proxies,
            ipv6_prefix: s.ipv6_prefix,
            log_format,
            rooms: RoomRules {
                min_expiry: Duration::from_secs(s.min_expiry_seconds),
                max_expiry: Duration::from_secs(s.max_expiry_seconds),
                default_expiry: Duration::from_secs(s.default_expiry_seconds),
                default_max_users: s.default_max_users,
                max_users_limit: s.max_users_limit,
                min_owner_grace: Duration::from_secs(s.presence_grace_seconds),
                max_owner_grace: Duration::from_secs(limits::MAX_OWNER_GRACE_SECONDS),
                default_owner_grace: Duration::from_secs(s.owner_grace_seconds),
            },
            limits: ClientLimits {
                room_creates_per_minute: s.room_create_per_minute,
                password_attempts_per_minute: s.password_attempts_per_minute,
                room_password_attempts_per_minute: s.room_password_attempts_per_minute,
                reads_per_minute: s.reads_per_minute,
                joins_per_minute: s.joins_per_minute,
                max_frame_bytes: s.max_frame_bytes,
                max_connections_per_ip: s.max_connections_per_ip,
                connect_rate_per_ip_per_second: s.connect_rate_per_ip_per_second,
            },
            store,
            hub,
            ticket_ttl: Duration::from_secs(s.ticket_ttl_seconds),
            drain_delay: Duration::from_secs(s.drain_delay_seconds),
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_seconds),
            log_key: s.log_key,
            redis_url: s.redis_url,
        })
    }
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased; `None` if it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    Some(format!(
        "{scheme}://{}",
        host.strip_suffix(default_port).unwrap_or(host)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let c = Config::new(Settings::default()).expect("defaults are valid");
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.public_ws_url, "ws://localhost:8080");
        assert_eq!(c.allowed_origins, vec!["http://localhost:8080".to_string()]);
        assert_eq!(c.store.history_limit, 100);
        assert_eq!(c.hub.history_limit, 100);
        assert_eq!(c.store.presence_grace_ms, 10_000);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = Config::new(Settings {
            min_expiry_seconds: 0,
            ..Settings::default()
        })
        .expect_err("invalid");
        assert!(
            err.to_string().starts_with("EPHEMERA_MIN_EXPIRY_SECONDS"),
            "{err}"
        );
        let err = Config::new(Settings {
            public_url: "ftp://x".into(),
            ..Settings::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().starts_with("EPHEMERA_PUBLIC_URL"), "{err}");
        let err = Config::new(Settings {
            trusted_proxies: Some("10.0.0.0/8, nope".into()),
            ..Settings::default()
        })
        .expect_err("invalid");
        assert!(
            err.to_string().starts_with("EPHEMERA_TRUSTED_PROXIES"),
            "{err}"
        );
        let err = Config::new(Settings {
            default_max_users: 5000,
            ..Settings::default()
        })
        .expect_err("invalid");
        assert!(
            err.to_string().starts_with("EPHEMERA_DEFAULT_MAX_USERS"),
            "{err}"
        );
    }

    #[test]
    fn the_readme_documents_exactly_these_settings() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .expect("section");
        let documented: std::collections::BTreeSet<String> = table
            .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.starts_with("EPHEMERA_"))
            .map(str::to_owned)
            .collect();
        let settings = serde_json::to_value(Settings::default()).expect("serializes");
        let known: std::collections::BTreeSet<String> = settings
            .as_object()
            .expect("object")
            .keys()
            .map(|k| format!("EPHEMERA_{}", k.to_ascii_uppercase()))
            .collect();
        assert_eq!(
            documented, known,
            "README's configuration table and Settings differ"
        );
    }

    /// `(setting, default)` pairs of a markdown table whose column `settings` names
    /// `EPHEMERA_*` variables and column `defaults` their defaults (comma-separated, in the
    /// same order): rows whose two lists do not pair up one to one (a default in words, a
    /// variable that is not ours) are left out.
    fn documented_defaults(table: &str, settings: usize, defaults: usize) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for row in table.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (Some(names), Some(values)) = (cells.get(settings + 1), cells.get(defaults + 1))
            else {
                continue;
            };
            let names: Vec<&str> = names.split(", ").map(|n| n.trim_matches('`')).collect();
            let values: Vec<&str> = values.split(", ").map(|v| v.trim_matches('`')).collect();
            let ours = names.iter().all(|n| n.starts_with("EPHEMERA_"));
            let plain = values
                .iter()
                .all(|v| !v.is_empty() && !v.contains(' ') && *v != "unset" && *v != "none");
            if ours && plain && names.len() == values.len() {
                pairs.extend(
                    names
                        .iter()
                        .zip(&values)
                        .map(|(n, v)| (n.to_string(), v.to_string())),
                );
            }
        }
        pairs
    }

    /// Every default API.md's limits table and README's configuration table state is the
    /// default the code has (each variable's, not a copy of the table's numbers).
    #[test]
    fn the_documented_defaults_are_the_codes() {
        let api = include_str!("../../../docs/API.md");
        let limits = api
            .split("## Limits, defaults and their settings")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .expect("API.md's limits");
        let readme = include_str!("../../../README.md");
        let config = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .expect("README's configuration");
        let settings = serde_json::to_value(Settings::default()).expect("serializes");
        let mut pinned = std::collections::BTreeSet::new();
        for (name, default) in documented_defaults(limits, 1, 2)
            .into_iter()
            .chain(documented_defaults(config, 0, 1))
        {
            let key = name.trim_start_matches("EPHEMERA_").to_ascii_lowercase();
            let value = match &settings[&key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(value, default, "{name}'s documented default");
            pinned.insert(name);
        }
        for name in [
            "EPHEMERA_MIN_EXPIRY_SECONDS",
            "EPHEMERA_MAX_EXPIRY_SECONDS",
            "EPHEMERA_DEFAULT_EXPIRY_SECONDS",
            "EPHEMERA_MESSAGE_RATE_PER_SECOND",
            "EPHEMERA_MESSAGE_BURST",
            "EPHEMERA_ROOM_CREATE_PER_MINUTE",
            "EPHEMERA_PASSWORD_ATTEMPTS_PER_MINUTE",
            "EPHEMERA_PING_INTERVAL_SECONDS",
            "EPHEMERA_PRESENCE_GRACE_SECONDS",
            "EPHEMERA_HISTORY_LIMIT",
            "EPHEMERA_EDIT_WINDOW_SECONDS",
        ] {
            assert!(pinned.contains(name), "{name} is not pinned: {pinned:?}");
        }
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            origin_of("HTTPS://Chat.Example.com:443/x").as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("null"), None);
        let c = Config::new(Settings {
            public_url: "https://chat.example.com/".into(),
            trusted_proxies: Some("127.0.0.1, 10.0.0.0/8".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(c.public_ws_url, "wss://chat.example.com");
        assert_eq!(c.trusted_proxies.len(), 2);
    }
}
