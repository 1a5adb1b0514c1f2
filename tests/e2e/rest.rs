//! The REST contract: shapes, defaults, validation, credentials.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn create_room_returns_the_contract_and_urls_from_the_public_url() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/rooms/"))
        .header("host", "evil.example")
        .json(&json!({"owner_name": " alice ", "name": "Standup", "password": "s3cret",
                      "expiry_seconds": 600, "max_users": 10, "members_can_destroy": true, "extra": 1}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let id = body["room_id"].as_str().expect("id");
    assert_eq!(id.len(), 21);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
    assert_eq!(body["ws_url"], format!("ws://chat.test/rooms/{id}/ws"));
    assert_eq!(body["join_url"], format!("http://chat.test/r/{id}"));
    assert_eq!(body["owner_name"], "alice");
    assert_eq!(body["name"], "Standup");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["max_users"], 10);
    assert_eq!(body["has_password"], true);
    assert_eq!(body["destroy_on_owner_offline"], true);
    assert_eq!(body["members_can_destroy"], true);
    assert!(body["owner_token"].as_str().expect("token").len() >= 22);
    assert!(body["created_at"].as_str().expect("ts").ends_with('Z'));
    assert!(body.get("password").is_none());
}

#[tokio::test]
async fn defaults_apply_when_only_owner_name_is_given() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    assert_eq!(room.body["expires_in"], 3600);
    assert_eq!(room.body["max_users"], 20);
    assert_eq!(room.body["has_password"], false);
    assert_eq!(room.body["name"], Value::Null);
    assert_eq!(room.body["members_can_destroy"], false);
}

#[tokio::test]
async fn invalid_bodies_get_422_naming_the_field_and_broken_json_400() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "owner_name"),
        (json!({"owner_name": 5}), "owner_name"),
        (json!({"owner_name": ""}), "owner_name"),
        (json!({"owner_name": "x".repeat(33)}), "owner_name"),
        (json!({"owner_name": "a\u{1}b"}), "owner_name"),
        (json!({"owner_name": "a", "name": "n".repeat(81)}), "name"),
        (
            json!({"owner_name": "a", "password": "p".repeat(129)}),
            "password",
        ),
        (
            json!({"owner_name": "a", "expiry_seconds": 0}),
            "expiry_seconds",
        ),
        (
            json!({"owner_name": "a", "expiry_seconds": 86_401}),
            "expiry_seconds",
        ),
        (
            json!({"owner_name": "a", "expiry_seconds": -5}),
            "expiry_seconds",
        ),
        (
            json!({"owner_name": "a", "expiry_seconds": "soon"}),
            "expiry_seconds",
        ),
        (json!({"owner_name": "a", "max_users": 0}), "max_users"),
        (json!({"owner_name": "a", "max_users": 1001}), "max_users"),
        (
            json!({"owner_name": "a", "destroy_on_owner_offline": "yes"}),
            "destroy_on_owner_offline",
        ),
        (json!([1, 2]), "JSON object"),
        (json!(["alice"]), "JSON object"),
        (json!("alice"), "JSON object"),
    ];
    for (body, field) in cases {
        let res = app.post("/rooms", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "invalid_request", "{body}");
        assert!(
            err["detail"].as_str().expect("detail").contains(field),
            "{body} -> {err}"
        );
    }
    for raw in [
        "{\"owner_name\": ",
        "not json",
        "{\"owner_name\": \"a\",}",
        "{\"owner_name\": 5,",
        "{\"owner_name\": \"a\"} trailing",
    ] {
        let res = app
            .http
            .post(app.url("/rooms"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 400, "{raw}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "invalid_json");
    }
}

#[tokio::test]
async fn details_of_open_and_password_rooms() {
    let app = spawn_app().await;
    let open = app.open_room().await;
    let res = app.get(&format!("/rooms/{}", open.id)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    for key in [
        "room_id",
        "name",
        "owner_name",
        "created_at",
        "expires_at",
        "expires_in",
        "max_users",
        "online_users_count",
        "online_users",
        "has_password",
        "is_full",
        "destroy_on_owner_offline",
        "members_can_destroy",
    ] {
        assert!(body.get(key).is_some(), "missing {key}");
    }
    assert_eq!(body["online_users_count"], 0);

    let locked = app
        .create_room(json!({"owner_name": "alice", "password": "s3cret"}))
        .await;
    let path = format!("/rooms/{}", locked.id);
    let res = app.get(&path).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "password_required"
    );
    let res = app
        .http
        .get(app.url(&path))
        .header("x-room-password", "nope")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "invalid_password"
    );
    let res = app
        .http
        .get(app.url(&path))
        .header("x-room-password", "s3cret")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(app.url(&path))
        .bearer_auth(&locked.owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(app.url(&path))
        .bearer_auth("forged")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    let res = app.get(&format!("{path}?password=s3cret")).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "password_in_url"
    );

    let res = app.get("/rooms/V1StGXR8_Z5jdHi6B-myT").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "room_not_found"
    );
}

#[tokio::test]
async fn join_checks_password_name_and_capacity() {
    let app = spawn_app().await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "pw", "max_users": 2}))
        .await;
    let join = format!("/rooms/{}/join", room.id);
    let res = app.post(&join, json!({"display_name": "bob"})).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "password_required"
    );
    let res = app
        .post(&join, json!({"display_name": "bob", "password": "no"}))
        .await;
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "invalid_password"
    );
    let res = app
        .post(&join, json!({"display_name": "ALICE", "password": "pw"}))
        .await;
    assert_eq!(
        res.status(),
        409,
        "the owner's name is reserved, case-insensitively"
    );
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "name_taken"
    );
    let res = app.post(&join, json!({"password": "pw"})).await;
    assert_eq!(res.status(), 422);

    let res = app
        .post(&join, json!({"display_name": "bob", "password": "pw"}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let ticket = body["ticket"].as_str().expect("ticket");
    assert_eq!(body["role"], "member");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(
        body["ws_url"],
        format!("ws://chat.test/rooms/{}/ws?ticket={ticket}", room.id)
    );
    let mut bob = app.ws(&room.id, &format!("ticket={ticket}")).await;
    assert_eq!(bob.next_of("system").await["display_name"], "bob");

    // max_users 2: the owner's slot is reserved, so bob filled the room.
    let res = app
        .post(&join, json!({"display_name": "carol", "password": "pw"}))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "room_full"
    );
    let res = app
        .post(&join, json!({"display_name": "Bob", "password": "pw"}))
        .await;
    assert_eq!(res.status(), 409);

    // The owner still gets in.
    let (_alice, welcome) = app.owner(&room).await;
    assert_eq!(welcome["online_count"], 2);
}

#[tokio::test]
async fn history_pages_forward_and_reports_last_id() {
    let app = spawn_with(|s| s.history_limit = 5).await;
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    let mut broadcast = Vec::new();
    for i in 1..=7 {
        bob.say(&format!("m{i}"), &format!("c{i}")).await;
        broadcast.push(bob.next_of("message").await);
        assert_eq!(broadcast[i - 1]["id"], i);
    }
    let all: Value = app
        .get(&format!("/rooms/{}/messages", room.id))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["last_id"], 7);
    let ids: Vec<u64> = all["messages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![3, 4, 5, 6, 7], "only the history limit is kept");
    let page: Value = app
        .get(&format!("/rooms/{}/messages?after=4&limit=2", room.id))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<u64> = page["messages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![5, 6]);
    assert_eq!(page["messages"][0], broadcast[4], "kept as broadcast");
    let clamped: Value = app
        .get(&format!("/rooms/{}/messages?limit=1000", room.id))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(clamped["messages"].as_array().expect("array").len(), 5);
    let res = app
        .get(&format!(
            "/rooms/{}/messages?limit=9223372036854775808",
            room.id
        ))
        .await;
    assert_eq!(res.status(), 422, "beyond the documented int64");
    let err: Value = res.json().await.expect("json");
    assert_eq!(
        err["detail"],
        "limit must be between -9223372036854775808 and 9223372036854775807"
    );
    for bad in ["limit=0", "limit=-1", "after=-2", "after=x", "after=1e3"] {
        let res = app.get(&format!("/rooms/{}/messages?{bad}", room.id)).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn rest_post_reaches_sockets_and_validates() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (mut bob, welcome) = app.member(&room.id, "bob").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let path = app.url(&format!("/rooms/{}/messages", room.id));
    let res = app
        .http
        .post(&path)
        .bearer_auth(&token)
        .json(&json!({"text": " hi ", "client_id": "bot-1"}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 201);
    let posted: Value = res.json().await.expect("json");
    assert_eq!(posted["type"], "message");
    assert_eq!(posted["id"], 1);
    assert_eq!(posted["text"], "hi");
    let seen = bob.next_of("message").await;
    assert_eq!(seen, posted);

    for body in [
        json!({"text": "   "}),
        json!({"text": "x".repeat(2001)}),
        json!({"text": 1}),
    ] {
        let res = app
            .http
            .post(&path)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("req");
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["code"],
            "invalid_request"
        );
    }
    let res = app
        .http
        .post(&path)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(&path)
        .bearer_auth("forged")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(&path)
        .bearer_auth(&room.owner_token)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .expect("req");
    assert_eq!(
        res.status(),
        201,
        "the owner posts with its token, joined or not"
    );
}

#[tokio::test]
async fn close_needs_the_owner_or_a_member_when_allowed() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (_bob, welcome) = app.member(&room.id, "bob").await;
    let member_token = welcome["resume_token"].as_str().expect("token").to_owned();
    let path = app.url(&format!("/rooms/{}", room.id));
    let res = app.http.delete(&path).send().await.expect("req");
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "unauthorized"
    );
    let res = app
        .http
        .delete(&path)
        .bearer_auth("forged")
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .delete(&path)
        .bearer_auth(&member_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "forbidden"
    );
    let res = app
        .http
        .delete(&path)
        .bearer_auth(&room.owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("json")["message"],
        "Room closed successfully"
    );
    assert_eq!(
        app.http
            .delete(&path)
            .bearer_auth(&room.owner_token)
            .send()
            .await
            .expect("req")
            .status(),
        404
    );

    let shared = app
        .create_room(json!({"owner_name": "alice", "members_can_destroy": true}))
        .await;
    let (_carol, welcome) = app.member(&shared.id, "carol").await;
    let token = welcome["resume_token"].as_str().expect("token");
    let res = app
        .http
        .post(app.url(&format!("/rooms/{}/close", shared.id)))
        .bearer_auth(token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get(&format!("/rooms/{}", shared.id)).await.status(),
        404
    );
}

#[tokio::test]
async fn no_answer_about_a_room_may_be_cached() {
    let app = spawn_app().await;
    let room = app.open_room().await;
    let (_owner, welcome) = app.owner(&room).await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    let id = &room.id;
    let asked = [
        app.get(&format!("/rooms/{id}")).await,
        app.get(&format!("/rooms/{id}/messages")).await,
        app.get("/rooms/AAAAAAAAAAAAAAAAAAAAA").await,
        app.post(&format!("/rooms/{id}/join"), json!({"display_name": "bob"}))
            .await,
        app.http
            .get(app.url(&format!("/rooms/{id}/messages?password=x")))
            .send()
            .await
            .expect("request"),
        app.http
            .post(app.url(&format!("/rooms/{id}/messages")))
            .bearer_auth(&token)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .expect("request"),
    ];
    for res in asked {
        assert_eq!(
            res.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{} {}",
            res.url().path(),
            res.status()
        );
    }
}

#[tokio::test]
async fn bodies_must_be_sent_as_json() {
    let app = spawn_app().await;
    let body = r#"{"owner_name": "alice"}"#;
    for kind in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = app.http.post(app.url("/rooms")).body(body);
        if let Some(kind) = kind {
            req = req.header("content-type", kind);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), 415, "{kind:?}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "unsupported_media_type");
    }
    let res = app
        .http
        .post(app.url("/rooms"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn an_id_of_another_shape_is_no_room_on_any_route() {
    let app = spawn_app().await;
    for path in [
        "/rooms/short",
        "/rooms/short/messages",
        "/rooms/AAAAAAAAAAAAAAAAAAAAAA",
        "/rooms/AAAAAAAAAAAAAAAAAAAA!/messages",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "room_not_found", "{path}");
    }
    let res = app
        .post("/rooms/short/join", json!({"display_name": "bob"}))
        .await;
    assert_eq!(res.status(), 404);
    // The WebSocket path refuses before any upgrade.
    let res = app
        .http
        .get(app.url("/rooms/not-a-room/ws?display_name=bob"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_password_may_be_any_text() {
    let app = spawn_app().await;
    let room = app
        .create_room(json!({"owner_name": "alice", "password": "pässwörd ✓"}))
        .await;
    let header = |v: &[u8]| reqwest::header::HeaderValue::from_bytes(v).expect("header");
    let res = app
        .http
        .get(app.url(&format!("/rooms/{}", room.id)))
        .header("x-room-password", header("pässwörd ✓".as_bytes()))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200, "a UTF-8 password is read as sent");
    let res = app
        .http
        .get(app.url(&format!("/rooms/{}", room.id)))
        .header("x-room-password", header(b"p\xe4ss"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        422,
        "bytes that are not UTF-8 are refused, not counted"
    );
}

#[tokio::test]
async fn names_with_invisible_or_direction_changing_characters_are_refused() {
    let app = spawn_app().await;
    for name in [
        "Ali\u{200b}ce",
        "Ali\u{ad}ce",
        "\u{202e}ecila",
        "al\u{2066}ice",
    ] {
        let res = app.post("/rooms", json!({"owner_name": name})).await;
        assert_eq!(res.status(), 422, "{name:?}");
        let err: Value = res.json().await.expect("json");
        assert!(
            err["detail"]
                .as_str()
                .is_some_and(|d| d.contains("invisible or direction-changing")),
            "{err}"
        );
    }
    let room = app.open_room().await;
    let res = app
        .post(
            &format!("/rooms/{}/join", room.id),
            json!({"display_name": "\u{202e}ecila"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .post(
            &format!("/rooms/{}/join", room.id),
            json!({"display_name": "\u{430}lice"}),
        )
        .await;
    assert_eq!(
        res.status(),
        409,
        "a lookalike of the owner's name is taken"
    );
}
