//! Scripts as first-class clients (API.md, "POST /rooms/{room_id}/messages"): the owner posts with
//! its token alone, and a retried message is posted once, however it is retried.

use crate::helpers::spawn_app;
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
