//! Operations endpoints, static pages, headers, and privacy of the logs.

use crate::helpers::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
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
    let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/rooms", "post"),
        ("/rooms/{room_id}", "get"),
        ("/rooms/{room_id}", "delete"),
        ("/rooms/{room_id}/close", "post"),
        ("/rooms/{room_id}/join", "post"),
        ("/rooms/{room_id}/messages", "get"),
        ("/rooms/{room_id}/messages", "post"),
        ("/rooms/{room_id}/leave", "post"),
        ("/rooms/{room_id}/ws", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/docs", "get"),
        ("/openapi.json", "get"),
        ("/", "get"),
        ("/r/{room_id}", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let res = app.get("/no/such/route").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "not_found"
    );
}

/// The `ephemera` binary, built once for the tests that run it as a process.
fn binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "ephemera-api",
                "--bin",
                "ephemera",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "ephemera builds");
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/debug/ephemera")
    })
}

#[tokio::test]
async fn logs_never_hold_secrets_or_message_text() {
    let mut child = Command::new(binary())
        .env("EPHEMERA_BIND_ADDR", "127.0.0.1:0")
        .env("EPHEMERA_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ephemera starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let port = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a start-up log line");
        let entry: Value = serde_json::from_str(&line).expect("JSON log lines");
        if let Some(port) = entry["fields"]["port"].as_u64() {
            break port;
        }
    };
    let app = TestApp {
        base: format!("http://127.0.0.1:{port}"),
        ws_base: format!("ws://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let password = "hunter2-correct-horse";
    let text = "the-launch-code-is-0000";
    let room = app
        .create_room(json!({"owner_name": "alice", "password": password}))
        .await;
    let ticket = app
        .ticket(
            &room.id,
            json!({"display_name": "bob", "password": password}),
        )
        .await;
    let wrong = app
        .post(
            &format!("/rooms/{}/join", room.id),
            json!({"display_name": "eve", "password": "wrong-guess-xyz"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let mut bob = app.ws(&room.id, &format!("ticket={ticket}")).await;
    let welcome = bob.next_of("system").await;
    let resume = welcome["resume_token"].as_str().expect("token").to_owned();
    bob.say(text, "c").await;
    bob.next_of("message").await;
    let res = app
        .http
        .post(app.url(&format!("/rooms/{}/messages", room.id)))
        .bearer_auth(&resume)
        .json(&json!({"text": text}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 201);
    let mut again = app
        .ws(&room.id, &format!("resume={resume}&last_id=0"))
        .await;
    again.next_of("system").await;
    let _ = app
        .http
        .get(app.url(&format!("/rooms/{}?password={password}", room.id)))
        .send()
        .await;
    let res = app
        .http
        .delete(app.url(&format!("/rooms/{}", room.id)))
        .bearer_auth(&room.owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("kill");
    let _ = child.wait();
    let mut logs = String::new();
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(500)) {
        logs.push_str(&line);
        logs.push('\n');
    }
    assert!(logs.contains("/rooms"), "requests are logged:\n{logs}");
    for secret in [
        password,
        "wrong-guess-xyz",
        text,
        &room.owner_token,
        &ticket,
        &resume,
    ] {
        assert!(
            !logs.contains(secret),
            "the logs hold a secret ({secret}):\n{logs}"
        );
    }
}
