//! Attacks on the running service (SECURITY.md): every way into a password room with missing,
//! wrong, expired, reused and cross-room credentials; owner rights; password floods; retention.

use crate::cluster::Cluster;
use crate::helpers::*;
use crate::process::Process;
use serde_json::{Value, json};
use std::time::Duration;

/// A credential as a client would present it on a REST call.
#[derive(Clone, Copy, Debug)]
enum Cred<'a> {
    None,
    Password(&'a str),
    Bearer(&'a str),
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    cred: Cred<'_>,
    body: Value,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.http.request(method, app.url(path)).json(&body);
    req = match cred {
        Cred::None => req,
        Cred::Password(p) => req.header("x-room-password", p),
        Cred::Bearer(t) => req.bearer_auth(t),
    };
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Asserts the call is refused with `status` and `code`, and leaks nothing of the room.
async fn refused(
    app: &TestApp,
    method: &str,
    path: &str,
    cred: Cred<'_>,
    body: Value,
    status: u16,
    code: &str,
) {
    let (got, answer) = call(app, method, path, cred, body).await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (status, Some(code)),
        "{method} {path} with {cred:?}: {answer}"
    );
    let text = answer.to_string();
    assert!(
        !text.contains("secret message") && !text.contains("alice"),
        "{text}"
    );
}

/// Asserts a WebSocket with `query` is refused with close `code`, before any room data.
async fn ws_refused(app: &TestApp, room: &str, query: &str, code: u16) {
    let mut ws = app.ws(room, query).await;
    let (got, frames) = ws.closed().await;
    assert_eq!(got, code, "ws {query}: {frames:?}");
    assert!(
        frames.iter().all(|f| f["type"] == "error"),
        "ws {query} leaked {frames:?}"
    );
}

#[tokio::test]
async fn every_way_into_a_password_room_needs_the_password_or_its_credentials() {
    let app = spawn_with(|s| s.ticket_ttl_seconds = 1).await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "pw"}))
        .await;
    let other = app
        .create_room(
            json!({"owner_name": "mallory", "password": "pw2", "members_can_destroy": true}),
        )
        .await;
    let (mut owner, _) = app.owner(&room).await;
    owner.say("secret message", "c").await;
    owner.next_of("message").await;
    let ticket = app
        .ticket(&other.id, json!({"display_name": "eve", "password": "pw2"}))
        .await;
    let mut eve = app.ws(&other.id, &format!("ticket={ticket}")).await;
    let eve_welcome = eve.next_of("system").await;
    let eve_token = eve_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let id = &room.id;

    // Reading: details and history.
    let reading = [
        (Cred::None, 401, "password_required"),
        (Cred::Password("PW"), 401, "invalid_password"),
        (Cred::Password("pw2"), 401, "invalid_password"),
        (Cred::Bearer("forged"), 401, "unauthorized"),
        (Cred::Bearer(&eve_token), 401, "unauthorized"),
        (Cred::Bearer(&other.owner_token), 401, "unauthorized"),
        (Cred::Bearer(&ticket), 401, "unauthorized"),
    ];
    for path in [format!("/rooms/{id}"), format!("/rooms/{id}/messages")] {
        for (cred, status, code) in reading {
            refused(&app, "GET", &path, cred, Value::Null, status, code).await;
        }
        let (status, _) = call(&app, "GET", &path, Cred::Password("pw"), Value::Null).await;
        assert_eq!(status, 200, "{path} with the password");
    }

    // Joining.
    let join = format!("/rooms/{id}/join");
    let bob = json!({"display_name": "bob"});
    let with_pw2 = json!({"display_name": "bob", "password": "pw2"});
    for (cred, body, code) in [
        (Cred::None, &bob, "password_required"),
        (Cred::None, &with_pw2, "invalid_password"),
        (Cred::Password("pw"), &bob, "password_required"),
        (Cred::Bearer(&other.owner_token), &bob, "unauthorized"),
        (Cred::Bearer(&eve_token), &bob, "unauthorized"),
    ] {
        refused(&app, "POST", &join, cred, body.clone(), 401, code).await;
    }

    // The WebSocket: by name, forged, cross-room, reused and expired tickets, foreign resumes.
    ws_refused(&app, id, "display_name=bob", 4401).await;
    ws_refused(&app, id, "ticket=forged", 4401).await;
    ws_refused(&app, id, &format!("ticket={ticket}"), 4401).await;
    let cross = app
        .ticket(
            &other.id,
            json!({"display_name": "eve2", "password": "pw2"}),
        )
        .await;
    ws_refused(&app, id, &format!("ticket={cross}"), 4401).await;
    ws_refused(&app, id, &format!("resume={eve_token}&last_id=0"), 4401).await;
    ws_refused(
        &app,
        id,
        &format!("resume={}&last_id=0", other.owner_token),
        4401,
    )
    .await;
    ws_refused(&app, id, "resume=forged&last_id=0", 4401).await;
    let good = app
        .ticket(id, json!({"display_name": "bob", "password": "pw"}))
        .await;
    let (mut bob_ws, bob_welcome) = {
        let mut ws = app.ws(id, &format!("ticket={good}")).await;
        let welcome = ws.next_of("system").await;
        (ws, welcome)
    };
    assert_eq!(bob_welcome["event"], "welcome");
    ws_refused(&app, id, &format!("ticket={good}"), 4401).await;
    let late = app
        .ticket(id, json!({"display_name": "carol", "password": "pw"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws_refused(&app, id, &format!("ticket={late}"), 4401).await;

    // Acting: REST post and leave take only this room's member or owner tokens; owner rights
    // refuse this room's members (they may not destroy it) and every foreign token.
    let bob_token = bob_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let strangers = [
        (Cred::None, 401, "unauthorized"),
        (Cred::Password("pw"), 401, "unauthorized"),
        (Cred::Bearer("forged"), 401, "unauthorized"),
        (Cred::Bearer(&eve_token), 401, "unauthorized"),
        (Cred::Bearer(&other.owner_token), 401, "unauthorized"),
        (Cred::Bearer(&good), 401, "unauthorized"),
    ];
    let member = [(Cred::Bearer(bob_token.as_str()), 403, "forbidden")];
    for (method, path, member_too) in [
        ("POST", format!("/rooms/{id}/messages"), false),
        ("POST", format!("/rooms/{id}/leave"), false),
        ("DELETE", format!("/rooms/{id}"), true),
        ("POST", format!("/rooms/{id}/close"), true),
    ] {
        let extra = if member_too { &member[..] } else { &[] };
        for &(cred, status, code) in strangers.iter().chain(extra) {
            let body = json!({"text": "forged"});
            refused(&app, method, &path, cred, body, status, code).await;
        }
    }
    bob_ws.send_json(json!({"type": "close_room"})).await;
    assert_eq!(bob_ws.next_of("error").await["code"], "forbidden");

    // After all that the room is intact, with its one message, and bob still in it.
    let (status, history) = call(
        &app,
        "GET",
        &format!("/rooms/{id}/messages"),
        Cred::Password("pw"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(history["last_id"], 1);
    let (status, details) = call(
        &app,
        "GET",
        &format!("/rooms/{id}"),
        Cred::Bearer(&bob_token),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, details["online_users_count"].as_u64()),
        (200, Some(2))
    );

    // A member that left cannot come back with its old token.
    bob_ws.send_json(json!({"type": "leave"})).await;
    assert_eq!(bob_ws.closed().await.0, 1000);
    ws_refused(&app, id, &format!("resume={bob_token}&last_id=0"), 4401).await;
    refused(
        &app,
        "GET",
        &format!("/rooms/{id}"),
        Cred::Bearer(&bob_token),
        Value::Null,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn password_attempts_are_counted_across_instances() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PASSWORD_ATTEMPTS_PER_MINUTE", "4")]);
    let room = cluster
        .instance(0)
        .create_room(json!({"owner_name": "alice", "password": "pw"}))
        .await;
    let path = format!("/rooms/{}", room.id);
    for i in 0..4 {
        let (status, _) = call(
            &cluster.instance(i % 2),
            "GET",
            &path,
            Cred::Password("guess"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 401, "attempt {i}");
    }
    for i in 0..2 {
        let (status, answer) = call(
            &cluster.instance(i),
            "GET",
            &path,
            Cred::Password("pw"),
            Value::Null,
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (429, Some("rate_limited")),
            "instance {i}"
        );
    }
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_does_not_starve_other_requests() {
    let app = spawn_with(|s| {
        s.password_attempts_per_minute = 10_000;
        s.room_password_attempts_per_minute = 10_000;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let locked = app
        .create_room(json!({"owner_name": "alice", "password": "pw"}))
        .await;
    let open = app.open_room().await;
    // 400 guesses at once, from 400 addresses: far more argon2 work than the cores can do, and
    // more than may wait for it.
    let flood: Vec<_> = (0..400)
        .map(|i| {
            let req = app
                .http
                .post(app.url(&format!("/rooms/{}/join", locked.id)))
                .header("x-forwarded-for", format!("10.0.{}.{}", i / 250, i % 250))
                .json(&json!({"display_name": format!("g{i}"), "password": "guess"}));
            tokio::spawn(async move {
                req.send().await.map(|r| {
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    (r.status().as_u16(), retry)
                })
            })
        })
        .collect();
    // Meanwhile everything else is served: health, details, joins and chat in an open room.
    let (mut bob, _) = app.member(&open.id, "bob").await;
    for i in 0..20 {
        assert_eq!(app.get("/healthz").await.status(), 200);
        assert_eq!(app.get(&format!("/rooms/{}", open.id)).await.status(), 200);
        bob.say("still here", &i.to_string()).await;
        bob.next_of("message").await;
    }
    let mut statuses = std::collections::BTreeMap::new();
    for guess in flood {
        let (status, retry_after) = guess.await.expect("task").expect("answer");
        assert!(matches!(status, 401 | 503), "a guess got {status}");
        if status == 503 {
            assert_eq!(
                retry_after.as_deref(),
                Some("1"),
                "a busy refusal says when"
            );
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    // Only so many checks wait for argon2 (8 a core): the rest are refused at once instead of
    // queueing without bound, and every guess is answered.
    assert_eq!(statuses.values().sum::<i32>(), 400);
    assert!(
        statuses.get(&503).is_some_and(|&n| n > 0) && statuses.get(&401).is_some_and(|&n| n > 0),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn nothing_of_a_room_remains_in_redis_or_the_logs() {
    let redis = store::testing::RedisServer::start();
    let mut server = Process::start(&[("EPHEMERA_REDIS_URL", &redis.url()), ("RUST_LOG", "debug")]);
    let app = TestApp::at(server.port);
    let password = "correct-horse-battery-staple";
    let guess = "wrong-guess-xyz";
    let text = "the-launch-code-is-0451";
    let room = app
        .create_room(json!({"owner_name": "alice", "password": password}))
        .await;
    let id = &room.id;
    let ticket = app
        .ticket(id, json!({"display_name": "bob", "password": password}))
        .await;
    let mut bob = app.ws(id, &format!("ticket={ticket}")).await;
    let welcome = bob.next_of("system").await;
    let resume = welcome["resume_token"].as_str().expect("token").to_owned();
    bob.say(text, "c").await;
    bob.next_of("message").await;
    let messages = format!("/rooms/{id}/messages");
    let (status, _) = call(
        &app,
        "POST",
        &messages,
        Cred::Bearer(&resume),
        json!({"text": text}),
    )
    .await;
    assert_eq!(status, 201);
    let mut again = app.ws(id, &format!("resume={resume}&last_id=0")).await;
    again.next_of("system").await;
    let (status, _) = call(
        &app,
        "GET",
        &format!("/rooms/{id}"),
        Cred::Password(guess),
        Value::Null,
    )
    .await;
    assert_eq!(
        status, 401,
        "a wrong password is counted, in a key of the room"
    );
    let (status, _) = call(
        &app,
        "GET",
        &format!("/rooms/{id}?password={password}"),
        Cred::None,
        Value::Null,
    )
    .await;
    assert_eq!(status, 400);

    let secrets = [password, guess, text, &room.owner_token, &ticket, &resume];
    let keys = || redis.cli(&["--scan"]);
    assert!(keys().contains(id.as_str()), "the live room is in Redis");
    for key in keys().lines() {
        let dump = redis.cli(&["--no-raw", "dump", key]);
        for secret in [password, guess, &room.owner_token, &ticket, &resume] {
            assert!(
                !format!("{key}{dump}").contains(secret),
                "{key} holds a secret in clear"
            );
        }
    }
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/rooms/{id}"),
        Cred::Bearer(&room.owner_token),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again.closed().await.0, 4002);
    for key in keys().lines() {
        let dump = redis.cli(&["--no-raw", "dump", key]);
        assert!(!key.contains(id.as_str()), "{key} outlived its room");
        assert!(
            secrets.iter().all(|s| !dump.contains(s)),
            "{key} still holds a secret or text"
        );
    }
    server.terminate();
    server.wait(Duration::from_secs(30));
    let logs = server.logs();
    assert!(logs.contains("/rooms"), "requests are logged:\n{logs}");
    for secret in secrets {
        assert!(!logs.contains(secret), "the logs hold {secret}:\n{logs}");
    }
    assert!(
        !logs.contains(id.as_str()),
        "the room id is logged only as its keyed hash:\n{logs}"
    );
}

#[tokio::test]
async fn cors_headers_go_only_to_configured_origins() {
    let allow = |res: &reqwest::Response| {
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("?").to_owned())
    };
    let request = |app: &TestApp, method: &str, path: &str, origin: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        app.http
            .request(method, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let closed = spawn_app().await;
    let room = closed.open_room().await;
    let details = format!("/rooms/{}", room.id);
    for method in ["GET", "OPTIONS"] {
        let res = request(&closed, method, &details, "https://evil.example")
            .await
            .expect("req");
        assert_eq!(allow(&res), None, "{method}: no CORS unless configured");
    }

    let open = spawn_with(|s| s.cors_origins = Some("https://app.example".into())).await;
    let room = open.open_room().await;
    let details = format!("/rooms/{}", room.id);
    let res = request(&open, "OPTIONS", "/rooms", "https://app.example")
        .await
        .expect("req");
    assert!(res.status().is_success(), "preflight: {}", res.status());
    assert_eq!(allow(&res).as_deref(), Some("https://app.example"));
    let res = request(&open, "GET", &details, "https://app.example")
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    assert_eq!(allow(&res).as_deref(), Some("https://app.example"));
    let res = request(&open, "GET", &details, "https://evil.example")
        .await
        .expect("req");
    assert_eq!(
        allow(&res),
        None,
        "an origin not configured gets no CORS header"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_contract_violation() {
    let server = Process::start(&[
        ("EPHEMERA_ROOM_CREATE_PER_MINUTE", "1000000"),
        ("EPHEMERA_PASSWORD_ATTEMPTS_PER_MINUTE", "1000000"),
        ("EPHEMERA_ROOM_PASSWORD_ATTEMPTS_PER_MINUTE", "1000000"),
        ("EPHEMERA_READS_PER_MINUTE", "1000000"),
    ]);
    let app = TestApp::at(server.port);
    let room = app.open_room().await;
    let schema = app.url("/openapi.json");
    let config = crate::ship::repo().join("tests/schemathesis.toml");
    let said = tokio::task::spawn_blocking(move || {
        crate::ship::run_with(
            crate::ship::tool("st"),
            // A fixed seed keeps CI reproducible; drop it to explore further (SECURITY.md).
            &[
                "--config-file",
                &config.to_string_lossy(),
                "run",
                "--seed",
                "20261121",
                &schema,
            ],
            &[("EPHEMERA_ROOM", room.id.as_str()), ("NO_COLOR", "1")],
        )
    })
    .await
    .expect("schemathesis ran");
    assert!(said.contains(" passed"), "{said}");
}
