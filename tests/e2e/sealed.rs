//! Encrypted rooms (API.md, "Encrypted rooms"): the server takes, relays, keeps and returns
//! ciphertext byte for byte, refuses plaintext in them (and ciphertext in open rooms), and
//! never needs the key. The key and the encryption here are a client's (crates/seal).

use crate::helpers::{Room, TestApp, spawn_app, spawn_with};
use protocol::text::sealed_max;
use seal::{NAME_AAD, RoomKey, message_aad};
use serde_json::{Value, json};

/// An encrypted room owned by "alice", named `name` (encrypted), under a new key.
pub async fn encrypted_room(app: &TestApp, name: &str) -> (Room, RoomKey) {
    let key = RoomKey::generate();
    let room = app
        .create_room(json!({
            "owner_name": "alice",
            "encrypted": true,
            "name_ciphertext": key.seal(name, NAME_AAD),
            "key_check": key.key_check(),
        }))
        .await;
    (room, key)
}

/// The text of a message frame of room `room_id`, opened with `key`.
fn opened(key: &RoomKey, room_id: &str, frame: &Value) -> String {
    assert!(
        frame.get("text").is_none(),
        "no text beside ciphertext: {frame}"
    );
    let sealed = frame["ciphertext"].as_str().expect("ciphertext");
    let member = frame["member_id"].as_str().expect("member_id");
    key.open(sealed, &message_aad(room_id, member))
        .expect("opens with the room key and its author")
}

#[tokio::test]
async fn an_encrypted_room_relays_keeps_and_returns_ciphertext_byte_for_byte() {
    let app = spawn_with(|s| s.presence_grace_seconds = 5).await;
    let (room, key) = encrypted_room(&app, "Secret plans").await;
    let id = room.id.as_str();

    // Creation answers what a client needs to encrypt as the owner, before it ever joins.
    let owner_id = room.body["owner_member_id"].as_str().expect("owner id");
    assert_eq!(room.body["encrypted"], true);
    assert_eq!(room.body["name"], Value::Null);
    assert_eq!(room.body["key_check"], key.key_check().as_str());
    let sealed_name = room.body["name_ciphertext"].as_str().expect("name");
    assert_eq!(
        key.open(sealed_name, NAME_AAD).as_deref(),
        Ok("Secret plans")
    );
    let details = app.details(id).await;
    for field in ["encrypted", "name", "name_ciphertext", "key_check"] {
        assert_eq!(details[field], room.body[field], "details: {field}");
    }
    assert!(key.checks(details["key_check"].as_str().expect("check")));

    let (mut alice, welcome) = app.owner(&room).await;
    assert_eq!(welcome["encrypted"], true);
    assert_eq!(
        welcome["member_id"], owner_id,
        "the owner is the id it was told"
    );
    let (mut bob, welcome) = app.member(id, "bob").await;
    assert_eq!(welcome["encrypted"], true);
    let bob_id = welcome["member_id"].as_str().expect("id").to_owned();
    let bob_token = welcome["resume_token"].as_str().expect("token").to_owned();
    alice.presence("user_online").await;

    // A message goes out as ciphertext and arrives exactly as sent.
    let mut sent = Vec::new();
    let one = key.seal("meet at 6", &message_aad(id, owner_id));
    alice
        .send_json(json!({"type": "message", "ciphertext": one, "client_id": "c1"}))
        .await;
    let got = bob.next_of("message").await;
    assert_eq!(got["ciphertext"], one.as_str());
    assert_eq!(got["client_id"], "c1");
    assert_eq!(opened(&key, id, &got), "meet at 6");
    sent.push(one);

    // Plaintext never gets in, whatever shape it comes in; malformed ciphertext neither.
    let longest = "A".repeat(sealed_max(2000));
    for (frame, code) in [
        (json!({"type": "message", "text": "oops"}), "invalid_frame"),
        (
            json!({"type": "message", "text": "oops", "ciphertext": sent[0]}),
            "invalid_frame",
        ),
        (json!({"type": "message"}), "invalid_frame"),
        (
            json!({"type": "message", "ciphertext": format!("{}=", "A".repeat(43))}),
            "invalid_frame",
        ),
        (
            json!({"type": "message", "ciphertext": "AAAA"}),
            "invalid_frame",
        ),
        (
            json!({"type": "message", "ciphertext": ""}),
            "empty_message",
        ),
        (
            json!({"type": "message", "ciphertext": format!("{longest}AAAA")}),
            "message_too_long",
        ),
    ] {
        alice.send_json(frame.clone()).await;
        let error = alice.next_of("error").await;
        assert_eq!(error["code"], code, "{frame}: {error}");
    }
    alice.send("plain words, not JSON").await;
    assert_eq!(alice.next_of("error").await["code"], "invalid_frame");
    // The longest ciphertext the limit allows is taken.
    alice
        .send_json(json!({"type": "message", "ciphertext": longest}))
        .await;
    assert_eq!(bob.next_of("message").await["ciphertext"], longest.as_str());
    sent.push(longest);

    // Over REST, as a member: ciphertext in, the frame as broadcast out; text refused.
    let two = key.seal("from a script", &message_aad(id, &bob_id));
    let res = app
        .http
        .post(app.url(&format!("/rooms/{id}/messages")))
        .bearer_auth(&bob_token)
        .json(&json!({"ciphertext": two}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let posted: Value = res.json().await.expect("json");
    assert_eq!(posted["ciphertext"], two.as_str());
    assert_eq!(opened(&key, id, &posted), "from a script");
    sent.push(two);
    let res = app
        .http
        .post(app.url(&format!("/rooms/{id}/messages")))
        .bearer_auth(&bob_token)
        .json(&json!({"text": "plaintext"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "invalid_request", "{body}");

    // History returns the ciphertext exactly as sent, in order.
    let kept = app.messages(id, None).await;
    let kept: Vec<&str> = kept["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["ciphertext"].as_str().expect("ciphertext"))
        .collect();
    assert_eq!(kept, sent);

    // Bob drops; what he missed comes back on resume, once, byte for byte.
    assert_eq!(bob.next_of("message").await["id"], 3);
    bob.kill();
    let three = key.seal("while you were away", &message_aad(id, owner_id));
    alice
        .send_json(json!({"type": "message", "ciphertext": three}))
        .await;
    // Alice's own echo of it, as broadcast (earlier echoes may still be queued).
    let missed = loop {
        let frame = alice.next_of("message").await;
        if frame["id"] == 4 {
            break vec![frame];
        }
    };
    let mut bob = app.ws(id, &format!("resume={bob_token}&last_id=3")).await;
    let welcome = bob.next_of("system").await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["encrypted"], true);
    assert_eq!(welcome["history"], json!(missed));
    assert_eq!(
        opened(&key, id, &welcome["history"][0]),
        "while you were away"
    );
}

#[tokio::test]
async fn a_message_moved_to_another_author_or_room_does_not_open() {
    let key = RoomKey::generate();
    let sealed = key.seal("mine", &message_aad("room-a", "alice"));
    assert!(
        key.open(&sealed, &message_aad("room-a", "mallory"))
            .is_err()
    );
    assert!(key.open(&sealed, &message_aad("room-b", "alice")).is_err());
    // So a server that re-attributes a message makes it fail, as the page shows it.
    let app = spawn_app().await;
    let (room, key) = encrypted_room(&app, "r").await;
    let (mut alice, welcome) = app.owner(&room).await;
    let (_bob, bob_welcome) = app.member(&room.id, "bob").await;
    let alice_id = welcome["member_id"].as_str().expect("id");
    let as_bob = key.seal(
        "forged",
        &message_aad(&room.id, bob_welcome["member_id"].as_str().expect("id")),
    );
    alice
        .send_json(json!({"type": "message", "ciphertext": as_bob}))
        .await;
    let frame = alice.next_of("message").await;
    assert_eq!(frame["member_id"], alice_id, "the server says who sent it");
    assert!(
        key.open(&as_bob, &message_aad(&room.id, alice_id)).is_err(),
        "and what Alice encrypted as Bob does not open as hers"
    );
}

#[tokio::test]
async fn creation_checks_the_encrypted_fields_and_open_rooms_refuse_ciphertext() {
    let app = spawn_app().await;
    let key = RoomKey::generate();
    let check = key.key_check();
    for (body, why) in [
        (
            json!({"owner_name": "a", "encrypted": true, "name": "plain", "key_check": check}),
            "a plaintext name",
        ),
        (
            json!({"owner_name": "a", "encrypted": true}),
            "no key check",
        ),
        (
            json!({"owner_name": "a", "encrypted": true, "key_check": "short"}),
            "a malformed key check",
        ),
        (
            json!({"owner_name": "a", "encrypted": true, "key_check": format!("{}=", &check[..42])}),
            "a key check outside base64url",
        ),
        (
            json!({"owner_name": "a", "encrypted": true, "key_check": check, "name_ciphertext": "x"}),
            "a malformed name",
        ),
        (
            json!({"owner_name": "a", "encrypted": true, "key_check": check,
                   "name_ciphertext": "A".repeat(sealed_max(80) + 4)}),
            "a name longer than 80 characters can be",
        ),
        (
            json!({"owner_name": "a", "key_check": check}),
            "a key check in an open room",
        ),
        (
            json!({"owner_name": "a", "encrypted": false, "name_ciphertext": key.seal("n", NAME_AAD)}),
            "an encrypted name in an open room",
        ),
        (
            json!({"owner_name": "a", "encrypted": "yes"}),
            "not a boolean",
        ),
    ] {
        let res = app.post("/rooms", body.clone()).await;
        assert_eq!(res.status(), 422, "{why}: {body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "invalid_request", "{why}: {err}");
    }
    // An encrypted room needs no name.
    let res = app
        .post(
            "/rooms",
            json!({"owner_name": "a", "encrypted": true, "key_check": check}),
        )
        .await;
    assert_eq!(res.status(), 201);

    // An open room: ciphertext is refused over WebSocket and REST, text taken.
    let room = app.open_room().await;
    assert_eq!(room.body["encrypted"], false);
    assert!(room.body.get("key_check").is_none());
    assert_eq!(app.details(&room.id).await["encrypted"], false);
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    assert_eq!(welcome["encrypted"], false);
    let sealed = key.seal("x", &message_aad(&room.id, "m"));
    bob.send_json(json!({"type": "message", "ciphertext": sealed}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "invalid_frame");
    let token = welcome["resume_token"].as_str().expect("token");
    let res = app
        .http
        .post(app.url(&format!("/rooms/{}/messages", room.id)))
        .bearer_auth(token)
        .json(&json!({"ciphertext": sealed}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 422);
    bob.say("plain is fine here", "c").await;
    assert_eq!(bob.next_of("message").await["text"], "plain is fine here");
}
