//! Abuse and bad clients: rate limits, client IPs, slow consumers, silent sockets.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn message_bursts_are_refused_and_sustained_abuse_closes_4029() {
    let app = spawn_with(|s| {
        s.message_rate_per_second = 1;
        s.message_burst = 3;
    })
    .await;
    let room = app.open_room().await;
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    for i in 0..3 {
        bob.say("hi", &i.to_string()).await;
        assert_eq!(bob.next_of("message").await["id"], i + 1);
    }
    bob.say("one too many", "x").await;
    assert_eq!(bob.next_of("error").await["code"], "rate_limited");
    // Over REST the same bucket answers 429, saying when the next message is due.
    let res = app
        .http
        .post(app.url(&format!("/rooms/{}/messages", room.id)))
        .bearer_auth(welcome["resume_token"].as_str().expect("token"))
        .json(&json!({"text": "over REST"}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 429);
    assert_retry_after(&res, 1);
    for _ in 0..5 {
        bob.say("flood", "x").await;
    }
    let (code, frames) = bob.closed().await;
    assert_eq!(code, 4029);
    assert!(frames.iter().all(|f| f["type"] != "message"), "{frames:?}");
}

#[tokio::test]
async fn room_creation_is_limited_per_client_ip_and_forwarded_for_needs_a_trusted_proxy() {
    let trusting = spawn_with(|s| {
        s.room_create_per_minute = 2;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let create = |app: &TestApp, ip: &'static str| {
        let req = app
            .http
            .post(app.url("/rooms"))
            .header("x-forwarded-for", ip)
            .json(&json!({"owner_name": "a"}));
        async move { req.send().await.expect("req") }
    };
    for _ in 0..2 {
        assert_eq!(create(&trusting, "1.1.1.1").await.status(), 201);
    }
    let res = create(&trusting, "1.1.1.1").await;
    assert_eq!(res.status(), 429);
    assert_retry_after(&res, 60);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "rate_limited"
    );
    assert_eq!(
        create(&trusting, "2.2.2.2").await.status(),
        201,
        "another client IP has its own budget"
    );

    let untrusting = spawn_with(|s| s.room_create_per_minute = 2).await;
    assert_eq!(create(&untrusting, "1.1.1.1").await.status(), 201);
    assert_eq!(create(&untrusting, "2.2.2.2").await.status(), 201);
    assert_eq!(
        create(&untrusting, "3.3.3.3").await.status(),
        429,
        "spoofed X-Forwarded-For is ignored"
    );
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_ip_and_room() {
    let app = spawn_with(|s| {
        s.password_attempts_per_minute = 3;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "right"}))
        .await;
    let other = app
        .create_room(json!({"owner_name": "alice", "password": "right"}))
        .await;
    let attempt = |room: &str, ip: &'static str, password: &'static str| {
        let req = app
            .http
            .post(app.url(&format!("/rooms/{room}/join")))
            .header("x-forwarded-for", ip)
            .json(&json!({"display_name": "bob", "password": password}));
        async move { req.send().await.expect("req").status().as_u16() }
    };
    for _ in 0..3 {
        assert_eq!(attempt(&room.id, "1.1.1.1", "wrong").await, 401);
    }
    assert_eq!(
        attempt(&room.id, "1.1.1.1", "right").await,
        429,
        "locked out even with the right password"
    );
    let res = app
        .http
        .get(app.url(&format!("/rooms/{}", room.id)))
        .header("x-forwarded-for", "1.1.1.1")
        .header("x-room-password", "right")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 429);
    assert_retry_after(&res, 60);
    assert_eq!(
        attempt(&room.id, "2.2.2.2", "right").await,
        200,
        "other IPs are not locked out"
    );
    assert_eq!(
        attempt(&other.id, "1.1.1.1", "right").await,
        200,
        "other rooms are not locked out"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_4008_and_never_delays_the_others() {
    let app = spawn_with(|s| {
        s.message_rate_per_second = 100_000;
        s.message_burst = 100_000;
        s.outbound_queue_bytes = 32 * 1024;
        s.presence_grace_seconds = 60;
    })
    .await;
    let room = app.open_room().await;
    // The sender posts over REST: a socket of its own would fill with its echoes.
    let (sender, welcome) = app.member(&room.id, "sender").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    sender.kill();
    let (mut reader, _) = app.member(&room.id, "reader").await;
    let mut stalled = Ws::connect_small_buffer(&format!(
        "{}/rooms/{}/ws?display_name=stalled",
        app.ws_base, room.id
    ))
    .await;
    assert_eq!(stalled.next_of("system").await["event"], "welcome");
    let text = "z".repeat(2000);
    let total = 1500u64;
    let started = std::time::Instant::now();
    let post = app.url(&format!("/rooms/{}/messages", room.id));
    let send = async {
        for i in 0..total {
            let res = app
                .http
                .post(&post)
                .bearer_auth(&token)
                .json(&json!({"text": text, "client_id": i.to_string()}))
                .send()
                .await
                .expect("req");
            assert_eq!(res.status(), 201);
        }
    };
    let read = async {
        let mut next = 1;
        while next <= total {
            let m = reader.next_of("message").await;
            assert_eq!(m["id"], next, "the reader sees every message in order");
            next += 1;
        }
    };
    tokio::join!(send, read);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "the room kept flowing ({elapsed:?})"
    );
    // Now the stalled client reads: what was buffered, then the 4008 close.
    let (code, frames) = stalled.closed().await;
    assert_eq!(code, 4008);
    let got = frames.iter().filter(|f| f["type"] == "message").count() as u64;
    assert!(got < total, "it was cut off ({got} of {total})");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("ephemera_slow_consumers_total 1"),
        "{metrics}"
    );
}

/// A joiner whose socket never reads, not even its welcome, holds nothing for long: it is
/// dropped within the stall timeout, goes offline after the grace, and its name is free again.
/// Two sizes of welcome: one the kernel's buffers take whole (about 800 KB; only
/// `TCP_USER_TIMEOUT` notices the peer's closed window), and one no buffer takes (about 4.8 MB;
/// the welcome's own write times out after the stall timeout).
#[tokio::test]
async fn a_joiner_that_never_reads_its_welcome_pins_nothing() {
    for history in [100, 600] {
        never_reading_joiner(history).await;
    }
}

async fn never_reading_joiner(history: usize) {
    let app = spawn_with(|s| {
        s.message_rate_per_second = 100_000;
        s.message_burst = 100_000;
        s.stall_timeout_seconds = 1;
        s.history_limit = history;
        s.history_max_bytes = 16 << 20;
    })
    .await;
    let room = app.open_room().await;
    let (mut writer, _) = app.member(&room.id, "writer").await;
    // Messages of 2000 four-byte characters: 8 KB each.
    let long = "😀".repeat(2000);
    for i in 0..history {
        writer.say(&long, &format!("c{i}")).await;
        if i % 50 == 49 {
            while writer.next_of("message").await["id"] != i as u64 + 1 {}
        }
    }
    let joined = std::time::Instant::now();
    let _stalled = Ws::connect_small_buffer(&format!(
        "{}/rooms/{}/ws?display_name=stalled",
        app.ws_base, room.id
    ))
    .await;
    loop {
        let presence = writer.next_of("presence").await;
        if presence["event"] == "user_offline" {
            assert_eq!(presence["display_name"], "stalled");
            break;
        }
    }
    // TCP_USER_TIMEOUT (twice the stall timeout) or the welcome's write timeout, then the
    // grace (1 s) and its sweep.
    assert!(
        joined.elapsed() < Duration::from_secs(6),
        "{history}: offline after {:?}",
        joined.elapsed()
    );
    let (_again, welcome) = app.member(&room.id, "stalled").await;
    assert_eq!(welcome["display_name"], "stalled", "the name is free again");
    let details = app.details(&room.id).await;
    assert_eq!(details["online_users_count"], 2, "{details}");
}

#[tokio::test]
async fn sockets_that_never_answer_pings_are_dropped_and_live_ones_kept() {
    let app = spawn_with(|s| s.ping_interval_seconds = 1).await;
    let room = app.open_room().await;
    let (mut silent, _) = app.member(&room.id, "silent").await;
    let (mut live, _) = app.member(&room.id, "live").await;
    // `live` keeps reading, so its client library answers pings; `silent` reads nothing.
    let frames = live.drain(Duration::from_millis(3500)).await;
    assert!(frames.iter().all(|f| f["type"] == "presence"), "{frames:?}");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("ephemera_connections 1\n"),
        "only the live socket is left:\n{metrics}"
    );
    // The server sent 1011 and closed; a client that answers the pings it buffered only now
    // may hit the closed socket (a reset, 1006) before it reads the close frame.
    let (code, _) = silent.closed().await;
    assert!(code == 1011 || code == 1006, "{code}");
    live.say("still here", "c").await;
    assert_eq!(live.next_of("message").await["text"], "still here");
}

#[tokio::test]
async fn sockets_are_capped_per_client_ip_and_per_instance_with_1013() {
    let app = spawn_with(|s| {
        s.max_connections_per_ip = 2;
        s.max_connections = 3;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app.open_room().await;
    let url = |name: &str| format!("{}/rooms/{}/ws?display_name={name}", app.ws_base, room.id);
    let from = |ip: &'static str, name: &str| {
        let url = url(name);
        async move {
            let mut ws = Ws::with_headers(&url, &[("x-forwarded-for", ip)])
                .await
                .expect("upgrade");
            let first = ws.recv().await;
            (ws, first)
        }
    };
    let (_a1, first) = from("1.1.1.1", "a1").await;
    assert!(matches!(first, Frame::Json(ref v) if v["event"] == "welcome"));
    let (mut a2, _) = from("1.1.1.1", "a2").await;
    let (mut a3, first) = from("1.1.1.1", "a3").await;
    assert!(
        matches!(first, Frame::Json(ref v) if v["code"] == "rate_limited"),
        "{first:?}"
    );
    assert_eq!(a3.closed().await.0, 1013, "a third socket from one IP");

    let (_b1, first) = from("2.2.2.2", "b1").await;
    assert!(matches!(first, Frame::Json(ref v) if v["event"] == "welcome"));
    let (mut b2, first) = from("2.2.2.2", "b2").await;
    assert!(
        matches!(first, Frame::Json(ref v) if v["code"] == "unavailable"),
        "{first:?}"
    );
    assert_eq!(
        b2.closed().await.0,
        1013,
        "a fourth socket on a node of three"
    );

    // A closed socket gives its slot back once its task ends, a moment after the close frame.
    a2.send_json(json!({"type": "leave"})).await;
    assert_eq!(a2.closed().await.0, 1000);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_a4, first) = from("1.1.1.1", "a4").await;
        if matches!(first, Frame::Json(ref v) if v["event"] == "welcome") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back: {first:?}"
        );
    }
}

/// A limit's 429 says when to come back: `Retry-After`, in seconds within the limit's window.
fn assert_retry_after(res: &reqwest::Response, window_seconds: u64) {
    let seconds: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=window_seconds).contains(&seconds), "{seconds}");
}

/// Sixty wrong passwords fired at once from one client: the limit (10 a minute) holds exactly,
/// the rest are refused with 429 before argon2 runs; a right password costs no attempt.
#[tokio::test]
async fn parallel_wrong_passwords_cannot_race_the_limit() {
    let app = spawn_with(|s| s.trusted_proxies = Some("127.0.0.1".into())).await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "right"}))
        .await;
    for _ in 0..3 {
        let res = app
            .http
            .get(app.url(&format!("/rooms/{}", room.id)))
            .header("x-forwarded-for", "9.9.9.9")
            .header("x-room-password", "right")
            .send()
            .await
            .expect("req");
        assert_eq!(res.status(), 200, "a right password is no wrong attempt");
    }
    let guesses = (0..60).map(|i| {
        let req = app
            .http
            .get(app.url(&format!("/rooms/{}", room.id)))
            .header("x-forwarded-for", "1.1.1.1")
            .header("x-room-password", format!("guess-{i}"));
        async move { req.send().await.expect("req").status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(guesses).await;
    statuses.sort_unstable();
    let wrong = statuses.iter().filter(|&&s| s == 401).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((wrong, limited), (10, 50), "{statuses:?}");
}

/// A room's own cap on wrong passwords holds across client addresses.
#[tokio::test]
async fn wrong_passwords_from_many_addresses_meet_the_rooms_cap() {
    let app = spawn_with(|s| {
        s.trusted_proxies = Some("127.0.0.1".into());
        s.room_password_attempts_per_minute = 5;
    })
    .await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "right"}))
        .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let res = app
            .http
            .get(app.url(&format!("/rooms/{}", room.id)))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-room-password", "wrong")
            .send()
            .await
            .expect("req");
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
}

/// Every address of one IPv6 /64 is one client: rotating through them buys no fresh budget.
#[tokio::test]
async fn ipv6_clients_are_limited_on_their_prefix() {
    let app = spawn_with(|s| {
        s.room_create_per_minute = 3;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let create = |ip: String| {
        let req = app
            .http
            .post(app.url("/rooms"))
            .header("x-forwarded-for", ip)
            .json(&json!({"owner_name": "alice"}));
        async move { req.send().await.expect("req").status().as_u16() }
    };
    let mut statuses = Vec::new();
    for i in 1..=5 {
        statuses.push(create(format!("2001:db8:1:2::{i:x}")).await);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    assert_eq!(
        create("2001:db8:1:3::1".into()).await,
        201,
        "another /64 is another client"
    );
}

/// A client holds at most `EPHEMERA_MAX_ROOMS_PER_CLIENT` open rooms (IPv6 on its /64), even
/// when it asks in parallel; a room it closes stops counting; and the service holds at most
/// `EPHEMERA_MAX_ROOMS` rooms. In memory, and on Redis through two instances at once.
#[tokio::test]
async fn open_rooms_are_capped_per_client_and_in_total() {
    let memory = spawn_with(|s| {
        s.max_rooms_per_client = 3;
        s.max_rooms = 6;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    rooms_capped(&[memory.clone(), memory]).await;
    let cluster = crate::cluster::Cluster::start(
        2,
        &[
            ("EPHEMERA_MAX_ROOMS_PER_CLIENT", "3"),
            ("EPHEMERA_MAX_ROOMS", "6"),
        ],
    );
    rooms_capped(&[cluster.instance(0), cluster.instance(1)]).await;
}

async fn rooms_capped(apps: &[TestApp]) {
    let create = |i: usize, ip: String| {
        let app = &apps[i % apps.len()];
        let req = app
            .http
            .post(app.url("/rooms"))
            .header("x-forwarded-for", ip)
            .json(&json!({"owner_name": "alice"}));
        async move { req.send().await.expect("req") }
    };
    let racing = (0..8).map(|i| create(i, format!("2001:db8:7:7::{:x}", i + 1)));
    let answers = futures_util::future::join_all(racing).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429, 429, 429]);
    let refused = answers
        .iter()
        .find(|r| r.status() == 429)
        .expect("a refusal");
    assert_retry_after(refused, 60);
    let mut created = Vec::new();
    for res in answers.into_iter().filter(|r| r.status() == 201) {
        created.push(res.json::<Value>().await.expect("json"));
    }
    // Closing one frees its place.
    let first = &created[0];
    let res = apps[0]
        .http
        .delete(apps[0].url(&format!(
            "/rooms/{}",
            first["room_id"].as_str().expect("id")
        )))
        .bearer_auth(first["owner_token"].as_str().expect("token"))
        .send()
        .await
        .expect("close");
    assert_eq!(res.status(), 200);
    assert_eq!(create(1, "2001:db8:7:7::99".into()).await.status(), 201);
    // Three more from other clients fill the service; then everyone is refused.
    for i in 0..3 {
        assert_eq!(create(i, format!("192.0.2.{}", i + 1)).await.status(), 201);
    }
    let full = create(0, "192.0.2.50".into()).await;
    assert_eq!(full.status(), 503);
    assert_retry_after(&full, 60);
    let body: Value = full.json().await.expect("json");
    assert_eq!(body["code"], "unavailable");
}

/// A room takes at most its room-wide rates of messages and of new members, every member
/// together, so a room full of flooders costs its instances a bounded fan-out: the rest get
/// `room_busy` (429 over REST; an error frame, with no strike, over the socket; 1013 for a join).
/// In memory and on Redis.
#[tokio::test]
async fn a_room_takes_messages_and_joins_at_its_own_rate() {
    let memory = spawn_with(|s| {
        s.room_message_rate_per_second = 5;
        s.room_join_rate_per_second = 2;
        s.message_rate_per_second = 1000;
        s.message_burst = 1000;
    })
    .await;
    room_rates(&memory).await;
    let cluster = crate::cluster::Cluster::start(
        1,
        &[
            ("EPHEMERA_ROOM_MESSAGE_RATE_PER_SECOND", "5"),
            ("EPHEMERA_ROOM_JOIN_RATE_PER_SECOND", "2"),
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "1000"),
            ("EPHEMERA_MESSAGE_BURST", "1000"),
        ],
    );
    room_rates(&cluster.instance(0)).await;
}

async fn room_rates(app: &TestApp) {
    let room = app.open_room().await;
    // Joins: a burst of twice the rate (4), then one each half second.
    let started = std::time::Instant::now();
    let mut joined = Vec::new();
    let mut busy = 0;
    for i in 0..8 {
        let mut ws = app.ws(&room.id, &format!("display_name=m{i}")).await;
        match ws.recv().await {
            Frame::Json(v) if v["event"] == "welcome" => joined.push((ws, v)),
            Frame::Json(v) => {
                assert_eq!(v["code"], "room_busy", "{v}");
                let (code, _) = ws.closed().await;
                assert_eq!(code, 1013);
                busy += 1;
            }
            Frame::Closed(code) => panic!("closed with {code}"),
        }
    }
    let refill = (started.elapsed().as_millis() / 500) as usize + 1;
    assert!(
        joined.len() >= 4 && joined.len() <= 4 + refill && busy == 8 - joined.len(),
        "{} joined",
        joined.len()
    );
    // Messages: a burst of twice the rate (10), every member together.
    let token = joined[0].1["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let post = app.url(&format!("/rooms/{}/messages", room.id));
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let res = app
            .http
            .post(&post)
            .bearer_auth(&token)
            .json(&json!({"text": format!("m{i}")}))
            .send()
            .await
            .expect("post");
        if res.status() == 429 {
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["code"], "room_busy");
            statuses.push(429);
        } else {
            statuses.push(res.status().as_u16());
        }
    }
    let accepted = statuses.iter().filter(|s| **s == 201).count();
    let refill = (started.elapsed().as_millis() / 200) as usize + 1;
    assert!(
        accepted >= 10
            && accepted <= 10 + refill
            && accepted + statuses.iter().filter(|s| **s == 429).count() == 20,
        "{statuses:?}"
    );
    // Over the socket: refused with an error frame, and the socket stays (no 4029 strike).
    let (ws, _) = &mut joined[1];
    for i in 0..40 {
        ws.say(&format!("w{i}"), &format!("w{i}")).await;
    }
    let mut refused = 0;
    let frames = ws.drain(Duration::from_millis(500)).await;
    for f in &frames {
        if f["type"] == "error" {
            assert_eq!(f["code"], "room_busy", "{f}");
            refused += 1;
        }
    }
    assert!(refused >= 30, "{refused} refused: {frames:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    ws.say("after", "after").await;
    loop {
        let m = ws.next_of("message").await;
        if m["text"] == "after" {
            break;
        }
    }
}

/// Details and history reads are limited per client IP; another client reads on.
#[tokio::test]
async fn reads_are_limited_per_client_ip() {
    let app = spawn_with(|s| {
        s.reads_per_minute = 4;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app.open_room().await;
    let read = |path: String, ip: &'static str| {
        let req = app.http.get(app.url(&path)).header("x-forwarded-for", ip);
        async move { req.send().await.expect("req") }
    };
    let mut statuses = Vec::new();
    for i in 0..6 {
        let path = if i % 2 == 0 {
            format!("/rooms/{}", room.id)
        } else {
            format!("/rooms/{}/messages?after=0&limit=1", room.id)
        };
        statuses.push(read(path, "192.0.2.1").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let res = read(format!("/rooms/{}", room.id), "192.0.2.1").await;
    assert_retry_after(&res, 60);
    assert_eq!(
        read(format!("/rooms/{}", room.id), "192.0.2.2")
            .await
            .status(),
        200
    );
}

/// One client opening sockets in a loop spends its own connect budget: past two seconds' worth
/// it gets `rate_limited` and 1013, while another client is admitted at once.
#[tokio::test]
async fn connects_are_rate_limited_per_client_ip_first() {
    let app = spawn_with(|s| {
        s.connect_rate_per_ip_per_second = 2;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app.open_room().await;
    let connect = |ip: &'static str, name: String| {
        let url = format!("{}/rooms/{}/ws?display_name={name}", app.ws_base, room.id);
        async move {
            let mut ws = Ws::with_headers(&url, &[("x-forwarded-for", ip)])
                .await
                .expect("upgrade");
            let first = ws.recv().await;
            (ws, first)
        }
    };
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let (ws, first) = connect("198.51.100.7", format!("loop{i}")).await;
        let welcomed = matches!(first, Frame::Json(ref v) if v["event"] == "welcome");
        outcomes.push(welcomed);
        if !welcomed {
            assert!(
                matches!(first, Frame::Json(ref v) if v["code"] == "rate_limited"),
                "{first:?}"
            );
        }
        ws.disconnect().await;
    }
    // A bucket of two seconds' worth: four in a burst, then refused.
    assert_eq!(outcomes, [true, true, true, true, false, false]);
    let (_other, first) = connect("198.51.100.8", "other".into()).await;
    assert!(
        matches!(first, Frame::Json(ref v) if v["event"] == "welcome"),
        "another client is admitted: {first:?}"
    );
}

/// New members and resumes are admitted from buckets of their own: a flood of joins that empties
/// the instance's connect rate does not keep a member from coming back.
#[tokio::test]
async fn a_flood_of_joins_does_not_starve_resumes() {
    let app = spawn_with(|s| {
        s.connect_rate_per_second = 3;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app.open_room().await;
    // An instance starts with empty buckets (a fresh instance takes a reconnect storm gently):
    // a second fills both.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    // Joins until the instance refuses new ones.
    let mut refused = false;
    for i in 0..10 {
        let mut ws = app.ws(&room.id, &format!("display_name=j{i}")).await;
        if let Frame::Json(v) = ws.recv().await
            && v["code"] == "unavailable"
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "the instance's join bucket ran dry");
    bob.kill();
    let mut back = app.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    assert_eq!(
        back.json().await["event"],
        "welcome",
        "a resume is still admitted"
    );
}

/// Join tickets are limited per client IP: one client cannot collect them by the thousand.
#[tokio::test]
async fn joins_are_limited_per_client_ip() {
    let app = spawn_with(|s| {
        s.joins_per_minute = 3;
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    let room = app.open_room().await;
    let join = |ip: &'static str, name: &'static str| {
        let req = app
            .http
            .post(app.url(&format!("/rooms/{}/join", room.id)))
            .header("x-forwarded-for", ip)
            .json(&json!({"display_name": name}));
        async move { req.send().await.expect("req") }
    };
    let mut statuses = Vec::new();
    for name in ["a", "b", "c", "d"] {
        statuses.push(join("192.0.2.9", name).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_retry_after(&join("192.0.2.9", "e").await, 60);
    assert_eq!(join("192.0.2.10", "f").await.status(), 200);
}
