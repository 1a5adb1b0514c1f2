//! A randomized soak: members chat, drop, resume and leave at random in several rooms while
//! instances are killed and restarted and Redis connections are cut. At the end an invariant
//! checker confirms, for every member: ids strictly increasing by one across resumes, every fresh
//! welcome the room's last messages without a gap, no duplicates, every accepted message
//! delivered, presence converged to the truth on every instance and in every client's own
//! roster (rebuilt from its welcome and presence frames), and no key left for ended rooms.
//! `EPHEMERA_SOAK_SECONDS` sets the length (default 60); the members' random choices come from
//! `EPHEMERA_SOAK_SEED` (printed, random when unset), so a failure can be replayed.

use crate::client::Resilient;
use crate::cluster::Cluster;
use crate::helpers::TestApp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

const ROOMS: usize = 6;
const MEMBERS: usize = 5;

/// One member slot: the memberships it went through (a leave starts a new one).
async fn actor(
    via: TestApp,
    room: String,
    slot: usize,
    until: Instant,
    mut rng: StdRng,
) -> Vec<Resilient> {
    let mut done = Vec::new();
    let mut generation = 0;
    let mut me = Resilient::join(&via, &via, &room, &format!("s{slot}g{generation}")).await;
    while Instant::now() < until {
        let roll = rng.gen_range(0..100);
        match roll {
            0..62 => {
                me.say(&format!("{} says {roll}", me.name)).await;
            }
            // Reactions, edits and deletions take ids of the same stream, and must survive the
            // same faults.
            62..66 if me.last_message > 0 => {
                let emoji = ["👍", "🎉", "❤️"][rng.gen_range(0..3)];
                me.react(me.last_message, emoji).await;
            }
            66..69 if me.last_own > 0 => {
                let edit = json!({"type": "edit", "target": me.last_own, "text": format!("edited {roll}")});
                me.send(edit).await;
            }
            69 if me.last_own > 0 => {
                me.send(json!({"type": "delete", "target": me.last_own}))
                    .await;
            }
            70..80 => me.drop_connection(),
            80..82 => {
                me.leave().await;
                done.push(me);
                generation += 1;
                me = Resilient::join(&via, &via, &room, &format!("s{slot}g{generation}")).await;
            }
            _ => {}
        }
        let pause = rng.gen_range(50..300);
        me.pump(Duration::from_millis(pause)).await;
    }
    if !me.is_connected() && me.terminal.is_none() {
        me.resume(Duration::from_secs(10)).await;
    }
    done.push(me);
    done
}

#[tokio::test]
async fn soak_randomized_faults_keep_every_invariant() {
    let seconds: u64 = std::env::var("EPHEMERA_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut cluster = Cluster::start(
        3,
        &[
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "4"),
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "100"),
            ("EPHEMERA_MESSAGE_BURST", "100"),
        ],
    );
    let via = cluster.app();
    let mut rooms = Vec::new();
    for _ in 0..ROOMS {
        rooms.push(
            via.create_room(
                json!({"owner_name": "owner", "max_users": 100, "destroy_on_owner_offline": false}),
            )
            .await,
        );
    }
    let seed: u64 = std::env::var("EPHEMERA_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("soak seed {seed} (EPHEMERA_SOAK_SEED={seed} replays the members' choices)");
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut actors = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for slot in 0..MEMBERS {
            let rng = StdRng::seed_from_u64(seed ^ (((r * MEMBERS + slot) as u64) << 32));
            actors.push(tokio::spawn(actor(
                via.clone(),
                room.id.clone(),
                slot,
                until,
                rng,
            )));
        }
    }

    // Chaos: every few seconds kill and restart an instance, or cut Redis connections.
    let (mut kills, mut cuts) = (0, 0);
    let mut step = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(4)).await;
        match step % 3 {
            0 => {
                cluster.instances[(step / 3) % 3].restart();
                kills += 1;
            }
            1 => {
                cluster.redis().cli(&["client", "kill", "type", "pubsub"]);
                cuts += 1;
            }
            _ => {
                cluster.redis().cli(&["client", "kill", "type", "normal"]);
                cuts += 1;
            }
        }
        step += 1;
    }
    let mut members: Vec<Resilient> = Vec::new();
    for actor in futures_util::future::join_all(actors).await {
        members.extend(actor.expect("actor"));
    }

    // Settle: every room gets a last message, which every current member must reach.
    let mut accepted = 0;
    for room in &rooms {
        let here: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].room == room.id && members[i].terminal.is_none())
            .collect();
        let speaker = here[0];
        // The speaker's socket may have dropped in the last chaos step: resume as a client would.
        let mut sent = false;
        for _ in 0..5 {
            members[speaker].pump(Duration::from_millis(100)).await;
            if !members[speaker].is_connected() {
                members[speaker].resume(Duration::from_secs(10)).await;
            }
            if members[speaker].say("final").await {
                sent = true;
                break;
            }
        }
        assert!(
            sent,
            "{} cannot send: terminal {:?}, trace {:?}",
            members[speaker].name, members[speaker].terminal, members[speaker].trace
        );
        let history: Value = {
            tokio::time::sleep(Duration::from_millis(500)).await;
            via.get(&format!("/rooms/{}/messages", room.id))
                .await
                .json()
                .await
                .expect("json")
        };
        let last = history["last_id"].as_u64().expect("last_id");
        accepted += last;
        for &i in &here {
            let m = &mut members[i];
            if !m.until_id(last, Duration::from_secs(20)).await {
                let tail: Vec<&Value> = history["messages"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .rev()
                    .take(3)
                    .collect();
                let others: Vec<&Value> = m.others.iter().rev().take(2).collect();
                let subscribers =
                    cluster
                        .redis()
                        .cli(&["pubsub", "shardnumsub", &format!("eph:{{{}}}", m.room)]);
                let hosted: Vec<String> = (0..3)
                    .map(|i| {
                        cluster.instances[i]
                            .logs()
                            .lines()
                            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                            .count()
                            .to_string()
                    })
                    .collect();
                panic!(
                    "{} in {} does not reach {last} (has {}, connected {}, terminal {:?}, resumes {}, trace {:?}, failures {:?}); shard subscribers {subscribers:?}; \
                     warnings per instance {hosted:?}; its last frames {others:?}; history tail {tail:?}",
                    m.name,
                    m.room,
                    m.last_id,
                    m.is_connected(),
                    m.terminal,
                    m.resumes,
                    m.trace,
                    m.failures.iter().rev().take(4).collect::<Vec<_>>()
                );
            }
        }
        // Presence converged: every instance lists exactly the members still there.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let expected: BTreeSet<String> = here.iter().map(|&i| members[i].name.clone()).collect();
        for i in 0..3 {
            let details: Value = cluster.instance(i).details(&room.id).await;
            let online: BTreeSet<String> = details["online_users"]
                .as_array()
                .expect("list")
                .iter()
                .map(|u| u["display_name"].as_str().expect("name").to_owned())
                .collect();
            assert_eq!(online, expected, "presence of {} on instance {i}", room.id);
        }
        // And in what each client was told: its own roster, from its welcome and the presence
        // frames since, reaches the truth within a grace and a half.
        for &i in &here {
            let deadline = Instant::now() + Duration::from_secs(6);
            while members[i].online() != expected && Instant::now() < deadline {
                members[i].pump(Duration::from_millis(200)).await;
            }
            assert_eq!(
                members[i].online(),
                expected,
                "{}'s own roster in {} (seed {seed})",
                members[i].name,
                room.id
            );
        }
    }

    let violations: usize = members.iter().map(|m| m.violations.len()).sum();
    let unrecovered: u32 = members.iter().map(|m| m.unrecovered).sum();
    let delivered: usize = members.iter().map(|m| m.ids.len()).sum();
    let resumes: u32 = members.iter().map(|m| m.resumes).sum();
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for (kind, n) in members.iter().flat_map(|m| &m.kinds) {
        *kinds.entry(kind.clone()).or_default() += n;
    }
    for kind in crate::client::STREAM {
        assert!(
            kinds.get(kind).is_some_and(|&n| n > 0),
            "the soak delivered no {kind}: {kinds:?} (seed {seed})"
        );
    }
    let left = members.iter().filter(|m| m.terminal == Some(1000)).count();
    let dropped = members
        .iter()
        .filter(|m| m.terminal.is_some_and(|c| c != 1000))
        .count();
    println!(
        "soak {seconds}s: {} memberships ({left} left, {dropped} ended otherwise), {accepted} events accepted (messages, reactions, edits, deletions), \
         {delivered} delivered ({kinds:?}), {resumes} resumes, {kills} instance kills, {cuts} Redis cuts, \
         {violations} gaps or duplicates, {unrecovered} unrecovered resumes",
        members.len()
    );
    for m in &members {
        assert!(
            m.violations.is_empty(),
            "{}: {:?} (seed {seed})",
            m.name,
            m.violations
        );
        let ids: BTreeSet<u64> = m.ids.iter().copied().collect();
        assert_eq!(ids.len(), m.ids.len(), "{}: duplicates", m.name);
    }
    assert_eq!(unrecovered, 0);
    assert_eq!(dropped, 0, "nobody lost their membership to a fault");

    // Nothing of an ended room is left.
    for room in &rooms {
        via.close_room(room).await;
        let keys = cluster
            .redis()
            .cli(&["--scan", "--pattern", &format!("*{}*", room.id)]);
        assert_eq!(keys.trim(), "", "keys of {} remain", room.id);
    }
}
