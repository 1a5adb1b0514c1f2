//! Time and lifecycle: presence grace, leaving, owner-offline destruction, expiry, closing.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn offline_count(frames: &[Value], name: &str) -> usize {
    frames
        .iter()
        .filter(|f| {
            f["type"] == "presence" && f["event"] == "user_offline" && f["display_name"] == name
        })
        .count()
}

#[tokio::test]
async fn a_reconnect_within_the_grace_is_invisible_and_a_drop_is_seen_once_after_it() {
    let app = spawn_with(|s| s.presence_grace_seconds = 2).await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    alice.presence("user_online").await;

    bob.disconnect().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut bob = app.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    assert_eq!(bob.next_of("system").await["event"], "welcome");
    let quiet = alice.drain(Duration::from_millis(2500)).await;
    assert_eq!(offline_count(&quiet, "bob"), 0, "{quiet:?}");

    let dropped_at = std::time::Instant::now();
    bob.kill();
    let offline = alice.presence("user_offline").await;
    let after = dropped_at.elapsed();
    assert_eq!(offline["display_name"], "bob");
    assert_eq!(offline["online_count"], 1);
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_millis(3500),
        "{after:?}"
    );
    let rest = alice.drain(Duration::from_millis(1000)).await;
    assert_eq!(offline_count(&rest, "bob"), 0, "user_offline comes once");
    // The name and the slot are free again.
    let (_again, welcome) = app.member(&room.id, "bob").await;
    assert_ne!(welcome["member_id"], offline["member_id"]);
}

#[tokio::test]
async fn leaving_is_immediate_over_websocket_and_rest() {
    let app = spawn_with(|s| s.presence_grace_seconds = 30).await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.send_json(json!({"type": "leave"})).await;
    assert_eq!(bob.closed().await.0, 1000);
    assert_eq!(alice.presence("user_offline").await["display_name"], "bob");

    let (mut carol, welcome) = app.member(&room.id, "carol").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let res = app
        .post_as(&format!("/rooms/{}/leave", room.id), &token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("json")["message"],
        "Left the room"
    );
    assert_eq!(carol.closed().await.0, 1000);
    assert_eq!(
        alice.presence("user_offline").await["display_name"],
        "carol"
    );
    let mut resumed = app.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    assert_eq!(
        resumed.closed().await.0,
        4401,
        "a member who left cannot resume"
    );
    let details: Value = app.details(&room.id).await;
    assert_eq!(details["online_users_count"], 1);
}

#[tokio::test]
async fn owner_offline_destroys_the_room_only_after_the_grace() {
    let app = spawn_with(|s| s.presence_grace_seconds = 1).await;
    // The owner grace as short as the presence grace: no time away before the end.
    let room = app
        .create_room(json!({"owner_name": "alice", "owner_grace_seconds": 1}))
        .await;
    let (alice, welcome) = app.owner(&room).await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let (mut bob, _) = app.member(&room.id, "bob").await;

    // A quick reconnect does not destroy the room.
    alice.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut alice = app.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    assert_eq!(alice.next_of("system").await["role"], "owner");
    let quiet = bob.drain(Duration::from_millis(1800)).await;
    assert!(quiet.is_empty(), "{quiet:?}");

    alice.kill();
    let (code, frames) = bob.closed().await;
    assert_eq!(code, 4003);
    let closed = frames
        .iter()
        .find(|f| f["event"] == "room_closed")
        .expect("room_closed frame");
    assert_eq!(closed["reason"], "owner_offline");
    assert_eq!(offline_count(&frames, "alice"), 1);
    assert_eq!(app.get(&format!("/rooms/{}", room.id)).await.status(), 404);
}

#[tokio::test]
async fn an_owner_who_leaves_gets_1000_and_everyone_else_4002_closed() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    alice.send_json(json!({"type": "leave"})).await;
    assert_eq!(alice.closed().await.0, 1000);
    // The owner chose to end the room: members are told it was closed, not that the owner
    // went offline.
    bob.closed_with_room_closed(4002, "closed").await;
}

#[tokio::test]
async fn a_room_whose_owner_never_connected_lives_and_keep_rooms_survive_their_owner() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    assert!(bob.drain(Duration::from_millis(1500)).await.is_empty());

    let keep = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    let (alice, _) = app.owner(&keep).await;
    let (mut carol, _) = app.member(&keep.id, "carol").await;
    alice.kill();
    assert_eq!(
        carol.presence("user_offline").await["display_name"],
        "alice"
    );
    carol.say("still here", "c").await;
    assert_eq!(carol.next_of("message").await["text"], "still here");
}

#[tokio::test]
async fn expiry_closes_every_connection_within_a_second_and_deletes_the_room() {
    let app = spawn_app().await;
    let room = app
        .create_room(json!({"owner_name": "alice", "expiry_seconds": 2}))
        .await;
    let expires_at = room.body["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_owned();
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    alice.say("gone soon", "c").await;
    for ws in [&mut alice, &mut bob] {
        let (code, frames) = ws.closed().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        assert_eq!(code, 4001);
        let closed = frames
            .iter()
            .find(|f| f["event"] == "room_closed")
            .expect("room_closed");
        assert_eq!(closed["reason"], "expired");
        assert_eq!(closed["room_id"], room.id);
        let deadline = parse_ms(&expires_at);
        assert!(
            now - deadline < 1000,
            "closed {} ms after expiry",
            now - deadline
        );
        assert!(now >= deadline, "closed before expiry");
    }
    assert_eq!(app.get(&format!("/rooms/{}", room.id)).await.status(), 404);
    assert_eq!(
        app.get(&format!("/rooms/{}/messages", room.id))
            .await
            .status(),
        404
    );
}

fn parse_ms(rfc3339: &str) -> i64 {
    protocol::parse_rfc3339(rfc3339).expect("timestamp") as i64
}

#[tokio::test]
async fn close_room_frame_closes_everyone_with_4002_and_members_may_not() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut alice, _) = app.owner(&room).await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.send_json(json!({"type": "close_room"})).await;
    assert_eq!(bob.next_of("error").await["code"], "forbidden");
    alice.send_json(json!({"type": "close_room"})).await;
    for ws in [&mut alice, &mut bob] {
        ws.closed_with_room_closed(4002, "closed").await;
    }
    assert_eq!(app.get(&format!("/rooms/{}", room.id)).await.status(), 404);
}

#[tokio::test]
async fn delete_over_rest_reaches_connected_members() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let res = app
        .http
        .delete(app.url(&format!("/rooms/{}/", room.id)))
        .bearer_auth(&room.owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    assert_eq!(bob.closed().await.0, 4002);
}
