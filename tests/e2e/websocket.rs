//! WebSocket flows: joining every way, chat ordering, resume, frames in and out.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn everyone_gets_every_message_once_in_order_with_the_senders_echo() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut alice, welcome) = app.owner(&room).await;
    assert_eq!(welcome["type"], "system");
    assert_eq!(welcome["member_id"], welcome["connection_id"]);
    assert_eq!(welcome["history"], json!([]));
    assert_eq!(welcome["recovered"], true);
    assert!(welcome["resume_token"].as_str().expect("token").len() >= 22);
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    assert_eq!(welcome["online_count"], 2);
    let joined = alice.presence("user_online").await;
    assert_eq!(joined["display_name"], "bob");
    assert_eq!(joined["online_count"], 2);
    let (mut carol, _) = app.member(&room.id, "carol").await;

    let mut seen: [Vec<Value>; 3] = Default::default();
    let names = ["alice", "bob", "carol"];
    let mut clients = [&mut alice, &mut bob, &mut carol];
    for i in 0..9 {
        let who = i % 3;
        clients[who]
            .say(&format!("{} {i}", names[who]), &format!("c-{i}"))
            .await;
        // Wait for the sender's own echo, so the order of sends is the order of acceptance.
        loop {
            let m = clients[who].next_of("message").await;
            seen[who].push(m.clone());
            if m["client_id"] == format!("c-{i}") {
                break;
            }
        }
    }
    for (who, ws) in clients.iter_mut().enumerate() {
        while seen[who].len() < 9 {
            seen[who].push(ws.next_of("message").await);
        }
        let ids: Vec<u64> = seen[who]
            .iter()
            .map(|m| m["id"].as_u64().expect("id"))
            .collect();
        assert_eq!(
            ids,
            (1..=9).collect::<Vec<u64>>(),
            "{} sees every message once, in order",
            names[who]
        );
        for (i, m) in seen[who].iter().enumerate() {
            assert_eq!(m["display_name"], names[i % 3]);
            assert_eq!(m["text"], format!("{} {i}", names[i % 3]));
            assert_eq!(m["client_id"], format!("c-{i}"));
            assert_eq!(m["member_id"], m["connection_id"]);
        }
        let extra = ws.drain(Duration::from_millis(200)).await;
        assert!(
            extra.iter().all(|f| f["type"] != "message"),
            "no duplicates: {extra:?}"
        );
    }
}

#[tokio::test]
async fn message_ids_are_contiguous_for_every_receiver() {
    let app = spawn_with(|s| s.message_rate_per_second = 1000).await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let (mut carol, _) = app.member(&room.id, "carol").await;
    for i in 0..15 {
        alice.say(&format!("a{i}"), &format!("a{i}")).await;
        bob.say(&format!("b{i}"), &format!("b{i}")).await;
    }
    for ws in [&mut alice, &mut bob, &mut carol] {
        let mut ids = Vec::new();
        while ids.len() < 30 {
            ids.push(ws.next_of("message").await["id"].as_u64().expect("id"));
        }
        assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
        assert!(
            ws.drain(Duration::from_millis(200))
                .await
                .iter()
                .all(|f| f["type"] != "message"),
            "no duplicates"
        );
    }
}

#[tokio::test]
async fn direct_join_by_name_only_for_open_rooms() {
    let app = spawn_app().await;
    let locked = app
        .create_room(json!({"owner_name": "alice", "password": "pw"}))
        .await;
    let mut ws = app.ws(&locked.id, "display_name=bob").await;
    let (code, frames) = ws.closed().await;
    assert_eq!(code, 4401);
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "password_required");

    let open = app.open_room().await;
    let (_bob, _) = app.member(&open.id, "bob").await;
    let long = format!("display_name={}", "x".repeat(33));
    for (query, close, error) in [
        ("display_name=BOB", 4409, "name_taken"),
        ("display_name=Alice", 4409, "name_taken"),
        ("display_name=%20%20", 4422, "invalid_request"),
        (long.as_str(), 4422, "invalid_request"),
        ("nothing=1", 4401, "unauthorized"),
    ] {
        let mut ws = app.ws(&open.id, query).await;
        let (code, frames) = ws.closed().await;
        assert_eq!(code, close, "{query}");
        assert_eq!(frames[0]["code"], error, "{query}");
    }
    let mut ws = app.ws("V1StGXR8_Z5jdHi6B-myT", "display_name=x").await;
    let (code, frames) = ws.closed().await;
    assert_eq!(
        (code, frames[0]["code"].clone()),
        (4004, json!("room_not_found"))
    );
}

#[tokio::test]
async fn tickets_are_single_use_and_expire() {
    let app = spawn_with(|s| s.ticket_ttl_seconds = 1).await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "pw"}))
        .await;
    let ticket = app
        .ticket(&room.id, json!({"display_name": "bob", "password": "pw"}))
        .await;
    let mut bob = app.ws(&room.id, &format!("ticket={ticket}")).await;
    assert_eq!(bob.next_of("system").await["event"], "welcome");
    let mut again = app.ws(&room.id, &format!("ticket={ticket}")).await;
    assert_eq!(again.closed().await.0, 4401, "a ticket is single use");

    let late = app
        .ticket(&room.id, json!({"display_name": "carol", "password": "pw"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut carol = app.ws(&room.id, &format!("ticket={late}")).await;
    assert_eq!(carol.closed().await.0, 4401, "an expired ticket is refused");
    let mut forged = app.ws(&room.id, "ticket=forged").await;
    assert_eq!(forged.closed().await.0, 4401);
}

#[tokio::test]
async fn resume_replays_what_was_missed_and_replaces_the_old_connection() {
    let app = spawn_with(|s| s.presence_grace_seconds = 5).await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    alice.say("one", "1").await;
    assert_eq!(bob.next_of("message").await["id"], 1);
    bob.kill();
    alice.say("two", "2").await;
    alice.say("three", "3").await;
    assert_eq!(alice.next_of("message").await["id"], 1);
    let missed = vec![
        alice.next_of("message").await,
        alice.next_of("message").await,
    ];

    let mut bob = app.ws(&room.id, &format!("resume={token}&last_id=1")).await;
    let welcome = bob.next_of("system").await;
    assert_eq!(welcome["event"], "welcome");
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["display_name"], "bob");
    assert_eq!(welcome["resume_token"], token.as_str());
    let ids: Vec<u64> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(
        welcome["history"],
        json!(missed),
        "history holds the frames as broadcast"
    );
    alice.say("four", "4").await;
    assert_eq!(bob.next_of("message").await["id"], 4);

    // A second connection with the same token replaces the first, which closes with 4000.
    let mut newer = app.ws(&room.id, &format!("resume={token}&last_id=4")).await;
    assert_eq!(newer.next_of("system").await["history"], json!([]));
    assert_eq!(bob.closed().await.0, 4000);
    alice.say("five", "5").await;
    assert_eq!(newer.next_of("message").await["id"], 5);
    let seen = alice.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter().all(|f| f["type"] != "presence"),
        "a reconnect is invisible: {seen:?}"
    );

    let mut bad = app.ws(&room.id, "resume=forged&last_id=0").await;
    assert_eq!(bad.closed().await.0, 4401);
}

#[tokio::test]
async fn resume_says_when_history_no_longer_covers_the_gap() {
    let app = spawn_with(|s| {
        s.history_limit = 3;
        s.presence_grace_seconds = 5;
    })
    .await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    bob.kill();
    for i in 1..=6 {
        alice.say(&format!("m{i}"), &format!("c{i}")).await;
        assert_eq!(alice.next_of("message").await["id"], i);
    }
    let mut bob = app.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    let welcome = bob.next_of("system").await;
    assert_eq!(welcome["recovered"], false);
    let ids: Vec<u64> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![4, 5, 6]);
    // A client claiming to be ahead of the room still gets everything new.
    let mut ahead = app
        .ws(&room.id, &format!("resume={token}&last_id=999"))
        .await;
    assert_eq!(ahead.next_of("system").await["recovered"], true);
    alice.say("m7", "c7").await;
    assert_eq!(ahead.next_of("message").await["id"], 7);
}

#[tokio::test]
async fn frames_that_are_not_messages_get_errors_and_the_connection_survives() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    for bad in [
        r#"{"type":"dance"}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"message","text":5}"#,
        "{oops",
        r#"{"text":"hi"}"#,
        r#"{"type":"typing"} trailing"#,
    ] {
        bob.send(bad).await;
        let err = bob.next_of("error").await;
        assert_eq!(err["code"], "invalid_frame", "{bad}");
        let message = err["message"].as_str().expect("message");
        assert!(
            message.starts_with("invalid frame: ") && !message.contains(" at line "),
            "a sentence for the client, without serde's position: {message}"
        );
    }
    bob.send_binary(vec![1, 2, 3]).await;
    assert_eq!(bob.next_of("error").await["code"], "invalid_frame");
    bob.send("   ").await;
    assert_eq!(bob.next_of("error").await["code"], "empty_message");
    bob.send(&"x".repeat(2001)).await;
    assert_eq!(bob.next_of("error").await["code"], "message_too_long");
    bob.send("bell\u{7}").await;
    assert_eq!(bob.next_of("error").await["code"], "invalid_frame");
    bob.say("ok", &"c".repeat(65)).await;
    assert_eq!(bob.next_of("error").await["code"], "invalid_frame");
    // Plain text is a message, EphemeralChat-style; the server builds the envelope.
    bob.send("42").await;
    let msg = bob.next_of("message").await;
    assert_eq!(
        (msg["text"].clone(), msg["id"].clone()),
        (json!("42"), json!(1))
    );
    bob.send_json(json!({"type": "message", "text": "<b>x</b>", "id": 99, "display_name": "mallory", "timestamp": "x"})).await;
    let msg = bob.next_of("message").await;
    assert_eq!(msg["id"], 2);
    assert_eq!(msg["display_name"], "bob");
    assert_eq!(msg["text"], "<b>x</b>");
    assert_ne!(msg["timestamp"], "x");
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.send(&"y".repeat(16_385)).await;
    assert_eq!(bob.closed().await.0, 1009);
}

#[tokio::test]
async fn typing_reaches_others_but_not_the_typist_at_most_every_two_seconds() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    for _ in 0..5 {
        bob.send_json(json!({"type": "typing"})).await;
    }
    let seen = alice.drain(Duration::from_millis(500)).await;
    let typing: Vec<&Value> = seen.iter().filter(|f| f["type"] == "typing").collect();
    assert_eq!(typing.len(), 1, "{seen:?}");
    assert_eq!(typing[0]["display_name"], "bob");
    let own = bob.drain(Duration::from_millis(200)).await;
    assert!(own.iter().all(|f| f["type"] != "typing"), "{own:?}");
}

#[tokio::test]
async fn foreign_origins_are_refused_before_the_upgrade() {
    let app = spawn_with(|s| s.allowed_origins = Some("https://chat.example".into())).await;
    let room = app.open_room().await;
    let url = format!("{}/rooms/{}/ws?display_name=bob", app.ws_base, room.id);
    let err = Ws::try_connect(&url, Some("https://evil.example"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let mut ok = Ws::connect(&url, Some("https://chat.example")).await;
    assert_eq!(ok.next_of("system").await["event"], "welcome");
    let mut script = Ws::connect(&url.replace("bob", "bot"), None).await;
    assert_eq!(script.next_of("system").await["event"], "welcome");
}

/// A resume ticket (POST with the resume token) resumes like the token itself, once; it joins
/// no one, a join ticket resumes no one, and an owner token gets none.
#[tokio::test]
async fn resume_tickets_resume_once_and_only_resume() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    alice.say("one", "1").await;
    alice.next_of("message").await;
    bob.kill();
    alice.say("two", "2").await;
    alice.next_of("message").await;
    let resume = format!("/rooms/{}/resume", room.id);
    let ask = |bearer: String| {
        let (app, resume) = (&app, &resume);
        async move { app.post_as(resume, &bearer).await }
    };
    let res = ask(token.clone()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let ticket = body["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(
        body["ws_url"],
        format!("ws://chat.test/rooms/{}/ws?resume_ticket={ticket}", room.id)
    );
    assert_eq!(body["expires_in"], 60);
    let mut bob = app
        .ws(&room.id, &format!("resume_ticket={ticket}&last_id=1"))
        .await;
    let welcome = bob.next_of("system").await;
    assert_eq!(welcome["event"], "welcome");
    assert_eq!(welcome["display_name"], "bob");
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["history"][0]["text"], "two");
    assert!(
        welcome.get("resume_token").is_none(),
        "the token is not repeated: {welcome}"
    );
    // Used up.
    let mut again = app
        .ws(&room.id, &format!("resume_ticket={ticket}&last_id=1"))
        .await;
    assert_eq!(again.next_of("error").await["code"], "unauthorized");
    assert_eq!(again.closed().await.0, 4401);
    // A resume ticket joins no one; a join ticket resumes no one.
    let body: Value = ask(token.clone()).await.json().await.expect("json");
    let resume_ticket = body["ticket"].as_str().expect("ticket").to_owned();
    let mut joiner = app.ws(&room.id, &format!("ticket={resume_ticket}")).await;
    assert_eq!(joiner.closed().await.0, 4401);
    let join_ticket = app.ticket(&room.id, json!({"display_name": "carol"})).await;
    let mut resumer = app
        .ws(&room.id, &format!("resume_ticket={join_ticket}&last_id=0"))
        .await;
    assert_eq!(resumer.closed().await.0, 4401);
    // Only a member's resume token gets one.
    assert_eq!(ask(room.owner_token.clone()).await.status(), 401);
    assert_eq!(ask("forged".into()).await.status(), 401);
    bob.say("back", "b").await;
    assert_eq!(bob.next_of("message").await["text"], "back");
}
