//! Operations endpoints, static pages, headers, and privacy of the logs.

use crate::helpers::*;
use crate::process::{Process, binary};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.say("hi", "c").await;
    bob.next_of("message").await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for name in [
        "ephemera_connections 1",
        "ephemera_rooms_hosted 1",
        "ephemera_messages_in_total 1",
        "ephemera_messages_out_total 1",
        "ephemera_deliveries_total",
        "ephemera_slow_consumers_total 0",
        "ephemera_store_op_seconds_bucket",
        "ephemera_pubsub_lag_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

/// With `EPHEMERA_METRICS_BIND_ADDR`, metrics are served there and not on the public
/// listener; the shipped nginx.conf never passes `/metrics` on.
#[tokio::test]
async fn metrics_stay_off_the_public_listener() {
    let port = store::testing::free_port();
    let addr = format!("127.0.0.1:{port}");
    let process = Process::start(&[("EPHEMERA_METRICS_BIND_ADDR", addr.as_str())]);
    let public = TestApp::at(process.port);
    assert_eq!(public.get("/metrics").await.status(), 404);
    assert_eq!(public.get("/readyz").await.status(), 200);
    let scraper = TestApp::at(port);
    let res = scraper.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .expect("text")
            .contains("ephemera_connections")
    );
    assert_eq!(scraper.get("/readyz").await.status(), 404, "metrics only");

    let cluster = crate::cluster::Cluster::start(1, &[]);
    let via = cluster.app();
    assert_eq!(via.get("/metrics").await.status(), 404, "not through nginx");
    assert_eq!(cluster.instance(0).get("/metrics").await.status(), 200);
}

/// A plain scrape gets the Prometheus text format, which Prometheus's own parser reads; a
/// scraper that asks for OpenMetrics gets it.
#[tokio::test]
async fn metrics_answer_the_format_the_scraper_asks_for() {
    let app = spawn_app().await;
    let plain = app.get("/metrics").await;
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = plain.text().await.expect("text");
    assert!(
        !body.contains("# EOF") && !body.contains("# UNIT"),
        "{body}"
    );
    let parse = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as parse\n\
        for f in parse(sys.stdin.read()):\n    print(f.name, f.type)";
    let families = crate::ship::run_with_stdin(crate::ship::tool("python"), &["-c", parse], &body);
    for family in [
        "ephemera_messages_in counter",
        "ephemera_store_op_seconds histogram",
    ] {
        assert!(
            families.lines().any(|l| l == family),
            "{family}:\n{families}"
        );
    }
    let res = app
        .http
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(res.text().await.expect("text").ends_with("# EOF\n"));
}

#[tokio::test]
async fn pages_docs_and_openapi_are_served_with_strict_headers() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/r/V1StGXR8_Z5jdHi6B-myT",
        "/docs",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/docs.js",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        let body = res.text().await.expect("text");
        assert!(
            !body.contains("<script>") && !body.contains("style="),
            "{path} has inline code"
        );
    }
    // The router and the document come from one list (api::routes), so every served route is
    // documented; here: the document holds exactly the contract's routes, and each is served.
    let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = [
        ("post", "/rooms"),
        ("get", "/rooms/{room_id}"),
        ("delete", "/rooms/{room_id}"),
        ("patch", "/rooms/{room_id}"),
        ("post", "/rooms/{room_id}/members/{member_id}/kick"),
        ("post", "/rooms/{room_id}/close"),
        ("post", "/rooms/{room_id}/join"),
        ("get", "/rooms/{room_id}/events"),
        ("get", "/rooms/{room_id}/messages"),
        ("post", "/rooms/{room_id}/messages"),
        ("patch", "/rooms/{room_id}/messages/{message_id}"),
        ("delete", "/rooms/{room_id}/messages/{message_id}"),
        ("post", "/rooms/{room_id}/messages/{message_id}/reactions"),
        ("post", "/rooms/{room_id}/leave"),
        ("get", "/rooms/{room_id}/ws"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/docs"),
        ("get", "/openapi.json"),
        ("get", "/"),
        ("get", "/r/{room_id}"),
        ("get", "/r/{room_id}/qr.svg"),
        ("get", "/assets/{file}"),
        ("post", "/rooms/{room_id}/resume"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    expected.sort();
    assert_eq!(documented, expected);
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let url = app.url(
            &path
                .replace("{room_id}", "V1StGXR8_Z5jdHi6B-myT")
                .replace("{member_id}", "dUyB2QnL7kV0xWq9pR3sT")
                .replace("{file}", "app.js"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let res = http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let code = res.json::<Value>().await.ok().map(|b| b["code"].clone());
        assert!(
            status != 405 && code != Some(json!("not_found")),
            "{method} {path} is documented but not served: {status} {code:?}"
        );
        if method == reqwest::Method::GET {
            let head = http.head(&url).send().await.expect("request");
            assert_eq!(head.status().as_u16(), status, "HEAD {path} answers as GET");
            assert!(
                head.bytes().await.expect("body").is_empty(),
                "HEAD {path}: no body"
            );
        }
    }
    let res = app.get("/no/such/route").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "not_found"
    );
    for (method, path, allow) in [
        ("PUT", "/rooms", "POST"),
        ("TRACE", "/healthz", "GET, HEAD"),
        (
            "PUT",
            "/rooms/V1StGXR8_Z5jdHi6B-myT",
            "DELETE, GET, PATCH, HEAD",
        ),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["code"],
            "method_not_allowed"
        );
    }
}

#[tokio::test]
async fn draining_turns_unready_closes_with_1001_and_keeps_members() {
    let app = spawn_with(|s| s.presence_grace_seconds = 30).await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let hub = app.hub.clone().expect("in-process app");
    hub.drain(Duration::ZERO, Duration::from_secs(5)).await;
    assert_eq!(alice.closed().await.0, 1001);
    assert_eq!(bob.closed().await.0, 1001);
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1", "every 503 says when");
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "unavailable"
    );
    let mut late = app.ws(&room.id, "display_name=carol").await;
    assert_eq!(
        late.closed().await.0,
        1013,
        "no new connections while draining"
    );
    let details: Value = app.details(&room.id).await;
    assert_eq!(
        details["online_users_count"], 2,
        "members keep their grace to resume elsewhere"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits() {
    let mut server = Process::start(&[]);
    let app = TestApp::at(server.port);
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    server.terminate();
    assert_eq!(bob.closed().await.0, 1001);
    let status = server
        .wait(Duration::from_secs(30))
        .expect("exits within 30 s");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_setting_stops_the_process_naming_the_variable() {
    for (name, value) in [
        ("EPHEMERA_HISTORY_LIMIT", "lots"),
        ("EPHEMERA_MIN_EXPIRY_SECONDS", "0"),
        ("EPHEMERA_TRUSTED_PROXIES", "not-an-ip"),
        ("EPHEMERA_LOG_FORMAT", "xml"),
    ] {
        let out = std::process::Command::new(binary())
            .env("EPHEMERA_BIND_ADDR", "127.0.0.1:0")
            .env(name, value)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn the_owner_attaching_again_replaces_its_older_connection() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut first, welcome) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let (_second, again) = app.owner(&room).await;
    assert_eq!(again["member_id"], welcome["member_id"]);
    assert_ne!(again["resume_token"], welcome["resume_token"]);
    assert_eq!(first.closed().await.0, 4000);
    let seen = bob.drain(Duration::from_millis(300)).await;
    assert!(seen.iter().all(|f| f["type"] != "presence"), "{seen:?}");
}

#[tokio::test]
async fn the_healthcheck_subcommand_asks_healthz() {
    let server = Process::start(&[]);
    let check = |port: u16| {
        std::process::Command::new(binary())
            .arg("healthcheck")
            .env("EPHEMERA_BIND_ADDR", format!("0.0.0.0:{port}"))
            .status()
            .expect("runs")
    };
    assert!(check(server.port).success());
    assert!(
        !check(store::testing::free_port()).success(),
        "nothing listens there"
    );
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_queries_is_exported() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.say("hi", "c").await;
    bob.next_of("message").await;
    let res = app.get("/metrics").await;
    assert!(
        res.headers().contains_key("x-request-id"),
        "responses carry a request id"
    );
    let metrics = res.text().await.expect("text");
    assert!(metrics.contains("ephemera_ready 1"), "{metrics}");
    assert!(metrics.contains("ephemera_members 1"), "{metrics}");
    let dashboard: Value = serde_json::from_str(include_str!("../../deploy/grafana/ephemera.json"))
        .expect("dashboard JSON");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        let expr = panel["targets"][0]["expr"].as_str().expect("expr");
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ephemera_"))
        {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
            // The Prometheus text format names a counter's TYPE by its `_total` sample.
            assert!(
                metrics.contains(&format!("# TYPE {base} "))
                    || metrics.contains(&format!("# TYPE {base}_total counter")),
                "{name} (panel {}) is not exported",
                panel["title"]
            );
            queried += 1;
        }
    }
    assert!(queried >= 12);
}
