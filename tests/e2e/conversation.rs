//! The conversation over WebSocket and REST, on two instances sharing Redis: replies, edits,
//! deletions and reactions are events with the room's next id, reach every member in order,
//! and come again, exactly once, to a member who was away.

use crate::cluster::Cluster;
use crate::helpers::{Ws, spawn_with};
use serde_json::{Value, json};
use std::time::Duration;

/// Reads the next conversation event (skipping presence, typing and the like).
async fn event(ws: &mut Ws) -> Value {
    loop {
        let frame = ws.json().await;
        match frame["type"].as_str() {
            Some("message" | "message_edited" | "message_deleted" | "reaction" | "error") => {
                return frame;
            }
            _ => continue,
        }
    }
}

/// Sends `frame` and reads the `error` it is refused with (no event comes before it).
async fn refused(ws: &mut Ws, frame: Value) -> String {
    ws.send_json(frame.clone()).await;
    let answer = event(ws).await;
    assert_eq!(answer["type"], "error", "{frame} was refused: {answer}");
    answer["code"].as_str().unwrap_or_default().to_owned()
}

fn id_of(frame: &Value) -> u64 {
    frame["id"].as_u64().expect("an id")
}

#[tokio::test]
async fn replies_edits_deletions_and_reactions_reach_everyone_in_order() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let (mut alice, _) = a.owner(&room).await;
    let (mut bob, bob_welcome) = b.member(&room.id, "bob").await;
    let (mut carol, _) = a.member(&room.id, "carol").await;
    let bob_id = bob_welcome["member_id"].as_str().expect("id").to_owned();

    bob.say("helo", "c-1").await;
    let first = event(&mut carol).await;
    assert_eq!((id_of(&first), first["text"].clone()), (1, json!("helo")));
    assert_eq!(id_of(&event(&mut bob).await), 1, "the author's echo");
    carol
        .send_json(json!({"type": "message", "text": "hi bob", "reply_to": 1}))
        .await;
    let reply = event(&mut bob).await;
    assert_eq!((id_of(&reply), reply["reply_to"].clone()), (2, json!(1)));
    assert_eq!(id_of(&event(&mut carol).await), 2, "the author's echo");
    assert_eq!(id_of(&event(&mut alice).await), 1);
    assert_eq!(id_of(&event(&mut alice).await), 2);

    // Refusals, each with its code, and the connection stays.
    let not_hers = json!({"type": "edit", "target": 1, "text": "x"});
    assert_eq!(refused(&mut carol, not_hers).await, "forbidden");
    let not_hers = json!({"type": "delete", "target": 1});
    assert_eq!(refused(&mut carol, not_hers).await, "forbidden");
    for emoji in ["ab", "👍👍", "", "👍 "] {
        let frame = json!({"type": "react", "target": 1, "emoji": emoji});
        assert_eq!(
            refused(&mut carol, frame).await,
            "invalid_frame",
            "{emoji:?}"
        );
    }
    let nowhere = json!({"type": "message", "text": "?", "reply_to": 3});
    assert_eq!(refused(&mut carol, nowhere).await, "invalid_frame");
    let not_a_message = json!({"type": "react", "target": 0, "emoji": "👍"});
    assert_eq!(refused(&mut carol, not_a_message).await, "invalid_frame");
    let empty = json!({"type": "edit", "target": 1, "text": "  "});
    assert_eq!(refused(&mut bob, empty).await, "empty_message");

    // The author edits; a reaction goes on and off; the owner deletes. Each reaches all
    // three (on either instance) before the next is sent, so the order is known.
    let steps = [
        (
            "bob",
            json!({"type": "edit", "target": 1, "text": "hello"}),
            json!({"type": "message_edited", "id": 3, "target": 1, "text": "hello", "member_id": bob_id}),
        ),
        (
            "carol",
            json!({"type": "react", "target": 1, "emoji": "❤"}),
            json!({"type": "reaction", "id": 4, "target": 1, "emoji": "❤\u{fe0f}", "on": true}),
        ),
        (
            "alice",
            json!({"type": "react", "target": 2, "emoji": "👍"}),
            json!({"type": "reaction", "id": 5, "target": 2, "emoji": "👍", "on": true}),
        ),
        (
            "alice",
            json!({"type": "react", "target": 2, "emoji": "👍"}),
            json!({"type": "reaction", "id": 6, "target": 2, "emoji": "👍", "on": false}),
        ),
        (
            "alice",
            json!({"type": "delete", "target": 1}),
            json!({"type": "message_deleted", "id": 7, "target": 1}),
        ),
    ];
    for (who, frame, want) in steps {
        let sender = match who {
            "alice" => &mut alice,
            "bob" => &mut bob,
            _ => &mut carol,
        };
        sender.send_json(frame).await;
        for ws in [&mut alice, &mut bob, &mut carol] {
            let got = event(ws).await;
            for (field, value) in want.as_object().expect("object") {
                assert_eq!(&got[field], value, "{field} of {got}");
            }
        }
    }
    let deleted = json!({"type": "edit", "target": 1, "text": "again"});
    assert_eq!(refused(&mut bob, deleted).await, "not_found");

    // History holds the tombstone and every event; no text of the deleted message anywhere.
    let history = b.messages(&room.id, None).await;
    let kept = history["messages"].as_array().expect("messages");
    let ids: Vec<u64> = kept.iter().map(id_of).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(kept[0]["deleted"], true);
    assert!(!history.to_string().contains("helo"), "{history}");
    assert_eq!(history["last_id"], 7);
}

#[tokio::test]
async fn a_member_who_was_away_gets_what_it_missed_exactly_once() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let (mut alice, _) = a.owner(&room).await;
    let (bob, welcome) = b.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    alice.say("one", "c-1").await;
    alice.say("two", "c-2").await;
    assert_eq!(id_of(&event(&mut alice).await), 1);
    assert_eq!(id_of(&event(&mut alice).await), 2);
    bob.disconnect().await;

    // While bob is away: an edit, reactions, a deletion, a reply.
    for frame in [
        json!({"type": "edit", "target": 1, "text": "one, edited"}),
        json!({"type": "react", "target": 1, "emoji": "🎉"}),
        json!({"type": "react", "target": 2, "emoji": "🎉"}),
        json!({"type": "delete", "target": 2}),
        json!({"type": "message", "text": "three", "reply_to": 1}),
    ] {
        alice.send_json(frame).await;
        event(&mut alice).await;
    }

    let mut back = a.ws(&room.id, &format!("resume={token}&last_id=2")).await;
    let welcome = back.next_of("system").await;
    assert_eq!(welcome["recovered"], true, "{welcome}");
    let missed: Vec<(u64, String)> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| (id_of(e), e["type"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        missed,
        [
            (3, "message_edited".to_owned()),
            (4, "reaction".to_owned()),
            (5, "reaction".to_owned()),
            (6, "message_deleted".to_owned()),
            (7, "message".to_owned()),
        ],
        "each once, in order"
    );
    // Then live again, nothing repeated.
    alice.say("four", "c-4").await;
    assert_eq!(id_of(&event(&mut back).await), 8);
    // A fresh joiner sees the messages as they are now.
    let (_, fresh) = b.member(&room.id, "carol").await;
    let history = &fresh["history"];
    assert_eq!(history[0]["text"], "one, edited");
    assert_eq!(history[0]["edited"], true);
    assert_eq!(history[0]["reactions"][0]["emoji"], "🎉");
    assert_eq!(history[1]["deleted"], true);
    assert!(history[1].get("text").is_none());
}

/// The same actions over REST, with their statuses; and the edit window, pinned.
#[tokio::test]
async fn messages_are_edited_deleted_and_reacted_to_over_rest() {
    let app = spawn_with(|s| s.edit_window_seconds = 1).await;
    let room = app.open_room().await;
    let (_alice, _) = app.owner(&room).await;
    let (_bob, welcome) = app.member(&room.id, "bob").await;
    let (_carol, carol_welcome) = app.member(&room.id, "carol").await;
    let bob = welcome["resume_token"].as_str().expect("token").to_owned();
    let carol = carol_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let base = format!("/rooms/{}/messages", room.id);
    let send = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(&path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    use reqwest::Method;
    let post =
        |body: Value, token: &str| send(Method::POST, base.clone(), token.into(), Some(body));
    let (status, first) = post(json!({"text": "helo"}), &bob).await;
    assert_eq!((status, id_of(&first)), (201, 1));
    let (status, reply) = post(json!({"text": "yes?", "reply_to": 1}), &carol).await;
    assert_eq!((status, reply["reply_to"].clone()), (201, json!(1)));
    let (status, body) = post(json!({"text": "?", "reply_to": 9}), &carol).await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("invalid_request"))
    );

    let edit = |id: &str, token: &str, text: &str| {
        let body = json!({ "text": text });
        send(
            Method::PATCH,
            format!("{base}/{id}"),
            token.into(),
            Some(body),
        )
    };
    let (status, body) = edit("1", &carol, "x").await;
    assert_eq!((status, body["code"].clone()), (403, json!("forbidden")));
    let (status, body) = edit("1", &bob, "hello").await;
    assert_eq!(
        (status, body["type"].clone(), id_of(&body)),
        (200, json!("message_edited"), 3)
    );
    let (status, body) = edit("one", &bob, "x").await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("invalid_request"))
    );
    let (status, _) = edit("1", "not-a-token", "x").await;
    assert_eq!(status, 401);

    let react = |id: &str, token: &str, emoji: &str| {
        let body = json!({ "emoji": emoji });
        let path = format!("{base}/{id}/reactions");
        send(Method::POST, path, token.into(), Some(body))
    };
    let (status, body) = react("1", &carol, "👍").await;
    assert_eq!(
        (status, body["on"].clone(), id_of(&body)),
        (200, json!(true), 4)
    );
    let (status, body) = react("1", &carol, "👍").await;
    assert_eq!((status, body["on"].clone()), (200, json!(false)));
    let (status, body) = react("1", &carol, "thumbs up").await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("invalid_request"))
    );

    let delete =
        |id: &str, token: &str| send(Method::DELETE, format!("{base}/{id}"), token.into(), None);
    let (status, body) = delete("1", &carol).await;
    assert_eq!((status, body["code"].clone()), (403, json!("forbidden")));
    let (status, body) = delete("2", &room.owner_token).await;
    assert_eq!(
        (status, body["type"].clone(), body["target"].clone()),
        (200, json!("message_deleted"), json!(2))
    );
    let (status, body) = delete("2", &carol).await;
    assert_eq!((status, body["code"].clone()), (404, json!("not_found")));

    // Past the window (one second here), even the author may not edit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = edit("1", &bob, "too late").await;
    assert_eq!((status, body["code"].clone()), (403, json!("forbidden")));
    let kept = app.messages(&room.id, None).await;
    assert_eq!(kept["messages"][0]["text"], "hello", "{kept}");
    assert_eq!(kept["messages"][1]["deleted"], true);
    assert_eq!(kept["last_id"], 6);
}
