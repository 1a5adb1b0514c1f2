//! Scripts as first-class clients (API.md, "POST /rooms/{room_id}/messages"): the owner posts with
//! its token alone, and a retried message is posted once, however it is retried.

use crate::cluster::Cluster;
use crate::helpers::{Room, TestApp, spawn_app, spawn_with};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_script_creates_posts_as_the_owner_and_destroys_with_http_alone() {
    let app = spawn_app().await;
    let room = app
        .create_room(json!({"owner_name": "deploy-bot", "name": "Release"}))
        .await;
    let owner_id = room.body["owner_member_id"].as_str().expect("owner id");
    let post = |body: Value| {
        app.http
            .post(app.url(&format!("/rooms/{}/messages", room.id)))
            .bearer_auth(&room.owner_token)
            .json(&body)
            .send()
    };
    let res = post(json!({"text": "v2.1 is out", "client_id": "announce-1"}))
        .await
        .expect("post");
    assert_eq!(res.status(), 201, "the owner never connected, and posts");
    let posted: Value = res.json().await.expect("json");
    assert_eq!(posted["member_id"], owner_id);
    assert_eq!(posted["display_name"], "deploy-bot");
    let details = app.details(&room.id).await;
    assert_eq!(
        details["online_users_count"], 0,
        "posting is not being online"
    );

    // Whoever joins sees it, from the owner.
    let (_bob, welcome) = app.member(&room.id, "bob").await;
    assert_eq!(welcome["history"][0]["text"], "v2.1 is out");
    assert_eq!(welcome["history"][0]["member_id"], owner_id);

    // Leaving, as an owner that is not online, changes nothing; destroying ends the room.
    let res = app
        .post_as(&format!("/rooms/{}/leave", room.id), &room.owner_token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&format!("/rooms/{}", room.id)).await.status(), 200);
    app.close_room(&room).await;
    assert_eq!(app.get(&format!("/rooms/{}", room.id)).await.status(), 404);
}

#[tokio::test]
async fn a_retried_message_is_posted_once_however_it_is_retried() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let (mut carol, _) = app.member(&room.id, "carol").await;
    bob.presence("user_online").await;

    // Ten copies of one REST post at once: one is posted (201), the others answer it (200).
    let post = || {
        app.http
            .post(app.url(&format!("/rooms/{}/messages", room.id)))
            .bearer_auth(&token)
            .json(&json!({"text": "deploying now", "client_id": "retry-me"}))
            .send()
    };
    let answers = join_all((0..10).map(|_| post())).await;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for res in answers {
        let res = res.expect("post");
        statuses.push(res.status().as_u16());
        ids.push(res.json::<Value>().await.expect("json")["id"].clone());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    assert!(ids.iter().all(|id| *id == json!(1)), "{ids:?}");
    assert_eq!(carol.next_of("message").await["id"], 1);

    // Over WebSocket: the retry is echoed to its sender alone, as the original.
    bob.say("from the socket", "ws-1").await;
    let original = loop {
        let frame = bob.next_of("message").await;
        if frame["id"] == 2 {
            break frame;
        }
    };
    assert_eq!(carol.next_of("message").await["id"], 2);
    bob.say("from the socket, again", "ws-1").await;
    assert_eq!(bob.next_of("message").await, original);
    let seen = carol.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter().all(|f| f["type"] != "message"),
        "nobody else sees a second copy: {seen:?}"
    );
    let history = app.messages(&room.id, None).await;
    assert_eq!(history["last_id"], 2);
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(2));
}

/// An event stream as a script reads it: `GET /rooms/{id}/events`, event by event.
pub struct EventStream {
    res: reqwest::Response,
    buffer: String,
    /// Comments (keep-alives) seen.
    pub comments: usize,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

impl EventStream {
    /// Opens the stream with `token`, after `last_id` if given; panics unless it is a 200
    /// event stream.
    pub async fn open(app: &TestApp, room: &str, token: &str, last_id: Option<u64>) -> EventStream {
        let mut req = app
            .http
            .get(app.url(&format!("/rooms/{room}/events")))
            .bearer_auth(token);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = req.send().await.expect("events");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        EventStream {
            res,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next event within `within`; `None` when the stream ended or the time ran out.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut comment = true;
                for line in block.lines() {
                    if let Some(kind) = line.strip_prefix("event: ") {
                        event.event = kind.to_owned();
                    } else if let Some(id) = line.strip_prefix("id: ") {
                        event.id = id.parse().ok();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(data).expect("JSON data");
                        comment = false;
                    }
                }
                if comment {
                    self.comments += 1;
                } else {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event of kind `kind`, skipping others; panics after 10 s.
    pub async fn next_of(&mut self, kind: &str) -> Event {
        loop {
            let event = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("an event {kind}"));
            if event.event == kind {
                return event;
            }
        }
    }
}

/// Posts `text` as the owner over REST; the message's id.
async fn announce(app: &TestApp, room: &Room, text: &str) -> u64 {
    let res = app
        .http
        .post(app.url(&format!("/rooms/{}/messages", room.id)))
        .bearer_auth(&room.owner_token)
        .json(&json!({"text": text}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201, "{text}");
    res.json::<Value>().await.expect("json")["id"]
        .as_u64()
        .expect("id")
}

#[tokio::test]
async fn an_event_stream_follows_a_room_and_ends_with_it() {
    let app = spawn_with(|s| s.ping_interval_seconds = 1).await;
    let room = app.open_room().await;
    // No token, a bad one, a Last-Event-ID that is no id: refused before any stream.
    let url = app.url(&format!("/rooms/{}/events", room.id));
    assert_eq!(
        app.get(&format!("/rooms/{}/events", room.id))
            .await
            .status(),
        401
    );
    let res = app
        .http
        .get(&url)
        .bearer_auth("forged")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth(&room.owner_token)
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 422);

    // The owner follows with its token alone: the welcome first, and it is online.
    announce(&app, &room, "before").await;
    let mut stream = EventStream::open(&app, &room.id, &room.owner_token, None).await;
    let welcome = stream.next_of("welcome").await;
    assert_eq!(welcome.data["role"], "owner");
    assert_eq!(welcome.data["history"][0]["text"], "before");
    assert_eq!(welcome.id, Some(1));
    let (mut bob, bob_welcome) = app.member(&room.id, "bob").await;
    assert!(
        bob_welcome["online_users"]
            .as_array()
            .expect("online")
            .iter()
            .any(|u| u["role"] == "owner"),
        "others see who is reading: {bob_welcome}"
    );
    assert_eq!(stream.next_of("presence").await.data["display_name"], "bob");
    bob.say("hello reader", "b1").await;
    let said = stream.next_of("message").await;
    assert_eq!(
        (said.id, said.data["text"].clone()),
        (Some(2), json!("hello reader"))
    );
    // Keep-alives come as comments while nothing happens.
    let quiet = stream.comments;
    assert!(stream.next(Duration::from_millis(2500)).await.is_none() || stream.comments > quiet);
    assert!(
        stream.comments > quiet,
        "a keep-alive comment within the ping interval"
    );

    // The room ends: the stream says why, then closes.
    app.close_room(&room).await;
    let closed = stream.next_of("room_closed").await;
    assert_eq!(closed.data["reason"], "closed");
    let last = stream.next_of("close").await;
    assert_eq!(last.data["code"], 4002);
    assert!(
        stream.next(Duration::from_secs(2)).await.is_none(),
        "and ends"
    );
    bob.closed().await;
}

/// FAILURES.md: an instance shutting down ends its event streams with a `close` event saying
/// 1001 (resume elsewhere), then the response ends; the member keeps its grace.
#[tokio::test]
async fn a_draining_instance_ends_its_event_streams_with_1001() {
    let app = spawn_with(|s| s.presence_grace_seconds = 30).await;
    let room = app.open_room().await;
    let mut stream = EventStream::open(&app, &room.id, &room.owner_token, None).await;
    stream.next_of("welcome").await;
    let hub = app.hub.clone().expect("in-process app");
    hub.drain(Duration::ZERO, Duration::from_secs(5)).await;
    let last = stream.next_of("close").await;
    assert_eq!(last.data["code"], 1001, "{:?}", last.data);
    assert!(
        stream.next(Duration::from_secs(2)).await.is_none(),
        "and ends"
    );
    let details: Value = app.details(&room.id).await;
    assert_eq!(
        details["online_users_count"], 1,
        "the owner keeps its grace"
    );
}

#[tokio::test]
async fn an_event_stream_resumes_across_an_instance_kill_through_nginx_missing_and_doubling_nothing()
 {
    let mut cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10")]);
    let app = cluster.app();
    let room = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    // Bob gets his resume token from a WebSocket welcome, then follows over HTTP instead.
    let (ws, welcome) = cluster.instance(0).member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let mut stream = EventStream::open(&app, &room.id, &token, Some(0)).await;
    stream.next_of("welcome").await;
    drop(ws);
    let mut seen = Vec::new();
    for i in 1..=5 {
        let id = announce(&app, &room, &format!("m{i}")).await;
        let event = stream.next_of("message").await;
        assert_eq!(event.id, Some(id));
        seen.push(event.data["id"].as_u64().expect("id"));
    }
    // The instance that streams to Bob dies; the owner goes on posting through nginx.
    // Once Bob's WebSocket has closed (replaced by the stream), one connection is left: his.
    let streaming = cluster.holding_the_one_connection().await;
    cluster.instances[streaming].kill();
    assert!(
        stream.next(Duration::from_secs(5)).await.is_none(),
        "the stream broke"
    );
    for i in 6..=8 {
        announce(&app, &room, &format!("m{i}")).await;
    }
    // Bob comes back with the last id he has: the welcome brings exactly what he missed.
    let last = *seen.last().expect("ids");
    let mut stream = EventStream::open(&app, &room.id, &token, Some(last)).await;
    let welcome = stream.next_of("welcome").await;
    assert_eq!(welcome.data["recovered"], true);
    for m in welcome.data["history"].as_array().expect("history") {
        seen.push(m["id"].as_u64().expect("id"));
    }
    assert_eq!(welcome.id, Some(8));
    announce(&app, &room, "m9").await;
    seen.push(stream.next_of("message").await.id.expect("id"));
    assert_eq!(
        seen,
        (1..=9).collect::<Vec<u64>>(),
        "nothing missed, nothing twice"
    );
    assert_eq!(
        app.details(&room.id).await["online_users_count"],
        1,
        "Bob, reading, is online; the owner never connected"
    );
}
