//! The conformance cases: the store's semantics, independent of the backend.

use crate::helpers::*;
use protocol::frames::{RelayFrame, ServerFrame, TypingFrame};
use protocol::{CloseReason, ErrorCode, Role};
use std::sync::Arc;
use std::time::Duration;
use store::secret::TokenHash;
use store::{
    AttemptLimits, Bus, Credential, Error, Limit, Live, Member, Rate, Room, Stale, Store, Ticket,
};
use tokio::time::{Instant, sleep_until};

mod conversation;
mod owner;
pub use self::conversation::*;
pub use self::owner::*;

const RATE: Rate = Rate {
    per_second: 1000,
    burst: 1000,
};

fn refused<T: std::fmt::Debug>(result: store::Result<T>) -> ErrorCode {
    match result {
        Err(Error::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ghost() -> store::Member {
    store::Member {
        id: "ghost".into(),
        display_name: "ghost".into(),
        role: Role::Member,
        connected_at: 0,
    }
}

fn live(room: &str, member: &str, session: u64) -> Live {
    Live {
        room_id: Arc::from(room),
        member_id: Arc::from(member),
        session,
    }
}

pub async fn rooms_are_created_read_and_unknown_ones_are_absent((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let view = store.room(&room.id).await.expect("read").expect("exists");
    assert_eq!(view.room, room);
    assert!(view.members.is_empty());
    assert_eq!(view.last_id, 0);
    let (mut sealed, _) = self::room(10, 60_000);
    sealed.sealing = protocol::rest::Sealing {
        encrypted: true,
        name_ciphertext: Some("n".repeat(40)),
        key_check: Some("k".repeat(43)),
    };
    store.create_room(sealed.clone()).await.expect("create");
    let view = store.room(&sealed.id).await.expect("read").expect("exists");
    assert_eq!(
        view.room, sealed,
        "an encrypted room's name and key check are kept"
    );
    assert!(store.room("nope").await.expect("read").is_none());
    assert_eq!(
        refused(store.claim_membership("nope", by_name("bob", 1).0).await),
        ErrorCode::RoomNotFound
    );
}

pub async fn names_are_unique_case_insensitively_and_the_owner_name_is_reserved(
    (store, _): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let joined = store
        .claim_membership(&room.id, by_name("Bob", 1).0)
        .await
        .expect("bob joins");
    assert_eq!(joined.member.display_name, "Bob");
    assert_eq!(joined.member.role, Role::Member);
    assert_eq!(joined.view.members.len(), 1);
    assert_eq!(
        refused(store.claim_membership(&room.id, by_name("bOB", 2).0).await),
        ErrorCode::NameTaken
    );
    assert_eq!(
        refused(
            store
                .claim_membership(&room.id, by_name("ALICE", 3).0)
                .await
        ),
        ErrorCode::NameTaken
    );
}

/// Unique beyond ASCII: full case folding, NFKC and the confusable skeleton, the owner's
/// reserved name included (the helper rooms' owner is `alice`).
pub async fn names_that_look_alike_are_one_name((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    for (first, second, session) in [
        ("Straße", "STRASSE", 1),
        ("\u{c9}mile", "E\u{301}MILE", 3),
        ("paypal", "p\u{430}yp\u{430}l", 5),
    ] {
        store
            .claim_membership(&room.id, by_name(first, session).0)
            .await
            .expect("the first spelling joins");
        assert_eq!(
            refused(
                store
                    .claim_membership(&room.id, by_name(second, session + 1).0)
                    .await
            ),
            ErrorCode::NameTaken,
            "{second:?} after {first:?}"
        );
    }
    for owner_lookalike in ["\u{430}lice", "ＡＬＩＣＥ"] {
        assert_eq!(
            refused(
                store
                    .claim_membership(&room.id, by_name(owner_lookalike, 9).0)
                    .await
            ),
            ErrorCode::NameTaken,
            "{owner_lookalike:?} is the owner's"
        );
    }
}

pub async fn capacity_counts_members_and_always_keeps_the_owner_slot((store, _): (Store, Bus)) {
    let (room, _) = room(3, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store
        .claim_membership(&room.id, by_name("b", 1).0)
        .await
        .expect("1st");
    store
        .claim_membership(&room.id, by_name("c", 2).0)
        .await
        .expect("2nd");
    assert_eq!(
        refused(store.claim_membership(&room.id, by_name("d", 3).0).await),
        ErrorCode::RoomFull
    );
    let ticket = store::secret::new_token();
    store
        .issue_ticket(&room.id, TokenHash::of(&ticket), owner_ticket(60_000))
        .await
        .expect("ticket");
    let owner = store
        .claim_membership(&room.id, by_ticket(&ticket, 4).0)
        .await
        .expect("the owner always fits");
    assert_eq!(owner.member.role, Role::Owner);
    assert_eq!(owner.member.display_name, "alice");
    assert_eq!(owner.view.members.len(), 3);
    assert!(owner.view.is_full());
}

pub async fn password_rooms_refuse_joins_by_name((store, _): (Store, Bus)) {
    let (mut room, _) = room(10, 60_000);
    room.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    store.create_room(room.clone()).await.expect("create");
    assert_eq!(
        refused(store.claim_membership(&room.id, by_name("bob", 1).0).await),
        ErrorCode::PasswordRequired
    );
}

pub async fn tickets_are_single_use_and_expire((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let ticket = "ticket-1";
    let grant = Ticket {
        display_name: "bob".into(),
        role: Role::Member,
        expires_at: protocol::now_ms() + 60_000,
        client: "1.1.1.1".into(),
        resume: None,
    };
    store
        .issue_ticket(&room.id, TokenHash::of(ticket), grant)
        .await
        .expect("issue");
    let joined = store
        .claim_membership(&room.id, by_ticket(ticket, 1).0)
        .await
        .expect("redeem");
    assert_eq!(joined.member.display_name, "bob");
    assert_eq!(
        refused(
            store
                .claim_membership(&room.id, by_ticket(ticket, 2).0)
                .await
        ),
        ErrorCode::Unauthorized
    );

    let short = Ticket {
        display_name: "carol".into(),
        role: Role::Member,
        expires_at: protocol::now_ms() + 50,
        client: "1.1.1.1".into(),
        resume: None,
    };
    store
        .issue_ticket(&room.id, TokenHash::of("ticket-2"), short)
        .await
        .expect("issue");
    sleep_ms(100).await;
    assert_eq!(
        refused(
            store
                .claim_membership(&room.id, by_ticket("ticket-2", 3).0)
                .await
        ),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        refused(
            store
                .issue_ticket("nope", TokenHash::of("x"), owner_ticket(1000))
                .await
        ),
        ErrorCode::RoomNotFound
    );
}

pub async fn an_owner_claim_attaches_to_the_existing_owner((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    for ticket in ["t1", "t2"] {
        store
            .issue_ticket(&room.id, TokenHash::of(ticket), owner_ticket(60_000))
            .await
            .expect("issue");
    }
    let (claim, first_token) = by_ticket("t1", 1);
    let first = store
        .claim_membership(&room.id, claim)
        .await
        .expect("first");
    published(&mut bus).await;
    let (claim, second_token) = by_ticket("t2", 2);
    let second = store
        .claim_membership(&room.id, claim)
        .await
        .expect("second");
    assert_eq!(first.member.id, second.member.id);
    assert_eq!(
        first.member.id, room.owner_member_id,
        "the owner is the member id fixed at creation"
    );
    assert_eq!(second.view.members.len(), 1);
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "replaced");
    assert_eq!(events[0]["session"], 2);
    // The newest claim's resume token is the member's now.
    assert!(
        store
            .resume_member(&room.id, &TokenHash::of(&second_token), 3)
            .await
            .is_ok()
    );
    assert_eq!(
        refused(
            store
                .resume_member(&room.id, &TokenHash::of(&first_token), 4)
                .await
        ),
        ErrorCode::Unauthorized
    );
    // Only the newest session keeps the owner online: the older ones refresh nothing.
    let owner = &first.member.id;
    let batch = [live(&room.id, owner, 3), live(&room.id, owner, 1)];
    let stale = keep_alive(&store, &batch, 4).await;
    assert!(
        stale.iter().all(|s| s == &[(1, Stale::Replaced)]),
        "{stale:?}"
    );
    let view = store.room(&room.id).await.expect("read").expect("exists");
    assert_eq!(view.members.len(), 1);
}

pub async fn resume_tokens_work_only_for_their_member_in_their_room(
    (store, mut bus): (Store, Bus),
) {
    let (a, _) = room(10, 60_000);
    let (b, _) = room(10, 60_000);
    store.create_room(a.clone()).await.expect("create");
    store.create_room(b.clone()).await.expect("create");
    store.subscribe(&a.id).await.expect("subscribe");
    let (bob, token) = join_resumable(&store, &a.id, "bob", 1).await;
    published(&mut bus).await;
    let resumed = store
        .resume_member(&a.id, &TokenHash::of(&token), 2)
        .await
        .expect("resume");
    assert_eq!(resumed.member, bob);
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "replaced");
    assert_eq!(events[0]["member_id"], bob.id.as_str());
    assert_eq!(
        refused(store.resume_member(&b.id, &TokenHash::of(&token), 3).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        refused(
            store
                .resume_member(&a.id, &TokenHash::of("forged"), 3)
                .await
        ),
        ErrorCode::Unauthorized
    );
}

pub async fn bearer_tokens_authenticate_owner_and_members((store, _): (Store, Bus)) {
    let (room, owner_token) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let (bob, token) = join_resumable(&store, &room.id, "bob", 1).await;
    assert_eq!(
        store
            .authenticate(&room.id, &TokenHash::of(&owner_token))
            .await
            .expect("auth"),
        Some(Credential::Owner)
    );
    assert_eq!(
        store
            .authenticate(&room.id, &TokenHash::of(&token))
            .await
            .expect("auth"),
        Some(Credential::Member(bob))
    );
    assert_eq!(
        store
            .authenticate(&room.id, &TokenHash::of("forged"))
            .await
            .expect("auth"),
        None
    );
    assert_eq!(
        refused(
            store
                .authenticate("nope", &TokenHash::of(&owner_token))
                .await
        ),
        ErrorCode::RoomNotFound
    );
}

pub async fn messages_get_sequential_ids_and_history_keeps_the_newest(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let bob = join(&store, &room.id, "bob", 1).await;
    published(&mut bus).await;
    for i in 1..=7u64 {
        let m = store
            .append_message(
                &room.id,
                &bob,
                post(text(format!("m{i}")), Some(format!("c{i}"))),
                RATE,
            )
            .await
            .expect("append")
            .frame;
        assert_eq!(m.id, i);
        assert_eq!(m.display_name, "bob");
        assert_eq!(m.member_id, m.connection_id);
    }
    let events = published(&mut bus).await;
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        (1..=7).collect::<Vec<_>>(),
        "one publish per message, in order"
    );
    assert_eq!(events[6]["type"], "message");
    assert_eq!(events[6]["client_id"], "c7");
    let history = store
        .history_after(&room.id, 0, 100)
        .await
        .expect("history");
    assert_eq!(history.last_id, 7);
    assert_eq!(
        history.events.iter().map(|m| m.id()).collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7]
    );
    let page = store.history_after(&room.id, 4, 2).await.expect("history");
    assert_eq!(
        page.events.iter().map(|m| m.id()).collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert!(page.complete);
    assert_eq!(
        refused(
            store
                .append_message(&room.id, &ghost(), post(text("x"), None), RATE)
                .await
        ),
        ErrorCode::Unauthorized
    );
}

/// History keeps the newest messages that fit in its bytes (their frames' JSON), fewer than
/// its count when they are long, and always the newest one, however long.
pub async fn history_is_bounded_in_bytes_too((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, &room.id, "bob", 1).await;
    let mut sizes = Vec::new();
    for i in 0..6 {
        let m = store
            .append_message(
                &room.id,
                &bob,
                post(text(format!("{i}{}", "x".repeat(600))), None),
                RATE,
            )
            .await
            .expect("append")
            .frame;
        sizes.push(
            serde_json::to_string(&ServerFrame::Message(m))
                .expect("json")
                .len(),
        );
    }
    // The newest messages whose sizes add up to at most the bound.
    let mut fit = 0;
    let mut total = 0;
    for size in sizes.iter().rev() {
        total += size;
        if total > HISTORY_BYTES {
            break;
        }
        fit += 1;
    }
    assert!(
        (1..HISTORY).contains(&fit),
        "the test's messages overflow the bytes first"
    );
    // The ids of the whole kept history, and whether it reaches back to the first message.
    let kept = || async {
        let h = store
            .history_after(&room.id, 0, 100)
            .await
            .expect("history");
        (
            h.events.iter().map(|m| m.id()).collect::<Vec<u64>>(),
            h.complete,
        )
    };
    let (ids, complete) = kept().await;
    assert_eq!(ids, ((7 - fit as u64)..=6).collect::<Vec<_>>());
    assert!(!complete, "what was dropped for its size is a gap");
    store
        .append_message(
            &room.id,
            &bob,
            post(text("y".repeat(HISTORY_BYTES * 2)), None),
            RATE,
        )
        .await
        .expect("append");
    assert_eq!(kept().await.0, vec![7], "the newest is kept, however long");
    for i in 8..=12 {
        store
            .append_message(&room.id, &bob, post(text(format!("m{i}")), None), RATE)
            .await
            .expect("append");
    }
    assert_eq!(
        kept().await.0,
        vec![8, 9, 10, 11, 12],
        "and short ones fill it again"
    );
}

/// History reads the window asked for, wherever it lies against what is kept.
pub async fn history_reads_exactly_the_window_asked_for((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, &room.id, "bob", 1).await;
    let total = HISTORY as u64 + 7;
    for i in 1..=total {
        store
            .append_message(&room.id, &bob, post(text(format!("m{i}")), None), RATE)
            .await
            .expect("append");
    }
    let first_kept = total - HISTORY as u64 + 1;
    for (after, limit, ids, complete) in [
        (0, 100, (first_kept..=total).collect::<Vec<_>>(), false),
        (first_kept - 1, 2, vec![first_kept, first_kept + 1], true),
        (first_kept + 1, 1, vec![first_kept + 2], true),
        (
            first_kept - 2,
            3,
            (first_kept..first_kept + 3).collect(),
            false,
        ),
        (total - 1, 100, vec![total], true),
        (total, 100, vec![], true),
        (total + 50, 1, vec![], true),
        (u64::MAX / 2, 1, vec![], true),
    ] {
        let history = store
            .history_after(&room.id, after, limit)
            .await
            .expect("history");
        let got: Vec<u64> = history.events.iter().map(|m| m.id()).collect();
        assert_eq!(got, ids, "after {after}, at most {limit}");
        assert_eq!(history.last_id, total);
        assert_eq!(history.complete, complete, "after {after}, at most {limit}");
        for m in &history.events {
            let m = m.message().expect("only messages were posted");
            assert_eq!(m.text(), Some(format!("m{}", m.id).as_str()));
        }
    }
}

pub async fn history_says_when_it_no_longer_covers_a_gap((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    assert!(
        store
            .history_after(&room.id, 0, 10)
            .await
            .expect("history")
            .complete
    );
    let bob = join(&store, &room.id, "bob", 1).await;
    for _ in 0..7 {
        store
            .append_message(&room.id, &bob, post(text("x"), None), RATE)
            .await
            .expect("append");
    }
    assert!(
        !store
            .history_after(&room.id, 0, 10)
            .await
            .expect("history")
            .complete
    );
    assert!(
        !store
            .history_after(&room.id, 1, 10)
            .await
            .expect("history")
            .complete
    );
    assert!(
        store
            .history_after(&room.id, 2, 10)
            .await
            .expect("history")
            .complete
    );
    let ahead = store
        .history_after(&room.id, 99, 10)
        .await
        .expect("history");
    assert!(ahead.complete && ahead.events.is_empty());
}

pub async fn messages_are_rate_limited_per_member((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, &room.id, "bob", 1).await;
    let carol = join(&store, &room.id, "carol", 2).await;
    let rate = Rate {
        per_second: 10,
        burst: 3,
    };
    for _ in 0..3 {
        store
            .append_message(&room.id, &bob, post(text("x"), None), rate)
            .await
            .expect("within the burst");
    }
    assert_eq!(
        refused(
            store
                .append_message(&room.id, &bob, post(text("x"), None), rate)
                .await
        ),
        ErrorCode::RateLimited
    );
    store
        .append_message(&room.id, &carol, post(text("x"), None), rate)
        .await
        .expect("others are not limited");
    sleep_ms(150).await;
    store
        .append_message(&room.id, &bob, post(text("x"), None), rate)
        .await
        .expect("refilled");
    assert_eq!(
        store
            .history_after(&room.id, 0, 10)
            .await
            .expect("history")
            .last_id,
        5,
        "refusals take no id"
    );
}

/// For `rounds` refresh periods: refreshes `live`, then sweeps. Returns each round's stale
/// reports.
async fn keep_alive(store: &Store, live: &[Live], rounds: usize) -> Vec<Vec<(usize, Stale)>> {
    let mut stale = Vec::new();
    for _ in 0..rounds {
        sleep_ms(REFRESH_MS).await;
        stale.push(store.touch_members(live).await.expect("touch"));
        store.sweep().await.expect("sweep");
    }
    stale
}

pub async fn a_member_without_a_live_connection_goes_offline_after_the_grace(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let bob = join(&store, &room.id, "bob", 1).await;
    let carol = join(&store, &room.id, "carol", 2).await;
    published(&mut bus).await;
    // Bob's connection keeps touching him; carol's dropped. In the same batch, a touch from a
    // session that is not carol's and one for a member that does not exist change nothing, and
    // are reported stale.
    store
        .disconnect_members(&[live(&room.id, &carol.id, 2)])
        .await
        .expect("disconnect");
    let batch = [
        live(&room.id, &carol.id, 99),
        live(&room.id, &bob.id, 1),
        live(&room.id, &ghost().id, 3),
    ];
    let stale = keep_alive(&store, &batch, 4).await;
    assert_eq!(stale[0], [(0, Stale::Replaced), (2, Stale::Gone)]);
    assert_eq!(
        stale[3],
        [(0, Stale::Gone), (2, Stale::Gone)],
        "carol's grace ran out"
    );
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(events[0]["display_name"], "carol");
    assert_eq!(events[0]["online_count"], 1);
    let view = store.room(&room.id).await.expect("read").expect("exists");
    assert_eq!(
        view.members
            .iter()
            .map(|m| m.display_name.as_str())
            .collect::<Vec<_>>(),
        vec!["bob"]
    );
    store.sweep().await.expect("sweep");
    assert!(
        published(&mut bus).await.is_empty(),
        "user_offline comes once"
    );
    assert_eq!(
        refused(
            store
                .append_message(&room.id, &carol, post(text("x"), None), RATE)
                .await
        ),
        ErrorCode::Unauthorized
    );
}

/// A member whose instance dies starts no grace: its refreshes just stop. The last one's
/// deadline still leaves it the whole grace, and it goes within a refresh period after that.
pub async fn a_member_whose_refreshes_stop_unannounced_keeps_the_whole_grace(
    (store, _): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, &room.id, "bob", 1).await;
    let before = Instant::now();
    store
        .touch_members(&[live(&room.id, &bob.id, 1)])
        .await
        .expect("touch");
    let after = Instant::now();
    let ms = Duration::from_millis;
    assert_eq!(
        online_after_sweep(&store, &room.id, before + ms(GRACE_MS + 50)).await,
        1,
        "online for the whole grace after the last refresh"
    );
    assert_eq!(
        online_after_sweep(&store, &room.id, after + ms(GRACE_MS + REFRESH_MS + 50)).await,
        0,
        "gone a refresh period later"
    );
}

/// How many members are online after a sweep at `at`.
async fn online_after_sweep(store: &Store, room_id: &str, at: Instant) -> usize {
    sleep_until(at).await;
    store.sweep().await.expect("sweep");
    let view = store.room(room_id).await.expect("read").expect("exists");
    view.members.len()
}

/// Rooms `a` with bob (session 1) and `b` with carol (2) and dave (3), and a room destroyed
/// under erin (4); all subscribed.
async fn spread(store: &Store) -> ([Room; 3], [Member; 4]) {
    let (a, _) = room(10, 60_000);
    let (b, _) = room(10, 60_000);
    let (gone, _) = room(10, 60_000);
    for r in [&a, &b, &gone] {
        store.create_room(r.clone()).await.expect("create");
        store.subscribe(&r.id).await.expect("subscribe");
    }
    let bob = join(store, &a.id, "bob", 1).await;
    let carol = join(store, &b.id, "carol", 2).await;
    let dave = join(store, &b.id, "dave", 3).await;
    let erin = join(store, &gone.id, "erin", 4).await;
    store
        .destroy_room(&gone.id, CloseReason::Closed)
        .await
        .expect("destroy");
    ([a, b, gone], [bob, carol, dave, erin])
}

/// One refresh covers several rooms (its scripts run together): each stale member is reported
/// at its own position, whichever room it is in.
pub async fn one_refresh_spans_rooms_and_reports_each_stale_member_in_place(
    (store, _): (Store, Bus),
) {
    let ([a, b, gone], [bob, carol, dave, erin]) = spread(&store).await;
    let batch = [
        live(&b.id, &carol.id, 2),
        live(&a.id, &bob.id, 7),
        live(&gone.id, &erin.id, 4),
        live(&b.id, &ghost().id, 5),
        live(&a.id, &bob.id, 1),
        live(&b.id, &dave.id, 3),
    ];
    assert_eq!(
        store.touch_members(&batch).await.expect("touch"),
        [(1, Stale::Replaced), (2, Stale::RoomGone), (3, Stale::Gone)]
    );
}

/// One disconnect batch covers several rooms: each member it holds goes offline after the
/// grace (every room's schedule entry moves), and entries that are stale change nothing.
pub async fn one_disconnect_batch_starts_each_members_grace_across_rooms(
    (store, mut bus): (Store, Bus),
) {
    let ([a, b, gone], [bob, carol, dave, erin]) = spread(&store).await;
    published(&mut bus).await;
    let batch = [
        live(&a.id, &bob.id, 1),
        live(&b.id, &dave.id, 9),
        live(&gone.id, &erin.id, 4),
        live(&b.id, &carol.id, 2),
        live(&b.id, &ghost().id, 5),
    ];
    store.disconnect_members(&batch).await.expect("disconnect");
    store.sweep().await.expect("sweep");
    assert!(
        published(&mut bus).await.is_empty(),
        "nothing before the grace ends"
    );
    keep_alive(&store, &[live(&b.id, &dave.id, 3)], 3).await;
    let mut offline: Vec<_> = published(&mut bus)
        .await
        .iter()
        .map(|e| format!("{} {}", e["event"], e["display_name"]))
        .collect();
    offline.sort();
    assert_eq!(
        offline,
        [r#""user_offline" "bob""#, r#""user_offline" "carol""#]
    );
}

pub async fn a_disconnect_from_a_replaced_session_changes_nothing((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let (bob, token) = join_resumable(&store, &room.id, "bob", 1).await;
    store
        .resume_member(&room.id, &TokenHash::of(&token), 2)
        .await
        .expect("resume");
    // The old session's disconnect arrives late; the new one stays live by touching.
    store
        .disconnect_members(&[live(&room.id, &bob.id, 1)])
        .await
        .expect("disconnect");
    store
        .touch_members(&[live(&room.id, &bob.id, 1)])
        .await
        .expect("stale touch is ignored");
    published(&mut bus).await;
    keep_alive(&store, &[live(&room.id, &bob.id, 2)], 4).await;
    assert!(published(&mut bus).await.is_empty());
    assert_eq!(
        store
            .room(&room.id)
            .await
            .expect("read")
            .expect("exists")
            .members
            .len(),
        1
    );
}

pub async fn the_owner_going_offline_destroys_a_room_that_says_so((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let owner = claim_owner(&store, &room.id, "t", 1).await;
    let bob = join(&store, &room.id, "bob", 2).await;
    published(&mut bus).await;
    store
        .disconnect_members(&[live(&room.id, &owner.id, 1)])
        .await
        .expect("disconnect");
    store.sweep().await.expect("sweep");
    assert!(
        published(&mut bus).await.is_empty(),
        "nothing before the grace ends"
    );
    sleep_ms(GRACE_MS + 50).await;
    store
        .touch_members(&[live(&room.id, &bob.id, 2)])
        .await
        .expect("touch");
    store.sweep().await.expect("sweep");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(events[1]["event"], "room_closed");
    assert_eq!(events[1]["reason"], "owner_offline");
    assert!(store.room(&room.id).await.expect("read").is_none());
}

pub async fn the_owner_leaving_closes_a_room_that_ends_with_its_owner(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let owner = claim_owner(&store, &room.id, "t", 1).await;
    join(&store, &room.id, "bob", 2).await;
    published(&mut bus).await;
    store
        .release_member(&room.id, &owner.id)
        .await
        .expect("release");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(
        events[1]["reason"], "closed",
        "an owner who chose to leave closed the room: it did not go offline"
    );
    assert!(store.room(&room.id).await.expect("read").is_none());
}

pub async fn rooms_expire_at_their_deadline((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 600);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    store
        .claim_membership(&room.id, by_name("bob", 1).0)
        .await
        .expect("join");
    published(&mut bus).await;
    store.sweep().await.expect("sweep");
    assert!(store.room(&room.id).await.expect("read").is_some());
    sleep_ms(650).await;
    store.sweep().await.expect("sweep");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "room_closed");
    assert_eq!(events[0]["reason"], "expired");
    assert!(store.room(&room.id).await.expect("read").is_none());
    assert_eq!(
        refused(store.history_after(&room.id, 0, 10).await),
        ErrorCode::RoomNotFound
    );
}

pub async fn destroy_deletes_everything_and_publishes_room_closed_once(
    (store, mut bus): (Store, Bus),
) {
    let (room, owner_token) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let bob = join(&store, &room.id, "bob", 1).await;
    store
        .append_message(&room.id, &bob, post(text("secret"), None), RATE)
        .await
        .expect("append");
    store
        .issue_ticket(&room.id, TokenHash::of("t"), owner_ticket(60_000))
        .await
        .expect("ticket");
    published(&mut bus).await;
    assert!(
        store
            .destroy_room(&room.id, CloseReason::Closed)
            .await
            .expect("destroy")
    );
    assert!(
        !store
            .destroy_room(&room.id, CloseReason::Closed)
            .await
            .expect("destroy")
    );
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "closed");
    assert!(store.room(&room.id).await.expect("read").is_none());
    assert_eq!(
        refused(
            store
                .authenticate(&room.id, &TokenHash::of(&owner_token))
                .await
        ),
        ErrorCode::RoomNotFound
    );
    assert_eq!(
        refused(store.claim_membership(&room.id, by_ticket("t", 2).0).await),
        ErrorCode::RoomNotFound
    );
    // A refresh of its members (whose `room_closed` an instance may have missed) says so.
    assert_eq!(
        store
            .touch_members(&[live(&room.id, &bob.id, 1)])
            .await
            .expect("touch"),
        [(0, Stale::RoomGone)]
    );
}

pub async fn release_is_immediate((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let bob = join(&store, &room.id, "bob", 1).await;
    store
        .append_message(&room.id, &bob, post(text("before"), None), RATE)
        .await
        .expect("a member sends");
    published(&mut bus).await;
    store
        .release_member(&room.id, &bob.id)
        .await
        .expect("release");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(events[0]["online_count"], 0);
    assert_eq!(
        refused(
            store
                .append_message(&room.id, &bob, post(text("after"), None), RATE)
                .await
        ),
        ErrorCode::Unauthorized,
        "a member who has left sends nothing"
    );
    store
        .claim_membership(&room.id, by_name("bob", 2).0)
        .await
        .expect("the name is free again");
}

pub async fn rate_counters_use_fixed_windows((store, _): (Store, Bus)) {
    for _ in 0..3 {
        assert_eq!(
            store.rate_hit("k", 3, 200).await.expect("hit"),
            Limit::Within
        );
    }
    let over = store.rate_hit("k", 3, 200).await.expect("hit");
    assert!(
        matches!(over, Limit::Reached(ms) if ms > 0 && ms <= 200),
        "over the limit until the window ends: {over:?}"
    );
    assert_eq!(
        store.rate_hit("other", 3, 200).await.expect("hit"),
        Limit::Within,
        "keys are independent"
    );
    sleep_ms(250).await;
    assert_eq!(
        store.rate_hit("k", 3, 200).await.expect("hit"),
        Limit::Within,
        "a new window"
    );
}

pub async fn wrong_passwords_are_counted_per_client_in_the_room((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let limits = AttemptLimits {
        per_client: 2,
        per_room: 3,
        window_ms: 200,
    };
    let reserve = |client: &'static str| store.reserve_password_attempt(&room.id, client, limits);
    for _ in 0..2 {
        assert_eq!(reserve("1.1.1.1").await.expect("reserve"), Limit::Within);
    }
    let over = reserve("1.1.1.1").await.expect("reserve");
    assert!(
        matches!(over, Limit::Reached(ms) if ms > 0 && ms <= 200),
        "no attempts left until the window ends: {over:?}"
    );
    // A right password gives its attempt back.
    store
        .refund_password_attempt(&room.id, "1.1.1.1")
        .await
        .expect("refund");
    assert_eq!(reserve("1.1.1.1").await.expect("reserve"), Limit::Within);
    // Every client together: the room's count is full at 3 (two of 1.1.1.1's, one other).
    assert_eq!(reserve("2.2.2.2").await.expect("reserve"), Limit::Within);
    assert!(
        matches!(
            reserve("3.3.3.3").await.expect("reserve"),
            Limit::Reached(_)
        ),
        "the room's own limit holds across clients"
    );
    sleep_ms(250).await;
    assert_eq!(
        reserve("1.1.1.1").await.expect("reserve"),
        Limit::Within,
        "a new window"
    );
    assert_eq!(
        refused(
            store
                .reserve_password_attempt("nope", "1.1.1.1", limits)
                .await
        ),
        ErrorCode::RoomNotFound
    );
}

/// Parallel reservations cannot overrun the limit: exactly `per_client` of them are let in.
pub async fn parallel_password_attempts_never_exceed_the_limit((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let limits = AttemptLimits {
        per_client: 10,
        per_room: 100,
        window_ms: 60_000,
    };
    let tries = (0..60).map(|_| store.reserve_password_attempt(&room.id, "1.1.1.1", limits));
    let answers = futures_util::future::join_all(tries).await;
    let within = answers
        .iter()
        .filter(|a| matches!(a, Ok(Limit::Within)))
        .count();
    assert_eq!(within, 10, "{answers:?}");
}

pub async fn outstanding_tickets_are_capped_per_room((store, _): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    for i in 0..store::MAX_TICKETS_PER_ROOM {
        let grant = Ticket {
            display_name: format!("u{i}"),
            role: Role::Member,
            expires_at: protocol::now_ms() + 60_000,
            client: format!("client-{i}"),
            resume: None,
        };
        store
            .issue_ticket(&room.id, TokenHash::of(&i.to_string()), grant)
            .await
            .expect("issue");
    }
    let grant = Ticket {
        display_name: "late".into(),
        role: Role::Member,
        expires_at: protocol::now_ms() + 60_000,
        client: "1.1.1.1".into(),
        resume: None,
    };
    assert_eq!(
        refused(
            store
                .issue_ticket(&room.id, TokenHash::of("late"), grant)
                .await
        ),
        ErrorCode::RateLimited
    );
}

/// One client holds at most MAX_TICKETS_PER_CLIENT of a room's outstanding tickets; redeeming
/// or outliving one gives its place back, and other clients are not affected.
pub async fn outstanding_tickets_are_capped_per_client((store, _): (Store, Bus)) {
    let (room, _) = room(100, 60_000);
    store.create_room(room.clone()).await.expect("create");
    let grant = |name: String, client: &str, ttl: u64| Ticket {
        display_name: name,
        role: Role::Member,
        expires_at: protocol::now_ms() + ttl,
        client: client.into(),
        resume: None,
    };
    let cap = store::MAX_TICKETS_PER_CLIENT;
    for i in 0..cap - 1 {
        store
            .issue_ticket(
                &room.id,
                TokenHash::of(&format!("a{i}")),
                grant(format!("a{i}"), "A", 60_000),
            )
            .await
            .expect("issue");
    }
    // The last place goes to a ticket that expires at once.
    store
        .issue_ticket(
            &room.id,
            TokenHash::of("short"),
            grant("short".into(), "A", 100),
        )
        .await
        .expect("issue");
    assert_eq!(
        refused(
            store
                .issue_ticket(
                    &room.id,
                    TokenHash::of("over"),
                    grant("over".into(), "A", 60_000)
                )
                .await
        ),
        ErrorCode::RateLimited,
        "client A holds its cap"
    );
    store
        .issue_ticket(&room.id, TokenHash::of("b"), grant("b".into(), "B", 60_000))
        .await
        .expect("another client is not affected");
    // Redeeming one gives its place back.
    store
        .claim_membership(&room.id, by_ticket("a0", 1).0)
        .await
        .expect("redeemed");
    store
        .issue_ticket(
            &room.id,
            TokenHash::of("again"),
            grant("again".into(), "A", 60_000),
        )
        .await
        .expect("a redeemed ticket's place is free");
    // So does one that expired.
    sleep_ms(150).await;
    store
        .issue_ticket(
            &room.id,
            TokenHash::of("after"),
            grant("after".into(), "A", 60_000),
        )
        .await
        .expect("an expired ticket's place is free");
    assert_eq!(
        refused(
            store
                .claim_membership(&room.id, by_ticket("short", 2).0)
                .await
        ),
        ErrorCode::Unauthorized,
        "the expired ticket is gone"
    );
}

pub async fn the_bus_carries_only_subscribed_rooms_in_order((store, mut bus): (Store, Bus)) {
    let (a, _) = room(10, 60_000);
    let (b, _) = room(10, 60_000);
    store.create_room(a.clone()).await.expect("create");
    store.create_room(b.clone()).await.expect("create");
    store.subscribe(&a.id).await.expect("subscribe");
    let bob = join(&store, &a.id, "bob", 1).await;
    let carol = join(&store, &b.id, "carol", 2).await;
    store
        .append_message(&b.id, &carol, post(text("unseen"), None), RATE)
        .await
        .expect("append");
    store
        .append_message(&a.id, &bob, post(text("seen"), None), RATE)
        .await
        .expect("append");
    let typing = RelayFrame::Typing(TypingFrame {
        member_id: bob.id.clone(),
        display_name: bob.display_name.clone(),
        timestamp: "t".into(),
    });
    store.relay(&a.id, &typing).await.expect("typing");
    let events = delivered(&mut bus).await;
    assert!(events.iter().all(|(room, _)| *room == a.id), "{events:?}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, vec!["presence", "message", "typing"]);
    store.unsubscribe(&a.id).await.expect("unsubscribe");
    store
        .append_message(&a.id, &bob, post(text("after"), None), RATE)
        .await
        .expect("append");
    assert!(published(&mut bus).await.is_empty());
}

pub async fn a_client_id_used_again_answers_the_kept_message_and_posts_nothing(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let bob = join(&store, &room.id, "bob", 1).await;
    let carol = join(&store, &room.id, "carol", 2).await;
    published(&mut bus).await;
    let post = |who: &Member, said: &str, client_id: &str| {
        let (who, said, client_id) = (who.clone(), said.to_owned(), client_id.to_owned());
        let (store, room) = (store.clone(), room.id.clone());
        async move {
            store
                .append_message(&room, &who, post(text(said), Some(client_id)), RATE)
                .await
                .expect("append")
        }
    };
    // A client_id as JSON must escape it: quotes, a backslash, and the key names themselves.
    let c1 = r#"say "hi" \ ","timestamp":" é"#;
    let first = post(&bob, "hello", c1).await;
    assert!(first.new);
    let again = post(&bob, "hello, sent again", c1).await;
    assert_eq!(
        again,
        store::Posted {
            frame: first.frame.clone(),
            new: false
        },
        "a retry answers the message it already posted"
    );
    let theirs = post(&carol, "hi", c1).await;
    assert!(theirs.new, "a client_id is its member's own");
    assert_eq!(theirs.frame.id, 2);
    let ids: Vec<u64> = published(&mut bus)
        .await
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2], "the retry published nothing");
    // Remembered while history keeps the message: once it is trimmed, the id is free again.
    for i in 0..HISTORY {
        assert!(post(&bob, "more", &format!("d{i}")).await.new);
    }
    let later = post(&bob, "hello once more", c1).await;
    assert!(later.new, "c1's message is no longer kept");
    assert_eq!(later.frame.id, 3 + HISTORY as u64);
    assert_eq!(
        post(&bob, "and again", c1).await,
        store::Posted {
            frame: later.frame,
            new: false
        }
    );
}

pub async fn the_owner_posts_without_joining_and_no_stranger_can((store, mut bus): (Store, Bus)) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let owner = Member {
        id: room.owner_member_id.clone(),
        display_name: room.owner_name.clone(),
        role: Role::Owner,
        connected_at: protocol::now_ms(),
    };
    let posted = store
        .append_message(&room.id, &owner, post(text("announcement"), None), RATE)
        .await
        .expect("the owner posts without a connection");
    assert_eq!(posted.frame.id, 1);
    assert_eq!(published(&mut bus).await.len(), 1);
    let view = store.room(&room.id).await.expect("read").expect("exists");
    assert!(view.members.is_empty(), "and is not counted online");
    let stranger = Member {
        id: store::secret::new_id(),
        ..owner.clone()
    };
    assert_eq!(
        refused(
            store
                .append_message(&room.id, &stranger, post(text("x"), None), RATE)
                .await
        ),
        ErrorCode::Unauthorized
    );
}
