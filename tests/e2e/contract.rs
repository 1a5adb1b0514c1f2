//! The contract's exact codes and headers, each at its edge: what API.md and README promise
//! about every response, every WebSocket refusal, and the limits' thresholds.

use crate::helpers::{TestApp, spawn_app, spawn_with};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Content-Security-Policy API.md promises, whole: no `unsafe-inline`, no other source.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A WebSocket handshake by hand: the socket, the answer's status line and headers, and
/// whatever followed them in the same reads.
async fn handshake(app: &TestApp, path: &str) -> (TcpStream, String, Vec<u8>) {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.expect("connects");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("writes");
    let read = async {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.expect("reads");
            assert!(n > 0, "closed during the handshake");
            bytes.extend_from_slice(&buf[..n]);
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..at + 4]).into_owned();
                return (head, bytes[at + 4..].to_vec());
            }
        }
    };
    let (head, rest) = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server answers the handshake");
    (tcp, head, rest)
}

/// After a handshake, a client that never writes (no pong, no close reply): the answer's head,
/// and the frames' opcodes and payloads up to the server's close (within `within`).
async fn raw_ws(app: &TestApp, path: &str, within: Duration) -> (String, Vec<(u8, Vec<u8>)>) {
    let (mut tcp, head, mut rest) = handshake(app, path).await;
    let read = async {
        let mut buf = [0u8; 4096];
        let mut frames = Vec::new();
        loop {
            // Server frames are unmasked: opcode, length (7 bits, or 16 or 64 more), payload.
            while let Some((opcode, payload, used)) = frame(&rest) {
                rest.drain(..used);
                frames.push((opcode, payload));
                if opcode == 8 {
                    return frames;
                }
            }
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return frames;
            }
            rest.extend_from_slice(&buf[..n]);
        }
    };
    let frames = tokio::time::timeout(within, read)
        .await
        .expect("the server closes in time");
    (head, frames)
}

/// One whole frame at the start of `bytes`: its opcode, payload and length in bytes.
fn frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let (len, at) = match second & 0x7f {
        126 => (
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
            4,
        ),
        127 => {
            let raw: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(raw) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = bytes.get(at..at + len)?.to_vec();
    Some((first & 0x0f, payload, at + len))
}

fn close_code(frames: &[(u8, Vec<u8>)]) -> Option<u16> {
    let (_, payload) = frames.iter().find(|(op, _)| *op == 8)?;
    Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]))
}

/// The `error` frames' codes among `frames`, in order.
fn error_codes(frames: &[(u8, Vec<u8>)]) -> Vec<String> {
    frames
        .iter()
        .filter(|(op, _)| *op == 1)
        .filter_map(|(_, p)| serde_json::from_slice::<Value>(p).ok())
        .filter(|f| f["type"] == "error")
        .map(|f| f["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every response carries the whole security header set: pages, assets, the API's answers
/// (success and every kind of error), operations, and the WebSocket's 101.
#[tokio::test]
async fn every_response_carries_the_whole_csp_and_the_frame_and_sniffing_headers() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let id = &room.id;
    let json = |v: Value| Some(v);
    let requests: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", "/".into(), None, 200),
        ("GET", format!("/r/{id}"), None, 200),
        ("GET", "/docs".into(), None, 200),
        ("GET", "/assets/app.js".into(), None, 200),
        ("GET", "/assets/format.js".into(), None, 200),
        ("GET", "/assets/seal.js".into(), None, 200),
        ("GET", "/assets/style.css".into(), None, 200),
        ("GET", "/openapi.json".into(), None, 200),
        ("GET", "/healthz".into(), None, 200),
        ("GET", "/readyz".into(), None, 200),
        ("GET", "/metrics".into(), None, 200),
        (
            "POST",
            "/rooms".into(),
            json(json!({"owner_name": "a"})),
            201,
        ),
        ("GET", format!("/rooms/{id}"), None, 200),
        ("GET", "/rooms/V1StGXR8_Z5jdHi6B-myT".into(), None, 404),
        ("PUT", format!("/rooms/{id}"), None, 405),
        (
            "POST",
            "/rooms".into(),
            json(json!({"owner_name": ""})),
            422,
        ),
        ("GET", format!("/rooms/{id}?password=x"), None, 400),
        ("DELETE", format!("/rooms/{id}"), None, 401),
        ("GET", "/nowhere".into(), None, 404),
    ];
    for (method, path, body, status) in requests {
        let mut req = app
            .http
            .request(method.parse().expect("method"), app.url(&path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("answers");
        assert_eq!(res.status(), status, "{method} {path}");
        let headers = res.headers();
        assert_eq!(headers["content-security-policy"], CSP, "{method} {path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{method} {path}");
        assert_eq!(
            headers["x-content-type-options"], "nosniff",
            "{method} {path}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer", "{method} {path}");
    }
    let (_socket, head, _) = handshake(&app, &format!("/rooms/{id}/ws?display_name=bob")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "content-security-policy: {}",
            CSP.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(head.contains("x-frame-options: deny"), "{head}");
}

/// `?password=` is refused on every route the API documents, whatever the method, before
/// anything else is looked at.
#[tokio::test]
async fn a_password_in_the_query_is_refused_on_every_route() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let path = path
            .replace("{room_id}", &room.id)
            .replace("{member_id}", "m")
            .replace("{message_id}", "1")
            .replace("{file}", "app.js");
        for method in item.as_object().expect("item").keys() {
            let url = app.url(&format!("{path}?password=s3cret"));
            let res = app
                .http
                .request(method.to_uppercase().parse().expect("method"), url)
                .json(&json!({}))
                .send()
                .await
                .expect("answers");
            assert_eq!(res.status(), 400, "{method} {path}");
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["code"], "password_in_url", "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "every documented route: {checked}");
}

/// The owner token is in the creation answer and nowhere else: not in details (whoever asks),
/// join answers, welcomes, history or the events stream.
#[tokio::test]
async fn the_owner_token_appears_only_in_the_creation_answer() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let id = &room.id;
    assert!(room.body["owner_token"].is_string());
    let (mut owner, owner_welcome) = app.owner(&room).await;
    let (_bob, bob_welcome) = app.member(id, "bob").await;
    let bob_token = bob_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    owner.say("hello", "c-1").await;
    owner.next_of("message").await;
    let mut seen = vec![owner_welcome, bob_welcome];
    for token in [
        None,
        Some(room.owner_token.as_str()),
        Some(bob_token.as_str()),
    ] {
        for path in [format!("/rooms/{id}"), format!("/rooms/{id}/messages")] {
            let mut req = app.http.get(app.url(&path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let res = req.send().await.expect("answers");
            assert_eq!(res.status(), 200, "{path}");
            seen.push(res.json().await.expect("json"));
        }
    }
    let join = app
        .http
        .post(app.url(&format!("/rooms/{id}/join")))
        .bearer_auth(&room.owner_token)
        .send()
        .await
        .expect("answers");
    seen.push(join.json().await.expect("json"));
    let member_join = app
        .post(
            &format!("/rooms/{id}/join"),
            json!({"display_name": "carol"}),
        )
        .await;
    seen.push(member_join.json().await.expect("json"));
    for body in seen {
        let text = body.to_string();
        assert!(
            !text.contains("owner_token") && !text.contains(&room.owner_token),
            "{text}"
        );
    }
}

/// Every WebSocket refusal says its code in an `error` frame, then closes with the code the
/// contract gives it.
#[tokio::test]
async fn every_websocket_refusal_sends_its_error_code_then_closes_with_its_own() {
    let app = spawn_with(|s| s.ticket_ttl_seconds = 1).await;
    let full = app
        .create_room(json!({"owner_name": "alice", "max_users": 2}))
        .await;
    let (_bob, _) = app.member(&full.id, "bob").await;
    let open = app.open_room().await;
    let (_carol, _) = app.member(&open.id, "carol").await;
    let used = app.ticket(&open.id, json!({"display_name": "dave"})).await;
    let (_dave, _) = {
        let mut ws = app.ws(&open.id, &format!("ticket={used}")).await;
        let welcome = ws.next_of("system").await;
        (ws, welcome)
    };
    let expired = app.ticket(&open.id, json!({"display_name": "erin"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let locked = app.open_room().await;
    app.http
        .patch(app.url(&format!("/rooms/{}", locked.id)))
        .bearer_auth(&locked.owner_token)
        .json(&json!({"locked": true}))
        .send()
        .await
        .expect("locks");
    let nowhere = "V1StGXR8_Z5jdHi6B-myT".to_owned();
    let cases = [
        (
            &nowhere,
            "display_name=x".to_owned(),
            "room_not_found",
            4004,
        ),
        (&full.id, "display_name=frank".to_owned(), "room_full", 4403),
        (&open.id, format!("ticket={used}"), "unauthorized", 4401),
        (&open.id, format!("ticket={expired}"), "unauthorized", 4401),
        (&open.id, "ticket=forged".to_owned(), "unauthorized", 4401),
        (
            &open.id,
            "resume=forged&last_id=0".to_owned(),
            "unauthorized",
            4401,
        ),
        (&open.id, String::new(), "unauthorized", 4401),
        (
            &open.id,
            "display_name=CAROL".to_owned(),
            "name_taken",
            4409,
        ),
        (
            &open.id,
            "display_name=%20".to_owned(),
            "invalid_request",
            4422,
        ),
        (
            &locked.id,
            "display_name=gina".to_owned(),
            "room_locked",
            4423,
        ),
    ];
    for (room, query, code, close) in cases {
        let path = format!("/rooms/{room}/ws?{query}");
        let (head, frames) = raw_ws(&app, &path, Duration::from_secs(5)).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{query}: {head}");
        assert_eq!(error_codes(&frames), [code], "{query}");
        assert_eq!(close_code(&frames), Some(close), "{query}");
    }
    // An id of another shape names no room: 404 before the upgrade (no socket to refuse on).
    let res = app.get("/rooms/nope/ws?display_name=x").await;
    assert_eq!(res.status(), 404);
}

/// A socket that answers no ping is closed with exactly 1011 after two ping intervals; the
/// client here never writes a byte after its handshake, so nothing can turn the close into a
/// reset.
#[tokio::test]
async fn a_socket_that_misses_its_pongs_is_closed_with_exactly_1011() {
    let app = spawn_with(|s| s.ping_interval_seconds = 1).await;
    let room = app.open_room().await;
    let started = std::time::Instant::now();
    let path = format!("/rooms/{}/ws?display_name=silent", room.id);
    let (_, frames) = raw_ws(&app, &path, Duration::from_secs(10)).await;
    assert_eq!(
        close_code(&frames),
        Some(1011),
        "{:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    assert!(frames.iter().any(|(op, _)| *op == 9), "it was pinged first");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "two intervals: {took:?}"
    );
}

/// The 4029 threshold at its edge: `EPHEMERA_MESSAGE_BURST` refusals within 10 s are each an
/// `error` and the socket stays; the next one closes it.
#[tokio::test]
async fn the_burst_th_refusal_keeps_the_socket_and_the_next_closes_it_with_4029() {
    let app = spawn_with(|s| {
        s.message_rate_per_second = 1;
        s.message_burst = 3;
    })
    .await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    for i in 0..3 {
        bob.say("hi", &i.to_string()).await;
        bob.next_of("message").await;
    }
    for strike in 1..=3 {
        bob.say("too fast", "x").await;
        let error = bob.next_of("error").await;
        assert_eq!(
            error["code"], "rate_limited",
            "refusal {strike} is an error"
        );
    }
    bob.say("too fast", "x").await;
    let (code, frames) = bob.closed().await;
    assert_eq!(code, 4029, "{frames:?}");
}

/// `typing` is relayed at most once per 2 s per member: not again at 1.7 s, again at 2.3 s.
#[tokio::test]
async fn typing_is_relayed_again_only_after_two_seconds() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let (mut carol, _) = app.member(&room.id, "carol").await;
    bob.presence("user_online").await;
    let typing = json!({"type": "typing"});
    carol.send_json(typing.clone()).await;
    assert_eq!(bob.next_of("typing").await["display_name"], "carol");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    carol.send_json(typing.clone()).await;
    let early = bob.drain(Duration::from_millis(400)).await;
    assert!(
        early.iter().all(|f| f["type"] != "typing"),
        "not within 2 s: {early:?}"
    );
    // Now 2.3 s after the first (1.7 + 0.4 + 0.2).
    tokio::time::sleep(Duration::from_millis(200)).await;
    carol.send_json(typing).await;
    assert_eq!(bob.next_of("typing").await["display_name"], "carol");
}
