//! Faults with real processes: instances killed or drained, Redis connections cut, Redis down.
//! Whatever happens, a member never sees a gap or a duplicate, and presence tells the truth.

use crate::client::Resilient;
use crate::cluster::Cluster;
use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::testing::RedisServer;
use tokio::time::Instant;

const FAST: [(&str, &str); 2] = [
    ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "1000"),
    ("EPHEMERA_MESSAGE_BURST", "1000"),
];

/// Sends `n` messages as `sender` and waits until everyone in `all` has them.
async fn chat(sender: &mut Resilient, others: &mut [&mut Resilient], n: usize) -> u64 {
    for i in 0..n {
        assert!(
            sender.say(&format!("{} {i}", sender.name)).await,
            "{} is connected",
            sender.name
        );
    }
    let target = sender.last_id + n as u64;
    assert!(
        sender.until_id(target, Duration::from_secs(10)).await,
        "{} got its echoes",
        sender.name
    );
    for other in others.iter_mut() {
        assert!(
            other.until_id(target, Duration::from_secs(10)).await,
            "{} got message {target}",
            other.name
        );
    }
    target
}

fn assert_clean(clients: &[&Resilient]) {
    for c in clients {
        assert!(
            c.violations.is_empty(),
            "{}: ids not contiguous: {:?}",
            c.name,
            c.violations
        );
        assert_eq!(c.unrecovered, 0, "{}: history lost", c.name);
    }
}

/// Where FAILURES.md says clients see nothing: not one socket closed, nobody resumed.
fn assert_unseen(clients: &[&Resilient]) {
    for c in clients {
        assert_eq!(
            (c.closes.as_slice(), c.resumes),
            (&[][..], 0),
            "{}: {:?}",
            c.name,
            c.trace
        );
    }
}

#[tokio::test]
async fn a_killed_instances_members_resume_elsewhere_and_only_the_absent_go_offline() {
    let mut cluster = Cluster::start(3, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "3")]);
    let via = cluster.app();
    let room = via.open_room().await;
    let mut a = Resilient::join(&cluster.instance(0), &via, &room.id, "a").await;
    let mut b = Resilient::join(&cluster.instance(1), &via, &room.id, "b").await;
    let mut c = Resilient::join(&cluster.instance(2), &via, &room.id, "c").await;
    let mut d = Resilient::join(&cluster.instance(2), &via, &room.id, "d").await;
    chat(&mut b, &mut [&mut a, &mut c, &mut d], 3).await;

    cluster.instances[0].kill();
    a.drop_connection();
    let last = chat(&mut b, &mut [&mut c, &mut d], 5).await;
    assert!(
        a.resume(Duration::from_secs(10)).await,
        "a resumes through nginx"
    );
    assert_eq!(
        a.last_id, last,
        "the welcome replays exactly what was missed"
    );
    chat(&mut b, &mut [&mut a, &mut c, &mut d], 2).await;

    // Instance 2 dies: c comes back, d does not.
    let killed = Instant::now();
    cluster.instances[2].kill();
    c.drop_connection();
    d.drop_connection();
    assert!(c.resume(Duration::from_secs(10)).await);
    // Its last refresh (every half grace) left d online for a grace and a half after it.
    // nginx may have put a's resume on instance 2 as well: like any client, a resumes again
    // while it reads.
    while b.offline_of("d") == 0 {
        b.pump(Duration::from_millis(100)).await;
        a.pump(Duration::from_millis(10)).await;
        assert!(
            killed.elapsed() < Duration::from_millis(5500),
            "d goes offline within 1.5 graces + 1 s"
        );
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "not before the grace ({:?})",
        killed.elapsed()
    );
    b.pump(Duration::from_secs(2)).await;
    a.pump(Duration::from_millis(100)).await;
    assert_eq!(b.offline_of("d"), 1, "user_offline comes once");
    for name in ["a", "c"] {
        assert_eq!(
            b.offline_of(name),
            0,
            "{name} resumed within the grace: invisible ({:?}, {:?})",
            a.trace,
            c.trace
        );
    }
    let details: Value = via.details(&room.id).await;
    let online: Vec<&str> = details["online_users"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u["display_name"].as_str().expect("name"))
        .collect();
    assert_eq!(online.len(), 3, "no ghosts: {online:?}");
    assert!(!online.contains(&"d"));
    assert_clean(&[&a, &b, &c]);
    // The instance b is on lived: b saw nothing.
    assert_unseen(&[&b]);
}

#[tokio::test]
async fn an_owner_on_a_killed_instance_destroys_the_room_after_its_grace() {
    let mut cluster = Cluster::start(3, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "2")]);
    let via = cluster.app();
    let room = via
        .create_room(json!({"owner_name": "alice", "owner_grace_seconds": 2}))
        .await;
    let (_owner, _) = cluster.instance(0).owner(&room).await;
    let (mut b, _) = cluster.instance(1).member(&room.id, "b").await;
    let (mut c, _) = cluster.instance(2).member(&room.id, "c").await;
    let killed = Instant::now();
    cluster.instances[0].kill();
    for ws in [&mut b, &mut c] {
        ws.closed_with_room_closed(4003, "owner_offline").await;
    }
    // Not before the grace; within a refresh period (half the grace) and 1 s after it.
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn cut_redis_connections_lose_nothing() {
    let cluster = Cluster::start(3, &FAST);
    let via = cluster.app();
    let room = via.open_room().await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(Resilient::join(&cluster.instance(i), &via, &room.id, &format!("m{i}")).await);
    }
    let mut sender = Resilient::join(&cluster.instance(0), &via, &room.id, "sender").await;
    let redis = cluster.redis();
    for round in 0..6 {
        for i in 0..15 {
            // Every third is a reaction (toggling the sender's 👍 on the first message): the
            // repair fills gaps in the whole event stream, not only in messages.
            if i % 3 == 2 {
                sender.react(1, "👍").await;
            } else {
                sender.say(&format!("r{round} {i}")).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            if i == 7 {
                let kind = if round % 2 == 0 { "pubsub" } else { "normal" };
                let killed = redis.cli(&["client", "kill", "type", kind]);
                assert!(
                    killed.trim().parse::<u32>().unwrap_or(0) > 0,
                    "killed {kind} connections: {killed}"
                );
            }
        }
        sender.pump(Duration::from_millis(300)).await;
        for c in &mut clients {
            c.pump(Duration::from_millis(50)).await;
        }
    }
    // Everything the store accepted reaches everyone, in order, exactly once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history: Value = via
        .get(&format!("/rooms/{}/messages", room.id))
        .await
        .json()
        .await
        .expect("json");
    let last = history["last_id"].as_u64().expect("last_id");
    assert!(last >= 60, "most messages were accepted ({last})");
    let reactions = history["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["type"] == "reaction")
        .count();
    assert!(reactions >= 20, "reactions were accepted too ({reactions})");
    for c in clients.iter_mut().chain(std::iter::once(&mut sender)) {
        assert!(
            c.until_id(last, Duration::from_secs(15)).await,
            "{} reaches {last} (has {})",
            c.name,
            c.last_id
        );
    }
    let all: Vec<&Resilient> = clients.iter().chain(std::iter::once(&sender)).collect();
    assert_clean(&all);
    for c in &all {
        assert_eq!(c.ids, (1..=last).collect::<Vec<_>>(), "{}", c.name);
    }
    // FAILURES.md: a cut Redis connection is invisible to clients. Not one socket closed.
    assert_unseen(&all);
}

#[tokio::test]
async fn redis_down_is_unavailable_not_a_hang_and_an_empty_redis_ends_every_room() {
    let mut cluster = Cluster::start(3, &[]);
    let via = cluster.app();
    let room = via.open_room().await;
    let mut members = cluster.member_on_each(&room.id).await;
    cluster.redis.as_mut().expect("redis").kill();
    let sent = Instant::now();
    members[0].say("anyone?", "c").await;
    loop {
        match members[0].recv().await {
            Frame::Json(v) if v["type"] == "error" => {
                assert_eq!(v["code"], "unavailable");
                break;
            }
            Frame::Json(_) => continue,
            Frame::Closed(code) => {
                assert_eq!(code, 1013);
                break;
            }
        }
    }
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "answered promptly ({:?})",
        sent.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    for i in 0..3 {
        cluster.instance(i).await_readyz(503, deadline).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.redis.as_mut().expect("redis").restart();
    for ws in &mut members {
        let (code, _) = ws.closed().await;
        assert_eq!(
            code, 4004,
            "a room Redis forgot is gone, and clients are told"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..3 {
        cluster.instance(i).await_readyz(200, deadline).await;
    }
    let room = via.open_room().await;
    let (mut a, _) = cluster.instance(0).member(&room.id, "a").await;
    let (mut b, _) = cluster.instance(1).member(&room.id, "b").await;
    a.say("back", "c").await;
    assert_eq!(b.next_of("message").await["text"], "back");
}

/// A member the sweep removed while its socket still lived (its refreshes lost in a Redis
/// brownout; here its deadline is moved into the past by hand) is told to join again (4401),
/// not that it left (1000, which a client takes as final); others see why it went offline.
#[tokio::test]
async fn a_member_swept_while_its_socket_lives_is_told_to_join_again() {
    let cluster = Cluster::start(1, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "60")]);
    let app = cluster.instance(0);
    let room = app.open_room().await;
    let (mut swept, welcome) = app.member(&room.id, "swept").await;
    let (mut other, _) = app.member(&room.id, "other").await;
    // Its liveness entry is "<member id>\n<session>" (redis-cli prints it on two lines).
    let alive = format!("eph:{{{}}}:alive", room.id);
    let listed = cluster.redis().cli(&["zrange", &alive, "0", "-1"]);
    let lines: Vec<&str> = listed.lines().collect();
    let id = welcome["member_id"].as_str().expect("member id");
    let at = lines.iter().position(|l| *l == id).expect("its entry");
    let entry = format!("{id}\n{}", lines[at + 1]);
    cluster.redis().cli(&["zadd", &alive, "XX", "1", &entry]);
    cluster
        .redis()
        .cli(&["zadd", "eph:deadlines", "1", &room.id]);
    let (code, _) = swept.closed().await;
    assert_eq!(code, 4401, "join again, not 'left'");
    let offline = other.presence("user_offline").await;
    assert_eq!(offline["display_name"], "swept");
    assert_eq!(offline["reason"], "timeout");
}

/// Moves a hash slot from the node that serves it to another, as `redis-cli --cluster
/// reshard` does: IMPORTING, MIGRATING, MIGRATE of its keys, then NODE on every node.
/// Starts moving a slot to the next shard: marks it migrating and importing, and moves its keys.
/// Until `finish_moving_slot`, the old shard answers the slot's commands with `ASK` redirects.
/// Returns the two shards' positions.
fn start_moving_slot(redis: &store::testing::RedisCluster, slot: &str) -> (usize, usize) {
    let from = redis
        .nodes
        .iter()
        .position(|n| n.cli(&["cluster", "countkeysinslot", slot]).trim() != "0")
        .expect("a node holds the slot's keys");
    let to = (from + 1) % redis.nodes.len();
    let (source, target) = (&redis.nodes[from], &redis.nodes[to]);
    target.cli(&["cluster", "setslot", slot, "importing", &node_id(source)]);
    source.cli(&["cluster", "setslot", slot, "migrating", &node_id(target)]);
    let keys = source.cli(&["cluster", "getkeysinslot", slot, "1000"]);
    let port = target.port.to_string();
    let mut migrate = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.lines());
    let said = source.cli(&migrate);
    assert!(said.contains("OK"), "migrate: {said}");
    (from, to)
}

/// Gives the slot to its new shard, on every node.
fn finish_moving_slot(redis: &store::testing::RedisCluster, slot: &str, to: usize) {
    let target = node_id(&redis.nodes[to]);
    for node in &redis.nodes {
        node.cli(&["cluster", "setslot", slot, "node", &target]);
    }
}

fn node_id(node: &store::testing::RedisServer) -> String {
    node.cli(&["cluster", "myid"]).trim().to_owned()
}

/// Redis Cluster moves the slot of a room while its members chat. While the slot migrates, the
/// old shard answers with `ASK` redirects, which ended the fred client's connection task for
/// good (the instance stayed unavailable; the store now starts it again). Once moved, the old
/// shard unsubscribes the room's channel (a notice fred drops), so the instances hear nothing
/// more from it: the liveness check sees the room's latest id run ahead of what was
/// delivered, subscribes the room again and repairs it from history. Every accepted message
/// arrives, once, in order.
#[tokio::test]
async fn a_rooms_slot_moving_to_another_shard_loses_nothing() {
    let redis = store::testing::RedisCluster::start();
    let cluster = Cluster::on(
        &redis.url(),
        2,
        &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "2"), FAST[0], FAST[1]],
    );
    let via = cluster.app();
    let room = via.open_room().await;
    let mut a = Resilient::join(&cluster.instance(0), &via, &room.id, "a").await;
    let mut b = Resilient::join(&cluster.instance(1), &via, &room.id, "b").await;
    chat(&mut a, &mut [&mut b], 3).await;
    let slot = redis.nodes[0].cli(&["cluster", "keyslot", &format!("eph:{{{}}}", room.id)]);
    let (_, to) = start_moving_slot(&redis, slot.trim());
    // Messages while the slot migrates: redirected with ASK (a few may be refused).
    for i in 0..3 {
        assert!(a.say(&format!("while the slot moves {i}")).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    finish_moving_slot(&redis, slot.trim(), to);
    let mut sent = 0;
    for i in 0..10 {
        // The move may refuse a message or two (unavailable) while the cluster settles.
        if a.say(&format!("after the move {i}")).await {
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent, 10);
    // Accepted messages are in the room's history; each member gets every one of them. (A
    // read too may be refused while the cluster settles: clients try again.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let history = via.messages(&room.id, Some(&a.token)).await;
        if let Some(last) = history["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["id"].as_u64())
        {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "history readable again: {history}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(last > 3, "messages were accepted after the move");
    for c in [&mut a, &mut b] {
        if !c.until_id(last, Duration::from_secs(15)).await {
            // Each instance's log, a repeated message once.
            let logs: Vec<Vec<String>> = cluster
                .instances
                .iter()
                .map(|p| {
                    let mut lines: Vec<String> = Vec::new();
                    for line in p.logs().lines() {
                        let message = |l: &str| l.split("\"fields\"").nth(1).map(str::to_owned);
                        if lines.last().and_then(|l| message(l)) != message(line)
                            || message(line).is_none()
                        {
                            lines.push(line.to_owned());
                        }
                    }
                    lines
                })
                .collect();
            panic!(
                "{} got everything up to {last} (has {}, closed for good with {:?}; \
                 connection: {:?}; others: {:?}); logs: {logs:#?}",
                c.name, c.last_id, c.terminal, c.trace, c.others
            );
        }
    }
    a.say("and on").await;
    assert!(
        b.until_id(last + 1, Duration::from_secs(5)).await,
        "delivery goes on"
    );
    assert_clean(&[&a, &b]);
    // FAILURES.md: a slot move costs a pause, perhaps a refused message; never a socket.
    assert_unseen(&[&a, &b]);
}

/// A TCP proxy to Redis on `port` that forwards every connection both ways until `trap` is
/// armed; then the first answer of append.lua (`{'ok', id}`: a message stored) it sees is not
/// forwarded, and that connection is cut in both directions. Returns the proxy's port. It runs
/// on a thread of its own, so the test's blocking set-up (starting instances) cannot stall it.
fn reply_dropping_proxy(port: u16, trap: Arc<AtomicBool>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.set_nonblocking(true).expect("non-blocking");
    let local = listener.local_addr().expect("address").port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    continue;
                };
                let trap = trap.clone();
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = server_read.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let ok: &[u8] = b"*2\r\n$2\r\nok\r\n:";
                        let stored = buf[..n].windows(ok.len()).any(|w| w == ok);
                        if stored && trap.swap(false, Ordering::SeqCst) {
                            break;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        })
    });
    local
}

/// FAILURES.md's one undecidable case: the connection to Redis breaks after a message was
/// stored and before its answer arrived. The sender is told `unavailable`; every member still
/// gets the message exactly once (the sender's instance repairs the room from history once it
/// is connected again); the sender's resend with the same `client_id` is answered with the
/// original, and nobody sees a second copy.
#[tokio::test]
async fn a_sender_told_unavailable_for_a_stored_message_still_gets_it_once() {
    let redis = RedisServer::start();
    let trap = Arc::new(AtomicBool::new(false));
    let proxy = reply_dropping_proxy(redis.port, trap.clone());
    let cluster = Cluster::on(
        &format!("redis://127.0.0.1:{proxy}"),
        2,
        &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10"), FAST[0], FAST[1]],
    );
    let (first, second) = (cluster.instance(0), cluster.instance(1));
    let room = first.open_room().await;
    let (mut a, _) = first.member(&room.id, "a").await;
    let (mut b, _) = second.member(&room.id, "b").await;
    a.presence("user_online").await;
    a.say("before", "c-0").await;
    assert_eq!(a.next_of("message").await["id"], 1);
    assert_eq!(b.next_of("message").await["id"], 1);

    trap.store(true, Ordering::SeqCst);
    a.say("stored though refused", "c-1").await;
    let frames = a.drain(Duration::from_secs(5)).await;
    assert!(!trap.load(Ordering::SeqCst), "the answer was dropped");
    let refusals: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert_eq!(refusals.len(), 1, "{frames:?}");
    assert_eq!(refusals[0]["code"], "unavailable");
    let echoes: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["id"].as_u64())
        .collect();
    assert_eq!(
        echoes,
        [2],
        "the sender gets it once all the same: {frames:?}"
    );
    let seen: Vec<u64> = b
        .drain(Duration::from_millis(500))
        .await
        .iter()
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["id"].as_u64())
        .collect();
    assert_eq!(seen, [2], "and everyone else once");

    // The advice: resend with the same client_id. The original answers, to the sender alone.
    a.say("stored though refused", "c-1").await;
    let again = a.next_of("message").await;
    assert_eq!(
        (again["id"].clone(), again["client_id"].clone()),
        (json!(2), json!("c-1"))
    );
    let others = b.drain(Duration::from_millis(500)).await;
    assert!(others.iter().all(|f| f["type"] != "message"), "{others:?}");
    let history = second.messages(&room.id, None).await;
    assert_eq!(history["last_id"], 2, "{history}");
}

/// A Redis Cluster with a replica per primary: the primary holding a room is killed while its
/// members chat, its replica takes over (after the 2 s node timeout), and then every node's
/// pub/sub connections are cut. Messages the room accepted reach both members once, in
/// order; what clients see is what FAILURES.md says: a pause and perhaps a refused message
/// during the failover (and a resume at most, never a lost membership), nothing at all for
/// the pub/sub cut.
#[tokio::test]
async fn a_primary_killed_during_chat_fails_over_and_a_pubsub_cut_is_unseen() {
    let mut redis = store::testing::RedisCluster::start_with_replicas(1);
    let cluster = Cluster::on(
        &redis.url(),
        2,
        &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10"), FAST[0], FAST[1]],
    );
    let via = cluster.app();
    let room = via.open_room().await;
    let mut a = Resilient::join(&cluster.instance(0), &via, &room.id, "a").await;
    let mut b = Resilient::join(&cluster.instance(1), &via, &room.id, "b").await;
    chat(&mut a, &mut [&mut b], 3).await;
    let primary = redis.primary_holding(&format!("eph:{{{}}}:meta", room.id));
    // The replica has what the primary has (replication is asynchronous: wait until the
    // offset it acknowledged is the primary's; `ROLE` lists both).
    let deadline = Instant::now() + Duration::from_secs(10);
    let replica = loop {
        let role = redis.nodes[primary].cli(&["role"]);
        let role: Vec<&str> = role.lines().collect();
        if let [_, offset, _, port, acked, ..] = role.as_slice()
            && offset == acked
        {
            let port: u16 = port.parse().expect("a port");
            break (0..redis.nodes.len())
                .find(|&i| redis.nodes[i].port == port)
                .expect("the replica is one of the nodes");
        }
        assert!(
            Instant::now() < deadline,
            "the replica catches up: {role:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    redis.nodes[primary].kill();
    let failed_at = Instant::now();
    // Chat through the failover: a message every 100 ms for 8 s (some may be refused).
    for i in 0..80 {
        a.say(&format!("through the failover {i}")).await;
        a.pump(Duration::from_millis(100)).await;
        b.pump(Duration::from_millis(1)).await;
    }
    assert!(
        redis.nodes[replica].cli(&["role"]).starts_with("master"),
        "the replica took over"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let history = via.messages(&room.id, Some(&a.token)).await;
        if let Some(last) = history["last_id"].as_u64().filter(|&l| l > 3) {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "history readable again: {history}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for c in [&mut a, &mut b] {
        assert!(
            c.until_id(last, Duration::from_secs(20)).await,
            "{} got everything up to {last} (has {}, trace {:?})",
            c.name,
            c.last_id,
            c.trace
        );
    }
    assert_clean(&[&a, &b]);
    for c in [&a, &b] {
        assert_eq!(c.terminal, None, "{} keeps its membership", c.name);
        assert!(
            c.closes.iter().all(|code| *code == 4008),
            "{}: a failover costs at most a resume (4008): {:?}",
            c.name,
            c.closes
        );
    }
    println!(
        "failover: {last} messages accepted, closes {:?} / {:?}, after {:?}",
        a.closes,
        b.closes,
        failed_at.elapsed()
    );

    // Then every pub/sub connection is cut: nobody sees anything.
    let (a_closes, b_closes) = (a.closes.len(), b.closes.len());
    for (i, node) in redis.nodes.iter().enumerate() {
        if i != primary {
            node.cli(&["client", "kill", "type", "pubsub"]);
        }
    }
    let target = chat(&mut a, &mut [&mut b], 5).await;
    assert!(b.until_id(target, Duration::from_secs(10)).await);
    assert_clean(&[&a, &b]);
    assert_eq!(
        (a.closes.len(), b.closes.len()),
        (a_closes, b_closes),
        "the cut is unseen"
    );
}

/// One shard of a Redis Cluster freezes (SIGSTOP) just as the instance's subscriptions are
/// cut: the rooms on the frozen shard cannot be subscribed again or repaired, and their
/// members are told to resume (4008) after a few attempts, while a room on a healthy shard
/// chats on as before; none waits for another room's repair. Readiness says a shard is down.
#[tokio::test]
async fn a_frozen_shard_holds_up_only_its_own_rooms() {
    let redis = store::testing::RedisCluster::start();
    let cluster = Cluster::on(
        &redis.url(),
        1,
        &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "30")],
    );
    let app = cluster.instance(0);
    let node_of = |room: &str| redis.primary_holding(&format!("eph:{{{room}}}:meta"));
    // The frozen shard is the one fred asks first for the cluster's layout (its lowest
    // address), the worst case for the other rooms.
    let lowest = (0..redis.nodes.len())
        .min_by_key(|&i| redis.nodes[i].port)
        .expect("a cluster has nodes");
    let frozen_room = loop {
        let room = app.open_room().await;
        if node_of(&room.id) == lowest {
            break room;
        }
    };
    let frozen = node_of(&frozen_room.id);
    let healthy_room = loop {
        let room = app.open_room().await;
        if node_of(&room.id) != frozen {
            break room;
        }
    };
    let (mut stuck, _) = app.member(&frozen_room.id, "stuck").await;
    let (mut a, _) = app.member(&healthy_room.id, "a").await;
    let (mut b, _) = app.member(&healthy_room.id, "b").await;
    a.say("before", "c0").await;
    assert_eq!(b.next_of("message").await["text"], "before");

    redis.nodes[frozen].pause();
    for (i, node) in redis.nodes.iter().enumerate() {
        if i != frozen {
            node.kill_clients();
        }
    }
    // The healthy room flows while the frozen shard's room is still being retried. The first
    // message waits while fred learns the cluster's layout again: it asked the frozen node
    // first, and each step there (`CLUSTER SLOTS` on its old connection, a handshake on a
    // new one) waits out the 0.5 s handshake timeout.
    let cut = Instant::now();
    for i in 1..=5 {
        let sent = Instant::now();
        a.say(&format!("during {i}"), &format!("c{i}")).await;
        loop {
            let m = b.next_of("message").await;
            if m["text"] == format!("during {i}") {
                break;
            }
        }
        let (took, bound) = match i {
            1 => (cut.elapsed(), Duration::from_millis(1500)),
            _ => (sent.elapsed(), Duration::from_secs(1)),
        };
        assert!(took < bound, "message {i} took {took:?}");
    }
    app.await_readyz(503, Instant::now() + Duration::from_secs(5))
        .await;
    // Eight attempts, each waiting out the store's 2 s timeout, with backoff between.
    let code = loop {
        match stuck.recv_within(Duration::from_secs(40)).await {
            Some(Frame::Closed(code)) => break code,
            Some(Frame::Json(_)) => continue,
            None => panic!("the frozen room's members are never told"),
        }
    };
    assert_eq!(code, 4008, "the frozen room's members resume");
    redis.nodes[frozen].unpause();
    app.await_readyz(200, Instant::now() + Duration::from_secs(10))
        .await;
}

/// libfaketime (scripts/test.sh installs it), which shifts a process's wall clock.
fn libfaketime() -> String {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|dir| format!("{dir}/faketime/libfaketime.so.1"))
    .find(|path| std::path::Path::new(path).exists())
    .expect("libfaketime is installed (scripts/test.sh installs faketime)")
}

/// Instances whose clocks are an hour ahead and an hour behind share Redis with one on time:
/// every deadline is on Redis's clock, so the one ahead neither expires the room early nor
/// sweeps anyone, the one behind keeps its members alive, and a room created through the one
/// ahead lives as long as it asked.
#[tokio::test]
async fn instances_with_wrong_clocks_end_nothing_early() {
    let redis = store::testing::RedisServer::start();
    let url = redis.url();
    let lib = libfaketime();
    let base = [
        ("EPHEMERA_REDIS_URL", url.as_str()),
        ("EPHEMERA_PRESENCE_GRACE_SECONDS", "2"),
        ("EPHEMERA_MIN_EXPIRY_SECONDS", "1"),
    ];
    let start = |offset: Option<&str>| {
        let mut env = base.to_vec();
        if let Some(offset) = offset {
            env.extend([
                ("LD_PRELOAD", lib.as_str()),
                ("FAKETIME", offset),
                // Timers run on the monotonic clock, which stays true.
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ]);
        }
        crate::process::Process::start(&env)
    };
    let (on_time, ahead, behind) = (start(None), start(Some("+3600")), start(Some("-3600")));
    let [on_time, ahead, behind] = [&on_time, &ahead, &behind].map(|p| TestApp::at(p.port));
    let room = on_time
        .create_room(json!({"owner_name": "alice", "expiry_seconds": 60}))
        .await;
    let (mut a, _) = on_time.member(&room.id, "a").await;
    let (mut b, _) = ahead.member(&room.id, "b").await;
    let (mut c, _) = behind.member(&room.id, "c").await;
    // Two graces: every instance has refreshed and swept many times.
    let frames = a.drain(Duration::from_secs(5)).await;
    assert!(
        frames.iter().all(|f| f["event"] != "user_offline"),
        "nobody was swept: {frames:?}"
    );
    let details = on_time.details(&room.id).await;
    assert_eq!(details["online_users_count"], 3, "{details}");
    c.say("still here", "c1").await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(ws.next_of("message").await["text"], "still here");
    }
    let created = ahead
        .create_room(json!({"owner_name": "alice", "expiry_seconds": 60}))
        .await;
    let expires_in = on_time.details(&created.id).await["expires_in"]
        .as_u64()
        .expect("expires_in");
    assert!((55..=60).contains(&expires_in), "{expires_in}");
}

/// How Redis fails, for [`an_instance_that_lost_redis_says_so_at_once`].
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// Killed: connections are refused.
    Stopped,
    /// SIGSTOP: connections stay open and hang.
    Paused,
    /// Every client connection closed (the server itself is fine).
    ConnectionsKilled,
}

/// `/readyz` answers from what the instance knows, at once, whatever Redis does; while Redis is
/// known down, REST and WebSocket operations fail at once (503 with `Retry-After`, an
/// `unavailable` frame) instead of each waiting for a timeout; all recovers when Redis does.
#[tokio::test]
async fn an_instance_that_lost_redis_says_so_at_once() {
    const PROMPT: Duration = Duration::from_millis(300);
    for outage in [Outage::Stopped, Outage::Paused, Outage::ConnectionsKilled] {
        let mut redis = store::testing::RedisServer::start();
        let cluster = Cluster::on(&redis.url(), 1, &[]);
        let app = cluster.instance(0);
        let room = app.open_room().await;
        let (mut member, _) = app.member(&room.id, "m").await;
        match outage {
            Outage::Stopped => redis.kill(),
            Outage::Paused => redis.pause(),
            Outage::ConnectionsKilled => redis.kill_clients(),
        }
        // Every readiness answer is prompt; it turns 503 once the loss is known.
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut slowest = Duration::ZERO;
        let mut saw_503 = false;
        while Instant::now() < deadline && !saw_503 {
            let asked = Instant::now();
            let status = app.get("/readyz").await.status();
            slowest = slowest.max(asked.elapsed());
            saw_503 = status == 503;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(slowest < PROMPT, "{outage:?}: /readyz took {slowest:?}");
        if !matches!(outage, Outage::ConnectionsKilled) {
            assert!(saw_503, "{outage:?}: /readyz turns 503");
            let asked = Instant::now();
            let res = app.post("/rooms", json!({"owner_name": "alice"})).await;
            assert_eq!(res.status(), 503, "{outage:?}");
            assert_eq!(res.headers()["retry-after"], "1", "{outage:?}");
            assert!(
                asked.elapsed() < PROMPT,
                "{outage:?}: REST took {:?}",
                asked.elapsed()
            );
            let asked = Instant::now();
            member.say("anyone?", "c").await;
            let refused = member.next_of("error").await;
            assert_eq!(refused["code"], "unavailable", "{outage:?}");
            assert!(
                asked.elapsed() < PROMPT,
                "{outage:?}: a message took {:?}",
                asked.elapsed()
            );
        }
        match outage {
            Outage::Stopped => redis.restart(),
            Outage::Paused => redis.unpause(),
            Outage::ConnectionsKilled => {}
        }
        app.await_readyz(200, Instant::now() + Duration::from_secs(10))
            .await;
        app.open_room().await;
        if !matches!(outage, Outage::Stopped) {
            member.say("back", "c2").await;
            assert_eq!(
                member.next_of("message").await["text"],
                "back",
                "{outage:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_drained_instance_hands_its_members_over_without_losing_a_message() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("EPHEMERA_DRAIN_DELAY_SECONDS", "1"),
            // The handover is tested here, not the grace: the leaving members are read one
            // after another, and none may be swept while it waits its turn.
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "10"),
            FAST[0],
            FAST[1],
        ],
    );
    let via = cluster.app();
    let room = via.open_room().await;
    let mut leaving: Vec<Resilient> = Vec::new();
    for i in 0..5 {
        leaving.push(Resilient::join(&cluster.instance(0), &via, &room.id, &format!("d{i}")).await);
    }
    let mut sender = Resilient::join(&cluster.instance(1), &via, &room.id, "sender").await;
    let mut watcher = Resilient::join(&cluster.instance(2), &via, &room.id, "watcher").await;
    let drained = cluster.instance(0);
    cluster.instances[0].terminate();
    drained
        .await_readyz(503, Instant::now() + Duration::from_millis(900))
        .await;
    // Chat goes on during the drain.
    for i in 0..40 {
        sender.say(&format!("during drain {i}")).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let last = sender.last_id + 40;
    for c in leaving.iter_mut().chain([&mut sender, &mut watcher]) {
        assert!(
            c.until_id(last, Duration::from_secs(15)).await,
            "{} has everything: last {} closes {:?} terminal {:?} trace {:?} failures {:?}",
            c.name,
            c.last_id,
            c.closes,
            c.terminal,
            c.trace,
            c.failures
        );
    }
    for c in &leaving {
        // FAILURES.md: a drain closes with 1001 (never a dropped connection), and only after
        // the drain delay, during which the draining instance still delivered.
        assert_eq!(c.closes, [1001], "{}: {:?}", c.name, c.trace);
        assert!(
            c.closed_after[0] >= 1,
            "{} got messages from the draining instance before its close: {:?}",
            c.name,
            c.trace
        );
        assert!(c.resumes >= 1, "{} resumed elsewhere", c.name);
        assert_eq!(
            watcher.offline_of(&c.name),
            0,
            "{} kept its membership",
            c.name
        );
    }
    let status = cluster.instances[0]
        .wait(Duration::from_secs(30))
        .expect("exits within 30 s");
    assert!(status.success());
    let all: Vec<&Resilient> = leaving.iter().chain([&sender, &watcher]).collect();
    assert_clean(&all);
    assert_unseen(&[&sender, &watcher]);
}

#[tokio::test]
async fn a_reconnect_storm_resumes_everyone_while_other_rooms_keep_flowing() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("EPHEMERA_CONNECT_RATE_PER_SECOND", "400"),
            // Every client comes from 127.0.0.1.
            ("EPHEMERA_MAX_CONNECTIONS_PER_IP", "5000"),
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "30"),
            ("EPHEMERA_ROOM_CREATE_PER_MINUTE", "1000"),
        ],
    );
    let via = cluster.app();
    let victim = cluster.instance(0);
    let rooms_n = 50;
    let per_room = 40;
    let mut rooms = Vec::new();
    for _ in 0..rooms_n {
        rooms.push(
            via.create_room(json!({"owner_name": "o", "max_users": 100}))
                .await
                .id,
        );
    }
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut joins = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for m in 0..per_room {
            let (victim, room, permits) = (victim.clone(), room.clone(), permits.clone());
            joins.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("permit");
                // The connect rate cap applies to first joins too: retry 1013 like a client,
                // for a minute at most.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "u{r}x{m} could not join in a minute"
                    );
                    let mut ws = victim.ws(&room, &format!("display_name=u{r}x{m}")).await;
                    if let Frame::Json(v) = ws.recv().await
                        && v["event"] == "welcome"
                    {
                        drop(ws);
                        return (room, v["resume_token"].as_str().expect("token").to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(100 + rand::random::<u64>() % 200))
                        .await;
                }
            }));
        }
    }
    let members: Vec<(String, String)> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(|r| r.expect("join"))
        .collect();
    let total = members.len();

    // A room on the survivors only, chatting all along.
    let busy = via.open_room().await;
    let mut speaker = Resilient::join(&cluster.instance(1), &via, &busy.id, "speaker").await;
    let mut listener = Resilient::join(&cluster.instance(2), &via, &busy.id, "listener").await;

    cluster.instances[0].kill();
    let storm = Instant::now();
    let resumes = members.into_iter().map(|(room, token)| {
        let via = via.clone();
        tokio::spawn(async move {
            let mut backoff = 50u64;
            while storm.elapsed() < Duration::from_secs(30) {
                let mut ws = via.ws(&room, &format!("resume={token}&last_id=0")).await;
                if let Some(Frame::Json(v)) = ws.recv_within(Duration::from_secs(5)).await
                    && v["event"] == "welcome"
                {
                    return Some((ws, storm.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % backoff)).await;
                backoff = (backoff * 2).min(2000);
            }
            None
        })
    });
    let resumed = tokio::spawn(futures_util::future::join_all(resumes));
    let mut worst = Duration::ZERO;
    for i in 0..30 {
        let sent = Instant::now();
        assert!(speaker.say(&format!("flowing {i}")).await);
        let target = speaker.last_id + 1;
        assert!(
            listener.until_id(target, Duration::from_secs(5)).await,
            "the busy room keeps flowing"
        );
        speaker.pump(Duration::from_millis(1)).await;
        worst = worst.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed = resumed.await.expect("storm");
    let ok: Vec<Duration> = resumed
        .into_iter()
        .filter_map(|r| r.expect("task").map(|(_, at)| at))
        .collect();
    let slowest = ok.iter().max().copied().unwrap_or_default();
    println!(
        "storm: {} of {total} resumed, slowest after {slowest:?}; busy room worst latency {worst:?}",
        ok.len()
    );
    assert_eq!(ok.len(), total, "everyone resumed within 30 s");
    assert!(
        worst < Duration::from_secs(2),
        "other rooms kept flowing ({worst:?})"
    );
    assert_clean(&[&speaker, &listener]);
    // The busy room's members were on the survivors: the storm was not theirs to see.
    assert_unseen(&[&speaker, &listener]);
}

#[tokio::test]
async fn a_stalled_client_is_dropped_after_the_stall_timeout_even_under_the_byte_limit() {
    // Kernel buffers absorb a few MB before a write blocks: send more than that, in big
    // messages, with the byte limit out of the way. The reader may be dropped too when a busy
    // machine starves it for the stall timeout; history keeps every message sent, so its
    // resume can always recover what it missed.
    let cluster = Cluster::start(
        1,
        &[
            ("EPHEMERA_STALL_TIMEOUT_SECONDS", "2"),
            ("EPHEMERA_OUTBOUND_QUEUE_BYTES", "67108864"),
            ("EPHEMERA_MAX_MESSAGE_CHARS", "15000"),
            ("EPHEMERA_HISTORY_LIMIT", "600"),
            ("EPHEMERA_HISTORY_MAX_BYTES", "16777216"),
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "60"),
            FAST[0],
            FAST[1],
        ],
    );
    let app = cluster.instance(0);
    let room = app.open_room().await;
    let mut stalled = Ws::connect_small_buffer(&format!(
        "{}/rooms/{}/ws?display_name=stalled",
        app.ws_base, room.id
    ))
    .await;
    assert_eq!(stalled.next_of("system").await["event"], "welcome");
    let mut reader = Resilient::join(&app, &app, &room.id, "reader").await;
    let (sender, welcome) = app.member(&room.id, "sender").await;
    let token = welcome["resume_token"].as_str().expect("token").to_owned();
    drop(sender);
    let text = "s".repeat(15_000);
    for _ in 0..600 {
        let res = app
            .http
            .post(app.url(&format!("/rooms/{}/messages", room.id)))
            .bearer_auth(&token)
            .json(&json!({"text": text}))
            .send()
            .await
            .expect("req");
        assert_eq!(res.status(), 201);
    }
    assert!(reader.until_id(600, Duration::from_secs(20)).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The stalled socket is dropped as a slow consumer. (A reader starved of CPU for the stall
    // timeout by a busy machine may be dropped too; it resumes, and must end clean.)
    let metrics = app.get("/metrics").await.text().await.expect("text");
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ephemera_slow_consumers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped >= 1, "{metrics}");
    // The 4008 close queued behind what it never read; having read nothing for twice the
    // stall timeout, its connection was reset by the kernel (TCP_USER_TIMEOUT) before it
    // came to read: either way the client resumes.
    let (code, _) = stalled.closed().await;
    assert!(code == 4008 || code == 1006, "{code}");
    assert_clean(&[&reader]);
}

#[tokio::test]
async fn after_a_pubsub_cut_every_instance_subscribes_again() {
    let cluster = Cluster::start(3, &[]);
    let via = cluster.app();
    let room = via.open_room().await;
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(Resilient::join(&cluster.instance(i), &via, &room.id, &format!("m{i}")).await);
    }
    for round in 0..3 {
        let killed = cluster.redis().cli(&["client", "kill", "type", "pubsub"]);
        assert!(killed.trim().parse::<u32>().unwrap_or(0) >= 3, "{killed}");
        // Messages sent well after the cut, when nothing is left to repair but the subscription.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sender = round % 3;
        assert!(members[sender].say("after the cut").await);
        let target = members[sender].last_id + 1;
        for m in &mut members {
            assert!(
                m.until_id(target, Duration::from_secs(5)).await,
                "{} gets messages after cut {round}",
                m.name
            );
        }
    }
    let members: Vec<&Resilient> = members.iter().collect();
    assert_clean(&members);
    // FAILURES.md: a cut connection is invisible to clients.
    assert_unseen(&members);
}

/// While no instance can subscribe, the owner closes the room over REST: its `room_closed` is
/// lost, and the liveness refresh finds the room gone and closes every socket with 4004 (stay
/// closed), not 4401 (which would send clients to join again).
#[tokio::test]
async fn a_room_closed_while_pubsub_was_down_closes_its_sockets_with_4004() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "3")]);
    let room = cluster.app().open_room().await;
    let (mut a, _) = cluster.instance(0).member(&room.id, "a").await;
    let (mut c, _) = cluster.instance(1).member(&room.id, "c").await;
    for ws in [&mut a, &mut c] {
        ws.drain(Duration::from_millis(300)).await;
    }
    let redis = cluster.redis();
    cut_pubsub(redis, 2);
    // The cut took the instances' command connection too (subscriptions share it): a command
    // written before fred sees the cut is answered 503, as FAILURES.md says. The owner closes
    // the room once instance 0 answers a read again.
    let zero = cluster.instance(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while zero.get(&format!("/rooms/{}", room.id)).await.status() != 200 {
        assert!(Instant::now() < deadline, "instance 0 reaches Redis again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    zero.close_room(&room).await;
    for ws in [&mut a, &mut c] {
        let (code, seen) = ws.closed().await;
        assert_eq!(code, 4004, "{seen:?}");
    }
}

/// Cuts the pub/sub connections (at least `subscribed` instances' ones) and refuses them
/// subscriptions (by ACL: Redis still answers commands) until `+@all` is given back.
fn cut_pubsub(redis: &RedisServer, subscribed: u32) {
    let deny = [
        "acl",
        "setuser",
        "default",
        "-subscribe",
        "-psubscribe",
        "-ssubscribe",
    ];
    assert_eq!(redis.cli(&deny).trim(), "OK");
    let killed = redis.cli(&["client", "kill", "type", "pubsub"]);
    assert!(
        killed.trim().parse::<u32>().unwrap_or(0) >= subscribed,
        "{killed}"
    );
}

/// While no instance can subscribe, b leaves over REST and e resumes on another instance: the
/// bus events of both are lost. The liveness refresh finds b's socket gone (4401) and e's old
/// one replaced (4000) while subscriptions are still refused; once they are back, every
/// instance replays the presence its clients missed.
#[tokio::test]
async fn what_the_bus_lost_while_pubsub_was_down_is_made_good() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "3")]);
    let room = cluster.app().open_room().await;
    let (zero, one) = (cluster.instance(0), cluster.instance(1));
    let (mut a, _) = zero.member(&room.id, "a").await;
    let (mut b, welcome) = zero.member(&room.id, "b").await;
    let b_token = welcome["resume_token"].as_str().expect("token").to_owned();
    let (mut e, welcome) = zero.member(&room.id, "e").await;
    let e_token = welcome["resume_token"].as_str().expect("token").to_owned();
    let (mut c, _) = one.member(&room.id, "c").await;
    for ws in [&mut a, &mut b, &mut e, &mut c] {
        ws.drain(Duration::from_millis(300)).await;
    }

    let redis = cluster.redis();
    cut_pubsub(redis, 2);
    // Neither instance can subscribe: neither is ready (FAILURES.md), though Redis answers.
    for instance in [&zero, &one] {
        instance
            .await_readyz(503, Instant::now() + Duration::from_secs(10))
            .await;
    }
    let left = one
        .http
        .post(one.url(&format!("/rooms/{}/leave", room.id)))
        .bearer_auth(&b_token)
        .send()
        .await
        .expect("leave");
    assert_eq!(left.status(), 200);
    let mut e2 = one
        .ws(&room.id, &format!("resume={e_token}&last_id=0"))
        .await;
    assert_eq!(e2.next_of("system").await["event"], "welcome");
    let (code, seen) = b.closed().await;
    assert_eq!(code, 4401, "b's socket, its member gone: {seen:?}");
    let (code, seen) = e.closed().await;
    assert_eq!(code, 4000, "e's old socket: {seen:?}");
    assert_eq!(
        redis.cli(&["acl", "setuser", "default", "+@all"]).trim(),
        "OK"
    );
    for instance in [&zero, &one] {
        instance
            .await_readyz(200, Instant::now() + Duration::from_secs(10))
            .await;
    }

    for ws in [&mut a, &mut c] {
        let offline = ws.presence("user_offline").await;
        assert_eq!(offline["display_name"], "b");
        assert_eq!(offline["online_count"], 3);
    }
    for ws in [&mut a, &mut c] {
        let seen = ws.drain(Duration::from_millis(500)).await;
        assert!(
            seen.iter().all(|f| f["type"] != "presence"),
            "nothing else changed: {seen:?}"
        );
    }
    // e2's welcome already left b out; like an event in flight behind a welcome, the replay may
    // repeat that, but nothing else.
    let seen = e2.drain(Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|f| f["type"] != "presence"
            || (f["event"] == "user_offline" && f["display_name"] == "b")),
        "nothing else changed: {seen:?}"
    );
}

/// FAILURES.md, "... and the gap is older than the kept history": an instance whose
/// subscription is down while more messages than history keeps are posted elsewhere cannot
/// fill its members' gap. Once it subscribes again, its member's socket closes with 4008, and
/// the resume says `recovered: false` with the messages still kept: never a silent gap.
#[tokio::test]
async fn a_gap_older_than_the_kept_history_closes_with_4008_and_the_resume_says_so() {
    let cluster = Cluster::start(2, &[("EPHEMERA_HISTORY_LIMIT", "5")]);
    let room = cluster.app().open_room().await;
    let (zero, one) = (cluster.instance(0), cluster.instance(1));
    let (mut a, welcome) = zero.member(&room.id, "a").await;
    let a_token = welcome["resume_token"].as_str().expect("token").to_owned();
    let post = |text: String| {
        let one = &one;
        let room = &room;
        async move {
            let res = one
                .http
                .post(one.url(&format!("/rooms/{}/messages", room.id)))
                .bearer_auth(&room.owner_token)
                .json(&json!({ "text": text }))
                .send()
                .await
                .expect("post");
            assert_eq!(res.status(), 201, "{text}");
        }
    };
    post("m1".into()).await;
    assert_eq!(a.next_of("message").await["id"], 1);

    let redis = cluster.redis();
    cut_pubsub(redis, 1);
    zero.await_readyz(503, Instant::now() + Duration::from_secs(10))
        .await;
    // Eight more while instance 0 hears nothing: history keeps 5..9, so 2..4 are gone.
    for i in 2..=9 {
        post(format!("m{i}")).await;
    }
    assert_eq!(
        redis.cli(&["acl", "setuser", "default", "+@all"]).trim(),
        "OK"
    );
    let (code, seen) = a.closed().await;
    assert_eq!(code, 4008, "{seen:?}");
    assert!(
        seen.iter().all(|f| f["type"] != "message"),
        "nothing after the gap is delivered as if it followed: {seen:?}"
    );
    let mut back = zero
        .ws(&room.id, &format!("resume={a_token}&last_id=1"))
        .await;
    let welcome = back.next_of("system").await;
    assert_eq!(welcome["recovered"], false, "{welcome}");
    let ids: Vec<u64> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(ids, [5, 6, 7, 8, 9]);
}

/// Clients resume through nginx while an instance dies, as the page does (a resume ticket over
/// POST): no line that nginx (access and error log) or any instance logged holds a resume token,
/// an owner token or a room id.
#[tokio::test]
async fn resumes_through_nginx_across_an_instance_kill_log_no_secret_and_no_room_id() {
    let mut cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "5")]);
    let via = cluster.app();
    let room = via.open_room().await;
    let mut a = Resilient::join(&cluster.instance(0), &via, &room.id, "a").await;
    let mut b = Resilient::join(&cluster.instance(1), &via, &room.id, "b").await;
    chat(&mut b, &mut [&mut a], 2).await;
    cluster.instances[0].kill();
    a.drop_connection();
    assert!(
        a.resume(Duration::from_secs(10)).await,
        "a resumes through nginx"
    );
    b.drop_connection();
    assert!(
        b.resume(Duration::from_secs(10)).await,
        "b resumes through nginx"
    );
    chat(&mut a, &mut [&mut b], 2).await;
    let tokens = [a.token.clone(), b.token.clone()];
    // nginx logs a WebSocket when it ends.
    drop((a, b));
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster
        .nginx
        .access_log()
        .matches("\"GET /rooms/~/ws\" 101")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "nginx logs both sockets:\n{}",
            cluster.nginx.access_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut logs = cluster.nginx.access_log();
    logs.push_str(&cluster.nginx.error_log());
    for instance in &cluster.instances {
        logs.push_str(&instance.logs());
    }
    for (what, secret) in [
        ("the room id", room.id.as_str()),
        ("the owner token", room.owner_token.as_str()),
        ("a's resume token", tokens[0].as_str()),
        ("b's resume token", tokens[1].as_str()),
    ] {
        assert!(!logs.contains(secret), "a log holds {what}:\n{logs}");
    }
    assert!(
        !logs.contains("ticket="),
        "a log holds a query string:\n{logs}"
    );
}
