//! Store conformance suite: every case runs against every backend, which must agree.

extern crate ephemera_store as store;

mod cases;
mod helpers;

/// Runs each case against each backend, each made with `$config()`.
macro_rules! conformance {
    ($config:path; $($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::cases::$case(crate::helpers::memory($config())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, bus, _server) = crate::helpers::redis($config()).await;
                    crate::cases::$case((store, bus)).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, bus, _cluster) = crate::helpers::redis_cluster($config()).await;
                    crate::cases::$case((store, bus)).await;
                }
            )*
        }
    };
}

conformance!(
    crate::helpers::config;
    rooms_are_created_read_and_unknown_ones_are_absent,
    names_are_unique_case_insensitively_and_the_owner_name_is_reserved,
    names_that_look_alike_are_one_name,
    capacity_counts_members_and_always_keeps_the_owner_slot,
    password_rooms_refuse_joins_by_name,
    tickets_are_single_use_and_expire,
    an_owner_claim_attaches_to_the_existing_owner,
    resume_tokens_work_only_for_their_member_in_their_room,
    bearer_tokens_authenticate_owner_and_members,
    messages_get_sequential_ids_and_history_keeps_the_newest,
    history_says_when_it_no_longer_covers_a_gap,
    history_reads_exactly_the_window_asked_for,
    history_is_bounded_in_bytes_too,
    messages_are_rate_limited_per_member,
    a_client_id_used_again_answers_the_kept_message_and_posts_nothing,
    the_owner_posts_without_joining_and_no_stranger_can,
    a_member_without_a_live_connection_goes_offline_after_the_grace,
    a_member_whose_refreshes_stop_unannounced_keeps_the_whole_grace,
    one_refresh_spans_rooms_and_reports_each_stale_member_in_place,
    one_disconnect_batch_starts_each_members_grace_across_rooms,
    a_disconnect_from_a_replaced_session_changes_nothing,
    the_owner_going_offline_destroys_a_room_that_says_so,
    rooms_expire_at_their_deadline,
    destroy_deletes_everything_and_publishes_room_closed_once,
    release_is_immediate,
    the_owner_leaving_closes_a_room_that_ends_with_its_owner,
    rate_counters_use_fixed_windows,
    wrong_passwords_are_counted_per_client_in_the_room,
    parallel_password_attempts_never_exceed_the_limit,
    outstanding_tickets_are_capped_per_room,
    outstanding_tickets_are_capped_per_client,
    the_bus_carries_only_subscribed_rooms_in_order,
    the_owner_removes_a_member_and_bars_its_address_and_name,
    a_locked_room_takes_no_new_members_but_its_members_resume,
    the_owner_moves_the_rooms_end,
    a_handover_makes_another_member_the_owner,
    the_owner_is_waited_for_its_owner_grace,
);

/// The conversation's cases, with a history that holds one.
mod conversation {
    conformance!(
        crate::helpers::long_history;
        edits_deletions_and_reactions_are_events_of_the_conversation,
        edits_close_after_the_window_and_reactions_stop_at_twenty_emoji,
        parallel_reactions_each_land_once,
    );
}

/// What only Redis can show: the keys and connections themselves.
mod redis_keys {
    use crate::helpers::*;
    use protocol::{CloseReason, now_ms};
    use std::sync::Arc;
    use store::secret::TokenHash;
    use store::{Actor, Live, Rate, RoomChange, Store, StoreConfig};

    const RATE: Rate = Rate {
        per_second: 100,
        burst: 100,
    };

    /// Fills a room with every kind of data: members, a message (with a client_id, which is
    /// remembered), a ticket, attempts.
    async fn busy_room(store: &Store, lifetime_ms: u64) -> String {
        let (room, _) = room(10, lifetime_ms);
        store.create_room(room.clone()).await.expect("create");
        let bob = join(store, &room.id, "bob", 1).await;
        let client_id = Some("c-1".to_owned());
        store
            .append_message(&room.id, &bob, post(text("secret text"), client_id), RATE)
            .await
            .expect("append");
        store
            .issue_ticket(&room.id, TokenHash::of("t"), owner_ticket(60_000))
            .await
            .expect("ticket");
        let limits = store::AttemptLimits {
            per_client: 10,
            per_room: 100,
            window_ms: 60_000,
        };
        store
            .reserve_password_attempt(&room.id, "1.2.3.4", limits)
            .await
            .expect("attempt");
        room.id
    }

    /// A Redis store with one open room (10 users, a minute to live).
    async fn redis_with_room() -> (Store, store::Bus, store::testing::RedisServer, store::Room) {
        let (store, bus, server) = redis(config()).await;
        let (room, _) = room(10, 60_000);
        store.create_room(room.clone()).await.expect("create");
        (store, bus, server, room)
    }

    /// The Redis key of one part of a room (`alive`, `state`, ...).
    fn room_key(room_id: &str, part: &str) -> String {
        format!("eph:{{{room_id}}}:{part}")
    }

    fn keys_of(server: &store::testing::RedisServer, room_id: &str) -> Vec<String> {
        server
            .cli(&["--scan", "--pattern", &format!("*{room_id}*")])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Redis keeps exactly the history it serves, no more (it kept up to twice the count
    /// before trimming), and its byte count matches the list.
    #[tokio::test]
    async fn history_is_trimmed_to_its_limit_exactly() {
        let (store, _bus, server, room) = redis_with_room().await;
        let bob = join(&store, &room.id, "bob", 1).await;
        for i in 0..(3 * HISTORY) {
            store
                .append_message(&room.id, &bob, post(text(format!("m{i}")), None), RATE)
                .await
                .expect("append");
            let key = room_key(&room.id, "history");
            let kept: usize = server.cli(&["llen", &key]).trim().parse().expect("llen");
            assert_eq!(kept, (i + 1).min(HISTORY));
            assert_history_bytes_counted(&server, &room.id);
        }
    }

    /// The room's meta counts exactly the bytes its history list holds.
    fn assert_history_bytes_counted(server: &store::testing::RedisServer, room_id: &str) {
        let key = room_key(room_id, "history");
        let bytes: usize = server
            .cli(&["lrange", &key, "0", "-1"])
            .lines()
            .map(str::len)
            .sum();
        let counted = server.cli(&["hget", &room_key(room_id, "meta"), "history_bytes"]);
        assert_eq!(counted.trim().parse::<usize>().expect("bytes"), bytes);
    }

    /// Every value Redis holds, read by each key's type (a DUMP may compress it).
    fn every_value(server: &store::testing::RedisServer) -> String {
        let mut all = String::new();
        for key in server.cli(&["--scan"]).lines() {
            let read = match server.cli(&["type", key]).trim() {
                "list" => server.cli(&["lrange", key, "0", "-1"]),
                "hash" => server.cli(&["hgetall", key]),
                "zset" => server.cli(&["zrange", key, "0", "-1"]),
                "set" => server.cli(&["smembers", key]),
                _ => server.cli(&["get", key]),
            };
            all.push_str(key);
            all.push_str(&read);
        }
        all
    }

    /// A deleted message's text leaves Redis at once: from the message, and from its edit
    /// (which kept the text it set), wherever they are in history; the byte count follows.
    #[tokio::test]
    async fn a_deleted_messages_text_is_gone_from_every_key() {
        let config = StoreConfig {
            history_limit: 50,
            history_max_bytes: 64 * 1024,
            ..config()
        };
        let (store, _bus, server) = redis(config).await;
        let (room, _) = room(10, 60_000);
        store.create_room(room.clone()).await.expect("create");
        let bob = join(&store, &room.id, "bob", 1).await;
        let window = 60_000;
        let said = post(text("first secret words"), Some("c-1".into()));
        let id = store.append_message(&room.id, &bob, said, RATE).await;
        let id = id.expect("append").frame.id;
        let edit = store::Amend::Edit(text("second secret words"));
        store
            .amend_message(&room.id, &bob, id, edit, RATE, window)
            .await
            .expect("edit");
        let other = post(text("an innocent message"), None);
        store
            .append_message(&room.id, &bob, other, RATE)
            .await
            .expect("append");
        let react = store::Amend::React("👍".into());
        store
            .amend_message(&room.id, &bob, id, react, RATE, window)
            .await
            .expect("react");
        assert!(every_value(&server).contains("second secret words"));
        store
            .amend_message(&room.id, &bob, id, store::Amend::Delete, RATE, window)
            .await
            .expect("delete");
        let all = every_value(&server);
        assert!(!all.contains("secret words"), "{all}");
        assert!(all.contains("an innocent message"), "the rest stays");
        assert_history_bytes_counted(&server, &room.id);
    }

    /// Redis remembers exactly the client_ids of the messages it keeps: one leaves with its
    /// message, whatever it holds.
    #[tokio::test]
    async fn client_ids_are_kept_exactly_as_long_as_their_messages() {
        let (store, _bus, server, room) = redis_with_room().await;
        let bob = join(&store, &room.id, "bob", 1).await;
        let carol = join(&store, &room.id, "carol", 2).await;
        let key = room_key(&room.id, "client_ids");
        for i in 0..(3 * HISTORY) {
            // Every other message has none; the others hold what JSON escapes.
            let (who, client_id) = match i % 2 {
                0 => (&bob, Some(format!(r#"q"{i}\"#))),
                _ => (&carol, None),
            };
            store
                .append_message(&room.id, who, post(text(format!("m{i}")), client_id), RATE)
                .await
                .expect("append");
            // One more field: the one it is made with.
            let kept = 1 + (0..=i).rev().take(HISTORY).filter(|n| n % 2 == 0).count();
            let fields: usize = server.cli(&["hlen", &key]).trim().parse().expect("hlen");
            assert_eq!(fields, kept, "after message {i}");
        }
    }

    #[tokio::test]
    async fn every_room_key_expires_with_the_room_and_destroy_leaves_nothing() {
        let (store, _bus, server) = redis(config()).await;
        let room_id = busy_room(&store, 60_000).await;
        let keys = keys_of(&server, &room_id);
        assert!(keys.len() >= 8, "{keys:?}");
        for key in &keys {
            assert!(
                key.contains(&format!("{{{room_id}}}")),
                "{key} has the room's hash tag"
            );
            let ttl: i64 = server.cli(&["pttl", key]).trim().parse().expect("pttl");
            assert!(
                ttl > 0 && ttl <= 60_000,
                "{key} expires with the room ({ttl} ms)"
            );
        }
        assert!(
            store
                .destroy_room(&room_id, CloseReason::Closed)
                .await
                .expect("destroy")
        );
        assert_eq!(keys_of(&server, &room_id), Vec::<String>::new());
        assert_eq!(
            server.cli(&["zscore", "eph:deadlines", &room_id]).trim(),
            ""
        );
    }

    /// An instance with a shorter grace (a rolling deploy that shortens it) disconnects a member
    /// that joined with a longer one: the room's schedule entry moves earlier with the deadline.
    #[tokio::test]
    async fn a_disconnect_moves_the_rooms_schedule_entry_earlier() {
        let (store, _bus, server) = redis(config()).await;
        let patient = StoreConfig {
            presence_grace_ms: 60_000,
            ..config()
        };
        let (patient, _) = Store::redis(&server.url(), patient)
            .await
            .expect("connects");
        let (room, _) = room(10, 600_000);
        patient.create_room(room.clone()).await.expect("create");
        let bob = join(&patient, &room.id, "bob", 1).await;
        let entry = || -> f64 {
            let score = server.cli(&["zscore", "eph:deadlines", &room.id]);
            score.trim().parse().expect("the room is scheduled")
        };
        assert!(entry() > (now_ms() + 50_000) as f64);
        let live = Live {
            room_id: room.id.as_str().into(),
            member_id: bob.id.as_str().into(),
            session: 1,
        };
        store.disconnect_members(&[live]).await.expect("disconnect");
        assert!(entry() <= (now_ms() + GRACE_MS) as f64);
    }

    /// Every due liveness entry goes, even one naming no current connection, so none keeps its
    /// room due forever; a member goes only when its current connection has no entry left.
    #[tokio::test]
    async fn a_sweep_drops_due_entries_and_only_members_left_without_one() {
        let (store, _bus, server, room) = redis_with_room().await;
        let bob = join(&store, &room.id, "bob", 1).await;
        let carol = join(&store, &room.id, "carol", 2).await;
        let alive = room_key(&room.id, "alive");
        // Due entries of connections no longer current: bob's current one (session 1) is
        // still ahead; carol's (session 2) is gone.
        let carol_now = format!("{}\n2", carol.id);
        server.cli(&["zrem", &alive, &carol_now]);
        let (bob_old, carol_old) = (format!("{}\n0", bob.id), format!("{}\n1", carol.id));
        server.cli(&[
            "zadd", &alive, "1", &bob_old, "1", &carol_old, "1", "ghost\n9",
        ]);
        server.cli(&["zadd", "eph:deadlines", "1", &room.id]);
        assert_eq!(store.sweep().await.expect("sweep"), 1);
        assert_eq!(
            server.cli(&["zrange", &alive, "0", "-1"]).trim(),
            format!("{}\n1", bob.id)
        );
        let view = store.room(&room.id).await.expect("read").expect("exists");
        let names: Vec<_> = view
            .members
            .iter()
            .map(|m| m.display_name.as_str())
            .collect();
        assert_eq!(names, ["bob"]);
        let next: u64 = server
            .cli(&["zscore", "eph:deadlines", &room.id])
            .trim()
            .parse()
            .expect("scheduled");
        assert!(next > now_ms(), "the room is no longer due");
    }

    /// One pass takes every due room and gives each its own next deadline: a room
    /// whose member fell due (next: its expiry), one with nothing due yet (next: its member's
    /// deadline) and one past its expiry (its entry goes).
    #[tokio::test]
    async fn one_sweep_reschedules_each_due_room_to_its_own_next_deadline() {
        let (store, _bus, server) = redis(config()).await;
        let [(stale, _), (fresh, _), (ended, _)] = [0; 3].map(|_| room(10, 60_000));
        for r in [&stale, &fresh, &ended] {
            store.create_room(r.clone()).await.expect("create");
        }
        let bob = join(&store, &stale.id, "bob", 1).await;
        let carol = join(&store, &fresh.id, "carol", 1).await;
        let carol_due = (now_ms() + 30_000).to_string();
        let (bob_entry, carol_entry) = (format!("{}\n1", bob.id), format!("{}\n1", carol.id));
        server.cli(&["zadd", &room_key(&stale.id, "alive"), "1", &bob_entry]);
        server.cli(&[
            "zadd",
            &room_key(&fresh.id, "alive"),
            &carol_due,
            &carol_entry,
        ]);
        server.cli(&["hset", &room_key(&ended.id, "meta"), "expires_at", "1"]);
        for r in [&stale, &fresh, &ended] {
            server.cli(&["zadd", "eph:deadlines", "1", &r.id]);
        }
        assert_eq!(store.sweep().await.expect("sweep"), 3);
        let scheduled = |room_id: &str| server.cli(&["zscore", "eph:deadlines", room_id]);
        assert_eq!(scheduled(&stale.id).trim(), stale.expires_at.to_string());
        assert_eq!(scheduled(&fresh.id).trim(), carol_due);
        assert_eq!(scheduled(&ended.id).trim(), "");
        assert_eq!(keys_of(&server, &ended.id), Vec::<String>::new());
        let view = store.room(&stale.id).await.expect("read").expect("exists");
        assert!(view.members.iter().all(|m| m.id != bob.id), "bob went");
    }

    /// A client's places for rooms: at most `max_rooms_per_client`, given back by every ending
    /// (here the owner leaving), and the holds name no room.
    #[tokio::test]
    async fn a_clients_rooms_are_capped_and_each_ending_gives_its_place_back() {
        let (store, _bus, server) = redis(config()).await;
        let mut rooms = Vec::new();
        for _ in 0..3 {
            let (room, _) = crate::helpers::room(10, 60_000);
            store
                .create_room_by(room.clone(), "192.0.2.7")
                .await
                .expect("create");
            rooms.push(room);
        }
        let (fourth, _) = crate::helpers::room(10, 60_000);
        assert!(matches!(
            store.create_room_by(fourth.clone(), "192.0.2.7").await,
            Err(store::Error::Refused(protocol::ErrorCode::RateLimited))
        ));
        assert_eq!(
            keys_of(&server, &fourth.id),
            Vec::<String>::new(),
            "not created"
        );
        let held = server.cli(&["zrange", "eph:held:192.0.2.7", "0", "-1"]);
        for room in &rooms {
            assert!(!held.contains(&room.id), "the holds name no room: {held}");
        }
        // The owner leaves a room that ends with its owner.
        let owner = claim_owner(&store, &rooms[0].id, "o", 1).await;
        store
            .release_member(&rooms[0].id, &owner.id)
            .await
            .expect("leave");
        assert_eq!(server.cli(&["zcard", "eph:held:192.0.2.7"]).trim(), "2");
        store
            .create_room_by(fourth, "192.0.2.7")
            .await
            .expect("its place is free");
        store
            .create_room(crate::helpers::room(10, 60_000).0)
            .await
            .expect("other clients are not held back");
    }

    /// A claim never leaves a member that no sweep comes for: the room's schedule entry moves
    /// before the claim runs, so when it cannot (here an ACL forbids writing the schedule, as a
    /// failure between the two steps would) there is no claim, rather than a ghost holding a
    /// name and a slot until the room expires.
    #[tokio::test]
    async fn a_claim_is_never_left_without_its_schedule() {
        let (store, _bus, server, room) = redis_with_room().await;
        server.cli(&[
            "acl",
            "setuser",
            "noschedule",
            "on",
            ">pw",
            "~eph:{*",
            "%R~eph:deadlines",
            "&*",
            "+@all",
        ]);
        let url = format!("redis://noschedule:pw@127.0.0.1:{}", server.port);
        let (limited, _) = Store::redis(&url, config()).await.expect("connects");
        let (claim, _) = by_name("bob", 1);
        assert!(matches!(
            limited.claim_membership(&room.id, claim).await,
            Err(store::Error::Unavailable(_))
        ));
        let members = server.cli(&["hlen", &room_key(&room.id, "members")]);
        assert_eq!(
            members.trim(),
            "0",
            "no member without its deadline scheduled"
        );
        // The same claim with the schedule writable: the entry is due by the member's deadline.
        let before = protocol::now_ms();
        let (claim, _) = by_name("bob", 1);
        store
            .claim_membership(&room.id, claim)
            .await
            .expect("claim");
        let due: u64 = server
            .cli(&["zscore", "eph:deadlines", &room.id])
            .trim()
            .parse()
            .expect("scheduled");
        assert!(
            due <= protocol::now_ms() + config().live_ms() && due >= before,
            "{due}"
        );
    }

    /// A Redis at its maxmemory refuses writes: each is `unavailable` and changes nothing (no
    /// message id is used up), ending a room still works (it frees memory), and once there is
    /// room again ids go on where they stopped.
    #[tokio::test]
    async fn a_full_redis_refuses_writes_whole_and_still_ends_rooms() {
        let (store, _bus, server, room) = redis_with_room().await;
        let bob = join(&store, &room.id, "bob", 1).await;
        let append =
            |said: &str| store.append_message(&room.id, &bob, post(text(said), None), RATE);
        assert_eq!(append("before").await.expect("append").frame.id, 1);
        let (other, _) = crate::helpers::room(10, 60_000);
        store.create_room(other.clone()).await.expect("create");
        server.cli(&["config", "set", "maxmemory-policy", "noeviction"]);
        server.cli(&["config", "set", "maxmemory", "1"]);
        for _ in 0..3 {
            assert!(matches!(
                append("full").await,
                Err(store::Error::Unavailable(_))
            ));
        }
        let (refused, _) = crate::helpers::room(10, 60_000);
        assert!(matches!(
            store.create_room(refused).await,
            Err(store::Error::Unavailable(_))
        ));
        assert!(
            store
                .destroy_room(&other.id, CloseReason::Closed)
                .await
                .expect("ending a room frees memory, so it works when full")
        );
        server.cli(&["config", "set", "maxmemory", "0"]);
        assert_eq!(
            append("after").await.expect("append").frame.id,
            2,
            "no id was used up"
        );
        let history = store.history_after(&room.id, 0, 10).await.expect("history");
        let texts: Vec<&str> = history
            .events
            .iter()
            .filter_map(|e| e.message().and_then(|m| m.text()))
            .collect();
        assert_eq!(texts, ["before", "after"]);
    }

    /// A read takes from Redis only the messages asked for, not the whole kept history: an
    /// entry outside the window is never read (here it could not even be parsed).
    #[tokio::test]
    async fn a_history_read_takes_only_the_window_asked_for() {
        let (store, _bus, server, room) = redis_with_room().await;
        let bob = join(&store, &room.id, "bob", 1).await;
        for i in 1..=4 {
            store
                .append_message(&room.id, &bob, post(text(format!("m{i}")), None), RATE)
                .await
                .expect("append");
        }
        server.cli(&["lset", &room_key(&room.id, "history"), "0", "not a message"]);
        let tail = store
            .history_after(&room.id, 3, 1)
            .await
            .expect("the tail alone is read");
        assert_eq!(tail.events.len(), 1);
        assert_eq!(tail.events[0].message().and_then(|m| m.text()), Some("m4"));
        assert!(
            store.history_after(&room.id, 0, 4).await.is_err(),
            "reading the broken entry does fail, so the read above did not touch it"
        );
    }

    /// Issuing a ticket reads no live one (expired ones are found by expiry order): with many
    /// outstanding tickets, one whose value could not even be parsed is never touched.
    #[tokio::test]
    async fn issuing_a_ticket_reads_no_live_ticket() {
        let (store, _bus, server, room) = redis_with_room().await;
        for i in 0..70 {
            let grant = store::Ticket {
                client: format!("c{i}"),
                ..owner_ticket(60_000)
            };
            store
                .issue_ticket(&room.id, TokenHash::of(&format!("t{i}")), grant)
                .await
                .expect("issue");
        }
        let tickets = room_key(&room.id, "tickets");
        server.cli(&["hset", &tickets, &TokenHash::of("t0").to_hex(), "garbage"]);
        let grant = store::Ticket {
            client: "late".into(),
            ..owner_ticket(60_000)
        };
        store
            .issue_ticket(&room.id, TokenHash::of("late"), grant)
            .await
            .expect("the 71st is issued without reading the others");
    }

    #[tokio::test]
    async fn liveness_refreshes_a_room_of_any_size() {
        let (store, _bus, server, room) = redis_with_room().await;
        // More members than one script's unpack takes (a few thousand values): written
        // directly, as joining them one by one would take long.
        let (state, alive) = (room_key(&room.id, "state"), room_key(&room.id, "alive"));
        let ids: Vec<String> = (0..5_000).map(|i| format!("m{i}")).collect();
        let mut hset = vec!["hset".to_owned(), state];
        let mut zadd = vec!["zadd".to_owned(), alive.clone()];
        for id in &ids {
            hset.extend([id.clone(), format!("7\nresume-{id}\nfold-{id}")]);
            zadd.extend(["1".to_owned(), format!("{id}\n7")]);
        }
        for command in [hset, zadd] {
            server.cli(&command.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let live: Vec<Live> = ids
            .iter()
            .map(|id| Live {
                room_id: Arc::from(room.id.as_str()),
                member_id: Arc::from(id.as_str()),
                session: 7,
            })
            .collect();
        store.touch_members(&live).await.expect("touch");
        let stale = server.cli(&["zcount", &alive, "-inf", "1"]);
        assert_eq!(stale.trim(), "0", "every member was refreshed");
    }

    /// A message's reply and this instance's own copy of it leave Redis in one write: the
    /// room's subscription lives on the RESP3 connection that runs the chat scripts, and the
    /// store holds only one other connection (the background work's).
    #[tokio::test]
    async fn subscriptions_share_the_command_connection() {
        let (store, mut bus, server, room) = redis_with_room().await;
        store.subscribe(&room.id).await.expect("subscribe");
        let bob = join(&store, &room.id, "bob", 1).await;
        delivered(&mut bus).await;
        store
            .append_message(&room.id, &bob, post(text("hi"), None), RATE)
            .await
            .expect("append");
        let events = published(&mut bus).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["text"], "hi");
        let list = server.cli(&["client", "list"]);
        let ours: Vec<&str> = list
            .lines()
            .filter(|line| !line.contains("cmd=client|list"))
            .collect();
        assert_eq!(ours.len(), 2, "{list}");
        let subscribed: Vec<&&str> = ours.iter().filter(|l| l.contains(" ssub=1 ")).collect();
        assert_eq!(subscribed.len(), 1, "{list}");
        assert!(
            subscribed[0].contains(" resp=3") && subscribed[0].contains(" cmd=evalsha "),
            "the subscribed connection ran the append: {list}"
        );
    }

    /// How a room may end.
    #[derive(Clone, Copy, Debug)]
    enum Ending {
        Expiry,
        Destroy,
        OwnerOffline,
    }

    /// Every way into a room that writes keys (a lone member's resume, the owner's second
    /// claim, a ticket, a message, a leave), then every way out: afterwards, and once the
    /// room's time is past, a SCAN finds nothing of it, and the schedule does not name it.
    #[tokio::test]
    async fn every_way_in_and_every_ending_leave_no_key_behind() {
        let (store, _bus, server) = redis(config()).await;
        for ending in [Ending::Expiry, Ending::Destroy, Ending::OwnerOffline] {
            for way in [
                "resume",
                "owner reclaim",
                "ticket",
                "message",
                "leave",
                "kick",
                "lock and move the end",
                "handover",
            ] {
                let (room, _) = room(10, 600);
                store
                    .create_room_by(room.clone(), "192.0.2.9")
                    .await
                    .expect("create");
                let owner = claim_owner(&store, &room.id, "o1", 1).await;
                let (bob, token) = join_resumable(&store, &room.id, "bob", 2).await;
                match way {
                    "resume" => {
                        // Bob alone in the liveness set: the resume empties and refills it.
                        store.release_member(&room.id, &bob.id).await.ok();
                        let (_, token) = join_resumable(&store, &room.id, "bobby", 3).await;
                        server.cli(&[
                            "zrem",
                            &room_key(&room.id, "alive"),
                            &format!(
                                "{}
1",
                                owner.id
                            ),
                        ]);
                        store
                            .resume_member(&room.id, &TokenHash::of(&token), 4)
                            .await
                            .expect("resume");
                    }
                    "owner reclaim" => {
                        store.release_member(&room.id, &bob.id).await.ok();
                        claim_owner(&store, &room.id, "o2", 5).await;
                    }
                    "ticket" => {
                        store
                            .issue_ticket(&room.id, TokenHash::of("t"), owner_ticket(60_000))
                            .await
                            .expect("ticket");
                    }
                    "message" => {
                        store
                            .append_message(&room.id, &bob, post(text("secret text"), None), RATE)
                            .await
                            .expect("append");
                    }
                    "kick" | "handover" => {
                        let change = match way {
                            "kick" => RoomChange::Kick {
                                member_id: bob.id.clone(),
                            },
                            _ => RoomChange::Handover {
                                member_id: bob.id.clone(),
                            },
                        };
                        store
                            .change_room(&room.id, Actor::Member(&owner.id), change)
                            .await
                            .expect("owner's change");
                    }
                    "lock and move the end" => {
                        let change = RoomChange::Settings {
                            locked: Some(true),
                            expires_at: Some(now_ms() + 650),
                        };
                        store
                            .change_room(&room.id, Actor::Member(&owner.id), change)
                            .await
                            .expect("owner's change");
                    }
                    _ => {
                        store
                            .release_member(&room.id, &bob.id)
                            .await
                            .expect("leave");
                        let _ = token;
                    }
                }
                match ending {
                    Ending::Expiry => {}
                    Ending::Destroy => {
                        store
                            .destroy_room(&room.id, CloseReason::Closed)
                            .await
                            .expect("destroy");
                    }
                    Ending::OwnerOffline => {
                        let live = Live {
                            room_id: room.id.as_str().into(),
                            member_id: owner.id.as_str().into(),
                            session: if way == "owner reclaim" { 5 } else { 1 },
                        };
                        store.disconnect_members(&[live]).await.expect("disconnect");
                    }
                }
                sleep_ms(700).await;
                store.sweep().await.expect("sweep");
                assert_eq!(
                    keys_of(&server, &room.id),
                    Vec::<String>::new(),
                    "{way}, then {ending:?}"
                );
                assert_eq!(
                    server.cli(&["zscore", "eph:deadlines", &room.id]).trim(),
                    "",
                    "{way}, then {ending:?}"
                );
                assert_eq!(
                    server.cli(&["zcard", "eph:held:192.0.2.9"]).trim(),
                    "0",
                    "{way}, then {ending:?}: its creator's hold is given back"
                );
            }
        }
    }

    /// A room whose owner moves its end later: every key, and its creator's hold, lives on
    /// until the new end (not the old), then goes.
    #[tokio::test]
    async fn a_room_given_more_time_keeps_every_key_and_its_hold_until_then() {
        let (store, _bus, server) = redis(config()).await;
        let (room, token) = room(10, 600);
        store
            .create_room_by(room.clone(), "192.0.2.7")
            .await
            .expect("create");
        let owner = claim_owner(&store, &room.id, "o", 1).await;
        let bob = join(&store, &room.id, "bob", 2).await;
        store
            .append_message(&room.id, &bob, post(text("hi"), None), RATE)
            .await
            .expect("append");
        let kick = RoomChange::Kick {
            member_id: bob.id.clone(),
        };
        store
            .change_room(&room.id, Actor::Member(&owner.id), kick)
            .await
            .expect("kick");
        let keys = keys_of(&server, &room.id);
        let end = now_ms() + 3_000;
        let change = RoomChange::Settings {
            locked: None,
            expires_at: Some(end),
        };
        store
            .change_room(&room.id, Actor::Token(&TokenHash::of(&token)), change)
            .await
            .expect("more time");
        let owner_live = [Live {
            room_id: room.id.as_str().into(),
            member_id: owner.id.as_str().into(),
            session: 1,
        }];
        for _ in 0..7 {
            sleep_ms(100).await;
            store.touch_members(&owner_live).await.expect("touch");
        }
        store.sweep().await.expect("sweep");
        assert_eq!(keys_of(&server, &room.id), keys, "past the old end");
        for key in &keys {
            let ttl: i64 = server.cli(&["pttl", key]).trim().parse().expect("pttl");
            assert!(ttl > 1_500, "{key} lives to the new end ({ttl} ms)");
        }
        let held = server.cli(&["zrange", "eph:held:192.0.2.7", "0", "-1", "withscores"]);
        assert_eq!(
            held.lines().nth(1),
            Some(end.to_string().as_str()),
            "{held}"
        );
        let ttl: i64 = server
            .cli(&["pttl", "eph:held:192.0.2.7"])
            .trim()
            .parse()
            .expect("pttl");
        assert!(ttl > 1_500, "the hold lives to the new end ({ttl} ms)");
        sleep_ms(2_400).await;
        store.sweep().await.expect("sweep");
        assert_eq!(keys_of(&server, &room.id), Vec::<String>::new());
        assert_eq!(server.cli(&["zcard", "eph:held:192.0.2.7"]).trim(), "0");
    }

    #[tokio::test]
    async fn an_expired_room_leaves_no_key_behind() {
        let (store, _bus, server) = redis(config()).await;
        let room_id = busy_room(&store, 400).await;
        sleep_ms(500).await;
        store.sweep().await.expect("sweep");
        assert_eq!(keys_of(&server, &room_id), Vec::<String>::new());
        assert_eq!(
            server.cli(&["zscore", "eph:deadlines", &room_id]).trim(),
            ""
        );
    }
}

/// The memory backend's bus is bounded: events nobody reads stop at its capacity and the next
/// item says some were dropped (`Resync`), rather than the store's memory growing. (On Redis the
/// same bound holds, with fred's own buffer of as many again in front of it; overflowing both
/// takes over 131,000 events, too slow for this suite.)
mod memory_bus {
    use crate::helpers::*;
    use protocol::frames::{RelayFrame, TypingFrame};
    use store::{BUS_CAPACITY, BusItem};

    #[tokio::test]
    async fn a_bus_nobody_reads_asks_for_a_resync_instead_of_growing() {
        let (store, mut bus) = memory(config());
        let (room, _) = room(10, 60_000);
        store.create_room(room.clone()).await.expect("create");
        store.subscribe(&room.id).await.expect("subscribe");
        let bob = join(&store, &room.id, "bob", 1).await;
        let frame = RelayFrame::Typing(TypingFrame {
            member_id: bob.id.clone(),
            display_name: "bob".into(),
            timestamp: "t".into(),
        });
        for _ in 0..BUS_CAPACITY + 100 {
            store.relay(&room.id, &frame).await.expect("relay");
        }
        let mut events = 0;
        while let Ok(BusItem::Event(..)) = bus.try_recv() {
            events += 1;
        }
        assert_eq!(
            events, BUS_CAPACITY,
            "the bus held as much as it may, no more"
        );
        // The next event finds room, and a Resync goes ahead of it.
        store.relay(&room.id, &frame).await.expect("relay");
        assert!(matches!(bus.try_recv(), Ok(BusItem::Resync)));
        assert!(matches!(bus.try_recv(), Ok(BusItem::Event(..))));
    }
}
