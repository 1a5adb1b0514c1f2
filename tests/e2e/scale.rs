//! The scaled topology: Redis, three instances, the shipped nginx. Members on different
//! instances must not be able to tell they are not on one server.

use crate::cluster::Cluster;
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Opens a connection to `app` and reports how it was answered: "welcome" or the close code.
async fn try_join(app: TestApp, room: String, name: String) -> Result<Ws, u16> {
    let mut ws = app.ws(&room, &format!("display_name={name}")).await;
    match ws.recv().await {
        Frame::Json(v) if v["event"] == "welcome" => Ok(ws),
        Frame::Json(_) => Err(ws.closed().await.0),
        Frame::Closed(code) => Err(code),
    }
}

#[tokio::test]
async fn members_on_three_instances_get_every_message_once_and_in_order() {
    let cluster = Cluster::start(
        3,
        &[
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "1000"),
            ("EPHEMERA_MESSAGE_BURST", "1000"),
        ],
    );
    let room = cluster.app().open_room().await;
    let mut clients = cluster.member_on_each(&room.id).await;
    clients.push(cluster.app().member(&room.id, "via-nginx").await.0);
    let per_client = 20;
    for round in 0..per_client {
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.say(&format!("{i}:{round}"), &format!("{i}:{round}"))
                .await;
        }
    }
    let total = per_client * clients.len();
    let mut expected_texts = BTreeSet::new();
    for i in 0..clients.len() {
        for round in 0..per_client {
            expected_texts.insert(format!("{i}:{round}"));
        }
    }
    for ws in &mut clients {
        let mut ids = Vec::new();
        let mut texts = BTreeSet::new();
        while ids.len() < total {
            let m = ws.next_of("message").await;
            ids.push(m["id"].as_u64().expect("id"));
            texts.insert(m["text"].as_str().expect("text").to_owned());
        }
        assert_eq!(
            ids,
            (1..=total as u64).collect::<Vec<_>>(),
            "every message once, in order"
        );
        assert_eq!(texts, expected_texts);
        let extra = ws.drain(Duration::from_millis(300)).await;
        assert!(
            extra.iter().all(|f| f["type"] != "message"),
            "no duplicates: {extra:?}"
        );
    }
}

#[tokio::test]
async fn presence_is_the_same_from_every_instance() {
    let cluster = Cluster::start(3, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "30")]);
    let room = cluster.app().open_room().await;
    let (mut a, _) = cluster.instance(0).owner(&room).await;
    let (mut b, _) = cluster.instance(1).member(&room.id, "bob").await;
    assert_eq!(a.presence("user_online").await["display_name"], "bob");
    let (mut c, welcome) = cluster.instance(2).member(&room.id, "carol").await;
    assert_eq!(welcome["online_count"], 3);
    assert_eq!(a.presence("user_online").await["display_name"], "carol");
    assert_eq!(b.presence("user_online").await["display_name"], "carol");
    let mut lists = Vec::new();
    for i in 0..3 {
        let details: Value = cluster.instance(i).details(&room.id).await;
        assert_eq!(details["online_users_count"], 3);
        lists.push(details["online_users"].clone());
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
    c.send_json(json!({"type": "leave"})).await;
    assert_eq!(c.closed().await.0, 1000);
    for ws in [&mut a, &mut b] {
        let offline = ws.presence("user_offline").await;
        assert_eq!(
            (
                offline["display_name"].clone(),
                offline["online_count"].clone()
            ),
            (json!("carol"), json!(2))
        );
    }
}

#[tokio::test]
async fn a_join_storm_across_instances_admits_exactly_max_users() {
    let cluster = Cluster::start(3, &[]);
    let room = cluster
        .app()
        .create_room(json!({"owner_name": "alice", "max_users": 5}))
        .await;
    let (_owner, _) = cluster.instance(0).owner(&room).await;
    let joins = (0..36).map(|i| {
        tokio::spawn(try_join(
            cluster.instance(i % 3),
            room.id.clone(),
            format!("u{i}"),
        ))
    });
    let results: Vec<Result<Ws, u16>> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let full = results.iter().filter(|r| matches!(r, Err(4403))).count();
    assert_eq!((admitted, full), (4, 32), "the owner holds the fifth slot");
    let details: Value = cluster.instance(1).details(&room.id).await;
    assert_eq!(details["online_users_count"], 5);
    assert_eq!(details["is_full"], true);
}

#[tokio::test]
async fn a_same_name_race_across_instances_admits_exactly_one() {
    let cluster = Cluster::start(3, &[]);
    let room = cluster.app().open_room().await;
    let joins = (0..15).map(|i| {
        tokio::spawn(try_join(
            cluster.instance(i % 3),
            room.id.clone(),
            if i % 2 == 0 {
                "Sam".into()
            } else {
                "sAM".into()
            },
        ))
    });
    let results: Vec<Result<Ws, u16>> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let taken = results.iter().filter(|r| matches!(r, Err(4409))).count();
    assert_eq!((admitted, taken), (1, 14));
}

#[tokio::test]
async fn owner_offline_and_delete_reach_members_on_every_instance() {
    let cluster = Cluster::start(3, &[]);
    let room = cluster
        .app()
        .create_room(json!({"owner_name": "alice", "owner_grace_seconds": 1}))
        .await;
    let (owner, _) = cluster.instance(0).owner(&room).await;
    let (mut b, _) = cluster.instance(1).member(&room.id, "bob").await;
    let (mut c, _) = cluster.instance(2).member(&room.id, "carol").await;
    owner.kill();
    for ws in [&mut b, &mut c] {
        ws.closed_with_room_closed(4003, "owner_offline").await;
    }

    let room = cluster.app().open_room().await;
    let mut members = cluster.member_on_each(&room.id).await;
    let res = cluster
        .app()
        .http
        .delete(cluster.app().url(&format!("/rooms/{}", room.id)))
        .bearer_auth(&room.owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    for ws in &mut members {
        assert_eq!(ws.closed().await.0, 4002);
    }
}

#[tokio::test]
async fn expiry_closes_every_socket_everywhere_within_a_second_and_leaves_no_key() {
    let cluster = Cluster::start(3, &[]);
    let room = cluster
        .app()
        .create_room(json!({"owner_name": "alice", "expiry_seconds": 2}))
        .await;
    let expires_at =
        protocol::parse_rfc3339(room.body["expires_at"].as_str().expect("ts")).expect("ts");
    let mut members = Vec::new();
    for i in 0..3 {
        let (mut ws, _) = cluster.instance(i).member(&room.id, &format!("m{i}")).await;
        ws.say("something to delete", "c").await;
        members.push(ws);
    }
    for ws in &mut members {
        ws.closed_with_room_closed(4001, "expired").await;
        let now = protocol::now_ms();
        assert!(
            now >= expires_at && now - expires_at < 1000,
            "closed {} ms after expiry",
            now as i64 - expires_at as i64
        );
    }
    let keys = cluster
        .redis()
        .cli(&["--scan", "--pattern", &format!("*{}*", room.id)]);
    assert_eq!(keys.trim(), "", "no key of the room is left");
    assert_eq!(
        cluster
            .redis()
            .cli(&["zscore", "eph:deadlines", &room.id])
            .trim(),
        ""
    );
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().ok())
        .build()
        .expect("client")
}

#[tokio::test]
async fn nginx_proxies_websockets_forwards_client_ips_and_logs_no_query_strings() {
    let cluster = Cluster::start(3, &[("EPHEMERA_ROOM_CREATE_PER_MINUTE", "2")]);
    let app = cluster.app();
    let create = |ip: &'static str, spoof: &'static str| {
        let url = app.url("/rooms");
        async move {
            client_from(ip)
                .post(url)
                .header("x-forwarded-for", spoof)
                .json(&json!({"owner_name": "a"}))
                .send()
                .await
                .expect("req")
                .status()
                .as_u16()
        }
    };
    assert_eq!(create("127.0.0.2", "9.9.9.1").await, 201);
    assert_eq!(create("127.0.0.2", "9.9.9.2").await, 201);
    assert_eq!(
        create("127.0.0.2", "9.9.9.3").await,
        429,
        "a spoofed X-Forwarded-For buys no new budget"
    );
    assert_eq!(
        create("127.0.0.3", "9.9.9.3").await,
        201,
        "the real client address has its own budget"
    );

    let room = app.open_room().await;
    let ticket = app.ticket(&room.id, json!({"display_name": "bob"})).await;
    let res: Value = app
        .post(
            &format!("/rooms/{}/join", room.id),
            json!({"display_name": "carol"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        res["ws_url"].as_str().expect("url").split('?').next(),
        Some(format!("ws://127.0.0.1:{}/rooms/{}/ws", cluster.nginx.port, room.id).as_str())
    );
    let mut bob = app.ws(&room.id, &format!("ticket={ticket}")).await;
    assert_eq!(bob.next_of("system").await["event"], "welcome");
    bob.say("through nginx", "c").await;
    assert_eq!(bob.next_of("message").await["text"], "through nginx");
    // nginx logs a WebSocket when it ends.
    bob.send_json(json!({"type": "leave"})).await;
    assert_eq!(bob.closed().await.0, 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cluster.nginx.access_log().contains("/ws\"") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = cluster.nginx.access_log();
    assert!(log.contains("\"GET /rooms/~/ws\" 101"), "{log}");
    assert!(
        !log.contains("ticket=") && !log.contains(&ticket) && !log.contains(&room.id),
        "query strings and room ids stay out of the log:\n{log}"
    );
}

#[tokio::test]
async fn readiness_follows_the_redis_connection() {
    let mut cluster = Cluster::start(1, &[]);
    let app = cluster.instance(0);
    assert_eq!(app.get("/readyz").await.status(), 200);
    cluster.redis.as_mut().expect("redis").kill();
    app.await_readyz(503, tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
    let res = app.post("/rooms", json!({"owner_name": "a"})).await;
    assert_eq!(
        res.status(),
        503,
        "REST answers 503 while the store is down"
    );
    assert_eq!(
        res.json::<Value>().await.expect("json")["code"],
        "unavailable"
    );
    cluster.redis.as_mut().expect("redis").restart();
    app.await_readyz(200, tokio::time::Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!(
        app.post("/rooms", json!({"owner_name": "a"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn three_instances_on_a_redis_cluster_spread_rooms_over_every_shard() {
    let redis = store::testing::RedisCluster::start();
    let cluster = Cluster::on(&redis.url(), 3, &[]);
    let app = cluster.app();
    // Room ids are random, so rooms are made until every shard holds one (a fixed dozen missed
    // a shard about one run in forty).
    let holds_a_room = |node: &store::testing::RedisServer| {
        let metas = node.cli(&["--scan", "--pattern", "eph:*:meta"]);
        !metas.trim().is_empty()
    };
    let mut rooms = Vec::new();
    while !redis.nodes.iter().all(holds_a_room) {
        assert!(rooms.len() < 100, "rooms land on every shard");
        rooms.push(app.open_room().await);
    }
    for (n, room) in rooms.iter().enumerate() {
        let (mut a, _) = cluster.instance(n % 3).member(&room.id, "a").await;
        let (mut b, _) = cluster.instance((n + 1) % 3).member(&room.id, "b").await;
        assert_eq!(a.presence("user_online").await["display_name"], "b");
        a.say("hello", "1").await;
        b.say("hi", "2").await;
        for ws in [&mut a, &mut b] {
            let first = ws.next_of("message").await;
            let second = ws.next_of("message").await;
            assert_eq!(
                (first["id"].clone(), second["id"].clone()),
                (json!(1), json!(2))
            );
        }
    }
    // Deadlines and destruction work on every shard too.
    let (mut member, _) = cluster.instance(2).member(&rooms[0].id, "c").await;
    let res = app
        .http
        .delete(app.url(&format!("/rooms/{}", rooms[0].id)))
        .bearer_auth(&rooms[0].owner_token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200);
    assert_eq!(member.closed().await.0, 4002);
    let short = app
        .create_room(json!({"owner_name": "o", "expiry_seconds": 1}))
        .await;
    let (mut late, _) = cluster.instance(1).member(&short.id, "l").await;
    assert_eq!(late.closed().await.0, 4001);
    for node in &redis.nodes {
        let left = node.cli(&["--scan", "--pattern", &format!("*{}*", short.id)]);
        assert_eq!(left.trim(), "", "no key of the expired room is left");
    }
}

#[test]
fn the_shipped_nginx_conf_passes_nginx_t_unmodified() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../nginx.conf");
    let out = std::process::Command::new(crate::cluster::nginx_binary())
        .args(["-t", "-c", conf])
        .output()
        .expect("nginx runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("test is successful"),
        "{said}"
    );
}

/// Makes a CA and a server certificate for 127.0.0.1 with openssl; returns the directory.
fn make_certificates() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ephemera-tls-{}-{}",
        std::process::id(),
        store::testing::free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=ephemera-test-ca",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    ];
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

#[tokio::test]
async fn rediss_works_with_a_private_ca_given_by_ssl_cert_file() {
    let certs = make_certificates();
    let path = |name: &str| certs.join(name).display().to_string();
    let port = store::testing::free_port();
    let tls_port = port.to_string();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let _redis = store::testing::RedisServer::start_with(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let server = crate::process::Process::start(&[
        ("EPHEMERA_REDIS_URL", url.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ]);
    let app = TestApp::at(server.port);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.say("over TLS", "c").await;
    assert_eq!(bob.next_of("message").await["text"], "over TLS");
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test]
async fn an_acl_user_limited_to_ephemeras_keys_and_channels_is_enough() {
    let redis = store::testing::RedisServer::start();
    let set = redis.cli(&[
        "acl",
        "setuser",
        "ephemera",
        "on",
        ">s3cret",
        "~eph:*",
        "&eph:*",
        "+@all",
        "-@dangerous",
    ]);
    assert_eq!(set.trim(), "OK");
    redis.cli(&["acl", "setuser", "default", "off"]);
    let url = format!("redis://ephemera:s3cret@127.0.0.1:{}", redis.port);
    let server = crate::process::Process::start(&[("EPHEMERA_REDIS_URL", url.as_str())]);
    let app = TestApp::at(server.port);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let room = app.open_room().await;
    let (mut bob, _) = app.member(&room.id, "bob").await;
    bob.say("least privilege", "c").await;
    assert_eq!(bob.next_of("message").await["text"], "least privilege");
}

/// Every way into a room through the real service (a join by name, an owner's second claim, a
/// lone member's resume by ticket, a REST post, a leave, a ticket never redeemed, the owner's
/// removal of a member and its lock), then each way it ends: once it has, a SCAN of Redis finds
/// nothing of it, and the schedule does not name it.
#[tokio::test]
async fn every_way_in_then_every_ending_leaves_no_key_in_redis() {
    let cluster = Cluster::start(1, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "1")]);
    let app = cluster.app();
    for ending in ["expiry", "destroy", "owner offline"] {
        let room = app
            .create_room(
                json!({"owner_name": "alice", "expiry_seconds": 4, "owner_grace_seconds": 1}),
            )
            .await;
        let (first, _) = app.owner(&room).await;
        // The owner's second claim; kept open until the room ends unless its absence ends it.
        let mut owner = Some(app.owner(&room).await.0);
        drop(first);
        let (mut dave, dave_welcome) = app.member(&room.id, "dave").await;
        let (bob, welcome) = app.member(&room.id, "bob").await;
        let token = welcome["resume_token"].as_str().expect("token").to_owned();
        let res = app
            .http
            .post(app.url(&format!("/rooms/{}/messages", room.id)))
            .bearer_auth(&token)
            .json(&json!({"text": "secret text"}))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 201);
        let _unused = app.ticket(&room.id, json!({"display_name": "carol"})).await;
        // The owner removes dave (a ban) and locks the room.
        let owner_ws = owner.as_mut().expect("the owner");
        let dave_id = dave_welcome["member_id"].as_str().expect("id");
        owner_ws
            .send_json(json!({"type": "kick", "member_id": dave_id}))
            .await;
        assert_eq!(dave.closed().await.0, 4010);
        owner_ws
            .send_json(json!({"type": "lock", "locked": true}))
            .await;
        assert_eq!(owner_ws.next_of("room_updated").await["locked"], true);
        bob.kill();
        let ticket: Value = app
            .post_as(&format!("/rooms/{}/resume", room.id), &token)
            .await
            .json()
            .await
            .expect("json");
        let ticket = ticket["ticket"].as_str().expect("ticket");
        let mut bob = app
            .ws(&room.id, &format!("resume_ticket={ticket}&last_id=0"))
            .await;
        assert_eq!(bob.next_of("system").await["event"], "welcome");
        let res = app
            .post_as(&format!("/rooms/{}/leave", room.id), &token)
            .await;
        assert_eq!(res.status(), 200);
        match ending {
            "expiry" => {}
            "destroy" => app.close_room(&room).await,
            _ => owner.take().expect("the owner").kill(),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while app.get(&format!("/rooms/{}", room.id)).await.status() != 404 {
            assert!(Instant::now() < deadline, "{ending}: the room ends");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if ending == "owner offline" {
            assert!(
                protocol::now_ms()
                    < protocol::parse_rfc3339(room.body["expires_at"].as_str().expect("ts"))
                        .expect("ts"),
                "the owner's absence ended it, not its time"
            );
        }
        // Past its time too, so keys that expire with the room would be gone anyway.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let keys = cluster
            .redis()
            .cli(&["--scan", "--pattern", &format!("*{}*", room.id)]);
        assert_eq!(keys.trim(), "", "{ending}: no key of the room is left");
        assert_eq!(
            cluster
                .redis()
                .cli(&["zscore", "eph:deadlines", &room.id])
                .trim(),
            "",
            "{ending}"
        );
        drop(owner);
    }
}
