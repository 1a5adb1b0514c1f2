//! The owner's controls over WebSocket and REST, on two instances sharing Redis: remove and
//! bar a member, lock the room, move its end, hand it over, and the owner's grace.
//!
//! Every client here talks to an instance directly and says who it is with `X-Forwarded-For`
//! (the cluster trusts 127.0.0.1 as its proxy), so that barring an address bars one client, not
//! every test client on this machine.

use crate::cluster::Cluster;
use crate::helpers::{Frame, Room, TestApp, Ws};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A client at `address`, through instance `app`.
struct Client<'a> {
    app: &'a TestApp,
    address: String,
}

/// The client at 198.51.100.`n`, through `app`.
fn at(app: &TestApp, n: u8) -> Client<'_> {
    Client {
        app,
        address: format!("198.51.100.{n}"),
    }
}

impl Client<'_> {
    async fn ws(&self, room: &str, query: &str) -> Ws {
        let url = format!("{}/rooms/{room}/ws?{query}", self.app.ws_base);
        Ws::with_headers(&url, &[("x-forwarded-for", self.address.as_str())])
            .await
            .expect("connects")
    }

    /// Joins by name and reads the welcome.
    async fn member(&self, room: &str, name: &str) -> (Ws, Value) {
        let mut ws = self.ws(room, &format!("display_name={name}")).await;
        let welcome = ws.next_of("system").await;
        assert_eq!(welcome["event"], "welcome", "{welcome}");
        (ws, welcome)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("x-forwarded-for", &self.address)
            .json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }

    async fn patch(&self, room: &str, token: &str, body: Value) -> reqwest::Response {
        self.app
            .http
            .patch(self.app.url(&format!("/rooms/{room}")))
            .header("x-forwarded-for", &self.address)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }
}

/// Reads until a frame of `kind` (skipping others); panics on close.
async fn next(ws: &mut Ws, kind: &str) -> Value {
    ws.next_of(kind).await
}

/// `frame` from a member who is not the owner is `forbidden` (and its connection stays); then
/// the owner sends it.
async fn only_the_owner(member: &mut Ws, owner: &mut Ws, frame: Value) {
    member.send_json(frame.clone()).await;
    assert_eq!(next(member, "error").await["code"], "forbidden");
    owner.send_json(frame).await;
}

/// The code of the `error` frame and of the close that follow a refused join.
async fn refused(ws: &mut Ws) -> (String, u16) {
    let (code, frames) = ws.closed().await;
    let error = frames
        .iter()
        .find(|f| f["type"] == "error")
        .map(|f| f["code"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (error, code)
}

async fn status_and_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn owner_ws(client: &Client<'_>, room: &Room) -> (Ws, Value) {
    let res = client
        .post(
            &format!("/rooms/{}/join", room.id),
            Some(&room.owner_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "owner join");
    let body: Value = res.json().await.expect("json");
    let ticket = body["ticket"].as_str().expect("ticket").to_owned();
    let mut ws = client.ws(&room.id, &format!("ticket={ticket}")).await;
    let welcome = next(&mut ws, "system").await;
    assert_eq!(welcome["role"], "owner", "{welcome}");
    (ws, welcome)
}

#[tokio::test]
async fn the_owner_removes_a_member_who_then_stays_out_by_address_and_by_name() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let carol = at(&b, 3);
    let dave = at(&a, 4);
    let (mut owner, _) = owner_ws(&alice, &room).await;
    let (mut bob_ws, bob_welcome) = bob.member(&room.id, "bob").await;
    let bob_id = bob_welcome["member_id"].as_str().expect("id").to_owned();
    let (mut carol_ws, carol_welcome) = carol.member(&room.id, "carol").await;
    let carol_id = carol_welcome["member_id"].as_str().expect("id").to_owned();
    let owner_id = room.body["owner_member_id"]
        .as_str()
        .expect("owner id")
        .to_owned();

    // Carol may not; the connection stays.
    carol_ws
        .send_json(json!({"type": "kick", "member_id": bob_id}))
        .await;
    let error = next(&mut carol_ws, "error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    // The owner may not remove itself, nor someone not here.
    owner
        .send_json(json!({"type": "kick", "member_id": owner_id}))
        .await;
    assert_eq!(next(&mut owner, "error").await["code"], "forbidden");
    owner
        .send_json(json!({"type": "kick", "member_id": "nobody"}))
        .await;
    assert_eq!(next(&mut owner, "error").await["code"], "not_found");

    // Removed at once, across instances: 4010 for bob, `kicked` for everyone else.
    owner
        .send_json(json!({"type": "kick", "member_id": bob_id}))
        .await;
    let (code, _) = bob_ws.closed().await;
    assert_eq!(code, 4010, "bob is told he was removed, to stay closed");
    let gone = carol_ws.presence("user_offline").await;
    assert_eq!(gone["member_id"], bob_id.as_str());
    assert_eq!(gone["reason"], "kicked");
    let details = a.details(&room.id).await;
    let online: Vec<&str> = details["online_users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["member_id"].as_str())
        .collect();
    assert!(!online.contains(&bob_id.as_str()), "{details}");

    // Barred for the room's life: bob's address under another name, and bob's name (as
    // names compare) from another address, over WebSocket and REST, on either instance.
    let mut again = bob.ws(&room.id, "display_name=robert").await;
    assert_eq!(refused(&mut again).await, ("banned".into(), 4010));
    let bob_on_a = at(&a, 2);
    let join = bob_on_a
        .post(
            &format!("/rooms/{}/join", room.id),
            None,
            json!({"display_name": "rob"}),
        )
        .await;
    assert_eq!(status_and_code(join).await, (403, "banned".into()));
    let mut lookalike = dave.ws(&room.id, "display_name=BOB").await;
    assert_eq!(refused(&mut lookalike).await, ("banned".into(), 4010));
    // Others still join.
    let (_dave_ws, _) = dave.member(&room.id, "dave").await;

    // Over REST, with the owner token only.
    let path = format!("/rooms/{}/members/{carol_id}/kick", room.id);
    let by_member = carol
        .post(&path, Some(&room.owner_token[..4]), json!({}))
        .await;
    assert_eq!(status_and_code(by_member).await.0, 403);
    let itself = format!("/rooms/{}/members/{owner_id}/kick", room.id);
    let res = alice
        .post(&itself, Some(&room.owner_token), json!({}))
        .await;
    assert_eq!(status_and_code(res).await, (403, "forbidden".into()));
    let nobody = format!("/rooms/{}/members/nobody/kick", room.id);
    let res = alice
        .post(&nobody, Some(&room.owner_token), json!({}))
        .await;
    assert_eq!(status_and_code(res).await, (404, "not_found".into()));
    let res = alice.post(&path, Some(&room.owner_token), json!({})).await;
    assert_eq!(res.status(), 200);
    let (code, _) = carol_ws.closed().await;
    assert_eq!(code, 4010);
    let mut carol_again = carol.ws(&room.id, "display_name=carol").await;
    assert_eq!(refused(&mut carol_again).await, ("banned".into(), 4010));
}

/// A member racing its removal with a resume is never both removed and back: whichever the
/// store runs first, the member ends up out, its new connection closed (4010 or 4401), and
/// barred.
#[tokio::test]
async fn a_kick_racing_a_resume_leaves_the_member_out() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "30")]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let alice = at(&a, 1);
    let (mut owner, _) = owner_ws(&alice, &room).await;
    for round in 0..5 {
        let bob = at(&b, 10 + round);
        let name = format!("bob{round}");
        let (ws, welcome) = bob.member(&room.id, &name).await;
        let id = welcome["member_id"].as_str().expect("id").to_owned();
        let token = welcome["resume_token"].as_str().expect("token").to_owned();
        ws.kill();
        let resume = async {
            let mut ws = bob.ws(&room.id, &format!("resume={token}&last_id=0")).await;
            match ws.recv().await {
                Frame::Json(w) if w["event"] == "welcome" => ws.closed().await.0,
                Frame::Json(other) => {
                    let (code, _) = ws.closed().await;
                    assert_eq!(other["type"], "error", "{other}");
                    code
                }
                Frame::Closed(code) => code,
            }
        };
        let kick = owner.send_json(json!({"type": "kick", "member_id": id}));
        let (code, ()) = tokio::join!(resume, kick);
        assert!(
            [4010, 4401].contains(&code),
            "round {round}: closed with {code}"
        );
        let details = a.details(&room.id).await;
        let still: Vec<&Value> = details["online_users"]
            .as_array()
            .expect("users")
            .iter()
            .filter(|u| u["member_id"] == id.as_str())
            .collect();
        assert!(still.is_empty(), "round {round}: {details}");
        let mut again = bob.ws(&room.id, &format!("display_name={name}")).await;
        assert_eq!(refused(&mut again).await, ("banned".into(), 4010));
    }
}

#[tokio::test]
async fn a_locked_room_refuses_new_members_while_its_members_resume() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let carol = at(&b, 3);
    let (mut owner, welcome) = owner_ws(&alice, &room).await;
    assert_eq!(welcome["locked"], false);
    let (mut bob_ws, bob_welcome) = bob.member(&room.id, "bob").await;
    let token = bob_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();

    let lock = json!({"type": "lock", "locked": true});
    only_the_owner(&mut bob_ws, &mut owner, lock).await;
    for ws in [&mut owner, &mut bob_ws] {
        let updated = next(ws, "room_updated").await;
        assert_eq!(updated["locked"], true, "{updated}");
        assert_eq!(updated["room_id"], room.id.as_str());
    }
    assert_eq!(b.details(&room.id).await["locked"], true);

    let mut carol_ws = carol.ws(&room.id, "display_name=carol").await;
    assert_eq!(refused(&mut carol_ws).await, ("room_locked".into(), 4423));
    let join = carol
        .post(
            &format!("/rooms/{}/join", room.id),
            None,
            json!({"display_name": "carol"}),
        )
        .await;
    assert_eq!(status_and_code(join).await, (403, "room_locked".into()));
    // Bob, already in, comes back.
    bob_ws.kill();
    let mut back = bob.ws(&room.id, &format!("resume={token}&last_id=0")).await;
    let welcome = next(&mut back, "system").await;
    assert_eq!(welcome["event"], "welcome");
    assert_eq!(welcome["locked"], true);

    // Unlocked over REST, with the owner token.
    let res = bob.patch(&room.id, &token, json!({"locked": false})).await;
    assert_eq!(
        status_and_code(res).await.0,
        403,
        "a member's token is not the owner's"
    );
    let res = alice
        .patch(&room.id, &room.owner_token, json!({"locked": false}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["locked"], false);
    assert_eq!(next(&mut back, "room_updated").await["locked"], false);
    carol.member(&room.id, "carol").await;
}

/// Joiners storm a room with a user limit while the owner locks it: both hold exactly. Every
/// admitted joiner was admitted before the lock (its welcome says unlocked), every other one is
/// refused as full or locked, and the room holds exactly the admitted.
#[tokio::test]
async fn a_lock_during_a_join_storm_and_the_user_limit_both_hold_exactly() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a
        .create_room(json!({"owner_name": "alice", "max_users": 12}))
        .await;
    let alice = at(&a, 1);
    let (mut owner, _) = owner_ws(&alice, &room).await;
    let joiners = (0..40u8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let room = &room.id;
        async move {
            let client = at(app, 100 + i);
            let mut ws = client.ws(room, &format!("display_name=j{i}")).await;
            match ws.recv().await {
                Frame::Json(w) if w["event"] == "welcome" => Ok((ws, w)),
                Frame::Json(e) => Err(e["code"].as_str().unwrap_or_default().to_owned()),
                Frame::Closed(code) => Err(format!("closed {code}")),
            }
        }
    });
    let lock = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        owner
            .send_json(json!({"type": "lock", "locked": true}))
            .await;
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(joiners), lock);
    let mut admitted = Vec::new();
    for result in results {
        match result {
            Ok((ws, welcome)) => {
                assert_eq!(
                    welcome["locked"], false,
                    "admitted after the lock: {welcome}"
                );
                admitted.push(ws);
            }
            Err(code) => assert!(
                code == "room_full" || code == "room_locked",
                "refused for {code}"
            ),
        }
    }
    assert!(
        admitted.len() <= 11,
        "{} admitted past the limit",
        admitted.len()
    );
    let details = a.details(&room.id).await;
    assert_eq!(
        details["online_users_count"].as_u64(),
        Some(admitted.len() as u64 + 1),
        "{details}"
    );
    assert_eq!(details["locked"], true);
}

#[tokio::test]
async fn the_owner_moves_the_end_and_everyone_sees_it() {
    let cluster = Cluster::start(2, &[]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a
        .create_room(json!({"owner_name": "alice", "expiry_seconds": 600}))
        .await;
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let (mut bob_ws, _) = bob.member(&room.id, "bob").await;
    let created = protocol::parse_rfc3339(room.body["created_at"].as_str().expect("created"))
        .expect("a time");
    let at = |ms: u64| protocol::rfc3339(ms);

    // Out of bounds: past the most a room may live, sooner than the least, not a time.
    for bad in [
        json!({"expires_at": at(created + 86_400_000 + 60_000)}),
        json!({"expires_at": at(protocol::now_ms())}),
        json!({"expires_at": "tomorrow"}),
        json!({}),
    ] {
        let res = alice.patch(&room.id, &room.owner_token, bad.clone()).await;
        assert_eq!(
            status_and_code(res).await,
            (422, "invalid_request".into()),
            "{bad}"
        );
    }
    let res = alice
        .patch(&room.id, "not-the-token", json!({"locked": true}))
        .await;
    assert_eq!(status_and_code(res).await.0, 403);

    // Later: an hour from now.
    let later = protocol::now_ms() + 3_600_000;
    let res = alice
        .patch(
            &room.id,
            &room.owner_token,
            json!({"expires_at": at(later)}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated = next(&mut bob_ws, "room_updated").await;
    assert_eq!(updated["expires_at"], at(later).as_str());
    let left = updated["expires_in"].as_u64().expect("expires_in");
    assert!((3590..=3600).contains(&left), "{updated}");
    assert_eq!(b.details(&room.id).await["expires_at"], at(later).as_str());

    // Sooner: in two seconds, and then it ends, for everyone, as an expiry.
    let soon = protocol::now_ms() + 2_000;
    let res = alice
        .patch(&room.id, &room.owner_token, json!({"expires_at": at(soon)}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        next(&mut bob_ws, "room_updated").await["expires_at"],
        at(soon).as_str()
    );
    let started = Instant::now();
    bob_ws.closed_with_room_closed(4001, "expired").await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.get(&format!("/rooms/{}", room.id)).await.status(), 404);
}

#[tokio::test]
async fn a_handover_gives_another_member_the_room_and_a_token_of_its_own() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "30")]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let carol = at(&b, 3);
    let (mut owner, _) = owner_ws(&alice, &room).await;
    let (mut bob_ws, bob_welcome) = bob.member(&room.id, "bob").await;
    let bob_id = bob_welcome["member_id"].as_str().expect("id").to_owned();
    let (mut carol_ws, _) = carol.member(&room.id, "carol").await;

    let handover = json!({"type": "handover", "member_id": bob_id});
    only_the_owner(&mut carol_ws, &mut owner, handover).await;
    for ws in [&mut owner, &mut carol_ws] {
        let updated = next(ws, "room_updated").await;
        assert_eq!(updated["owner_member_id"], bob_id.as_str(), "{updated}");
    }
    assert_eq!(
        next(&mut bob_ws, "room_updated").await["owner_member_id"],
        bob_id.as_str()
    );
    let token = next(&mut bob_ws, "owner_token").await;
    let token = token["owner_token"].as_str().expect("a token").to_owned();
    assert_ne!(token, room.owner_token);

    // The old token is nothing; the new one is the owner's; the old owner is a member.
    let res = alice
        .patch(&room.id, &room.owner_token, json!({"locked": true}))
        .await;
    assert_eq!(status_and_code(res).await.0, 403);
    owner
        .send_json(json!({"type": "lock", "locked": true}))
        .await;
    assert_eq!(next(&mut owner, "error").await["code"], "forbidden");
    let res = bob.patch(&room.id, &token, json!({"locked": true})).await;
    assert_eq!(res.status(), 200);
    let details = a.details(&room.id).await;
    assert_eq!(details["owner_member_id"], bob_id.as_str());
    assert_eq!(details["owner_name"], "bob");
    let roles: Vec<(String, String)> = details["online_users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| (u["display_name"].to_string(), u["role"].to_string()))
        .collect();
    assert!(
        roles.contains(&("\"bob\"".into(), "\"owner\"".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("\"alice\"".into(), "\"member\"".into())),
        "{roles:?}"
    );

    // The room now ends with bob: alice leaving ends nothing, bob leaving ends it.
    owner.send_json(json!({"type": "leave"})).await;
    assert_eq!(owner.closed().await.0, 1000);
    assert_eq!(a.details(&room.id).await["room_id"], room.id.as_str());
    bob_ws.send_json(json!({"type": "leave"})).await;
    carol_ws.closed_with_room_closed(4002, "closed").await;
}

/// Made owner while away: the new owner's token comes with its next connection.
#[tokio::test]
async fn a_member_made_owner_while_away_gets_its_token_when_it_returns() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "30")]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a.open_room().await;
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let (mut owner, _) = owner_ws(&alice, &room).await;
    let (bob_ws, bob_welcome) = bob.member(&room.id, "bob").await;
    let bob_id = bob_welcome["member_id"].as_str().expect("id").to_owned();
    let resume = bob_welcome["resume_token"]
        .as_str()
        .expect("token")
        .to_owned();
    bob_ws.kill();
    owner
        .send_json(json!({"type": "handover", "member_id": bob_id}))
        .await;
    assert_eq!(
        next(&mut owner, "room_updated").await["owner_member_id"],
        bob_id.as_str()
    );
    let mut back = bob
        .ws(&room.id, &format!("resume={resume}&last_id=0"))
        .await;
    let welcome = next(&mut back, "system").await;
    assert_eq!(welcome["role"], "owner", "{welcome}");
    let token = next(&mut back, "owner_token").await;
    let token = token["owner_token"].as_str().expect("a token").to_owned();
    let res = bob.patch(&room.id, &token, json!({"locked": true})).await;
    assert_eq!(res.status(), 200);
}

/// The owner's phone locks its screen: the room waits the owner grace, not the presence grace,
/// everyone is told until when, and the owner's return says so. Not back in time: it ends.
#[tokio::test]
async fn an_away_owner_is_waited_for_and_its_return_is_told() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "1")]);
    let (a, b) = (cluster.instance(0), cluster.instance(1));
    let room = a
        .create_room(json!({"owner_name": "alice", "owner_grace_seconds": 4}))
        .await;
    assert_eq!(room.body["owner_grace_seconds"], 4);
    let alice = at(&a, 1);
    let bob = at(&b, 2);
    let (owner, _) = owner_ws(&alice, &room).await;
    let (mut bob_ws, _) = bob.member(&room.id, "bob").await;

    let gone = Instant::now();
    owner.kill();
    let away = next(&mut bob_ws, "room_updated").await;
    let until = away["owner_away_until"].as_str().expect("away until");
    let until = protocol::parse_rfc3339(until).expect("a time");
    let at = protocol::parse_rfc3339(away["timestamp"].as_str().expect("ts")).expect("a time");
    assert!(
        (2_000..=3_500).contains(&until.saturating_sub(at)),
        "the rest of the owner grace: {away}"
    );
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "not before the presence grace"
    );
    let details = b.details(&room.id).await;
    assert_eq!(details["owner_away_until"], away["owner_away_until"]);

    let (owner, welcome) = owner_ws(&alice, &room).await;
    assert!(welcome["owner_away_until"].is_null(), "{welcome}");
    let back = next(&mut bob_ws, "room_updated").await;
    assert!(back["owner_away_until"].is_null(), "{back}");
    assert!(b.details(&room.id).await["owner_away_until"].is_null());

    // Away again, for good: the room ends at the owner grace, as owner_offline.
    let gone = Instant::now();
    owner.kill();
    assert!(next(&mut bob_ws, "room_updated").await["owner_away_until"].is_string());
    bob_ws.closed_with_room_closed(4003, "owner_offline").await;
    let waited = gone.elapsed();
    assert!(
        (Duration::from_millis(3_500)..Duration::from_millis(7_000)).contains(&waited),
        "{waited:?}"
    );
}
