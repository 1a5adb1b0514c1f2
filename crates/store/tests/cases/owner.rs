//! The owner's controls: remove and bar, lock, move the end, hand over, and the owner's grace.

use super::{live, refused};
use crate::helpers::*;
use protocol::{ErrorCode, Role, now_ms};
use store::secret::TokenHash;
use store::{Actor, Bus, Credential, RoomChange, Store, Ticket};

fn kick(member_id: &str) -> RoomChange {
    RoomChange::Kick {
        member_id: member_id.into(),
    }
}

fn lock(locked: bool) -> RoomChange {
    RoomChange::Settings {
        locked: Some(locked),
        expires_at: None,
    }
}

fn member_ticket(name: &str, client: &str) -> Ticket {
    Ticket {
        display_name: name.into(),
        role: Role::Member,
        expires_at: now_ms() + 60_000,
        client: client.into(),
        resume: None,
    }
}

pub async fn the_owner_removes_a_member_and_bars_its_address_and_name(
    (store, mut bus): (Store, Bus),
) {
    let (room, token) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let owner = claim_owner(&store, &room.id, "t", 1).await;
    let bob = join(&store, &room.id, "bob", 2).await;
    let carol = join(&store, &room.id, "carol", 3).await;
    published(&mut bus).await;
    let id = &room.id;

    // Only the owner, and not itself; only members.
    let by_carol = store.change_room(id, Actor::Member(&carol.id), kick(&bob.id));
    assert_eq!(refused(by_carol.await), ErrorCode::Forbidden);
    let wrong = TokenHash::of("not the owner token");
    let by_stranger = store.change_room(id, Actor::Token(&wrong), kick(&bob.id));
    assert_eq!(refused(by_stranger.await), ErrorCode::Forbidden);
    let itself = store.change_room(id, Actor::Member(&owner.id), kick(&owner.id));
    assert_eq!(refused(itself.await), ErrorCode::Forbidden);
    let nobody = store.change_room(id, Actor::Member(&owner.id), kick("nobody"));
    assert_eq!(refused(nobody.await), ErrorCode::NotFound);
    assert!(
        published(&mut bus).await.is_empty(),
        "refusals change nothing"
    );

    let view = store
        .change_room(id, Actor::Member(&owner.id), kick(&bob.id))
        .await
        .expect("the owner removes bob");
    assert!(view.members.iter().all(|m| m.id != bob.id));
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(events[0]["reason"], "kicked");
    assert_eq!(events[0]["member_id"], bob.id.as_str());

    // Barred: the name (as names compare) from any address, the address under any name.
    let again = store.claim_membership(id, by_name("bob", 4).0).await;
    assert_eq!(refused(again), ErrorCode::Banned);
    let mut other_name = by_name("robert", 5).0;
    other_name.client = "client of bob".into();
    assert_eq!(
        refused(store.claim_membership(id, other_name).await),
        ErrorCode::Banned
    );
    let lookalike = store.claim_membership(id, by_name("BOB", 6).0).await;
    assert_eq!(refused(lookalike), ErrorCode::Banned);
    let by_ticket_name = store.issue_ticket(id, TokenHash::of("b1"), member_ticket("Bob", "x"));
    assert_eq!(refused(by_ticket_name.await), ErrorCode::Banned);
    let by_ticket_client = store.issue_ticket(
        id,
        TokenHash::of("b2"),
        member_ticket("rob", "client of bob"),
    );
    assert_eq!(refused(by_ticket_client.await), ErrorCode::Banned);
    // Others still come in; the owner token removes as well.
    let dave = join(&store, id, "dave", 7).await;
    store
        .change_room(id, Actor::Token(&TokenHash::of(&token)), kick(&dave.id))
        .await
        .expect("the owner token removes dave");
    assert_eq!(
        refused(store.claim_membership(id, by_name("dave", 8).0).await),
        ErrorCode::Banned
    );
    join(&store, id, "erin", 9).await;
}

pub async fn a_locked_room_takes_no_new_members_but_its_members_resume(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let id = &room.id;
    let owner = claim_owner(&store, id, "t", 1).await;
    let (bob, bob_token) = join_resumable(&store, id, "bob", 2).await;
    published(&mut bus).await;
    let by_bob = store.change_room(id, Actor::Member(&bob.id), lock(true));
    assert_eq!(refused(by_bob.await), ErrorCode::Forbidden);

    let view = store
        .change_room(id, Actor::Member(&owner.id), lock(true))
        .await
        .expect("lock");
    assert!(view.room.locked);
    assert!(
        store
            .room(id)
            .await
            .expect("read")
            .expect("room")
            .room
            .locked
    );
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "room_updated");
    assert_eq!(events[0]["locked"], true);
    assert_eq!(events[0]["owner_member_id"], owner.id.as_str());

    let carol = store.claim_membership(id, by_name("carol", 3).0).await;
    assert_eq!(refused(carol), ErrorCode::RoomLocked);
    let ticket = store.issue_ticket(id, TokenHash::of("c"), member_ticket("carol", "c"));
    assert_eq!(refused(ticket.await), ErrorCode::RoomLocked);
    store
        .resume_member(id, &TokenHash::of(&bob_token), 4)
        .await
        .expect("a member resumes into a locked room");
    claim_owner(&store, id, "t2", 5).await;

    store
        .change_room(id, Actor::Member(&owner.id), lock(false))
        .await
        .expect("unlock");
    join(&store, id, "carol", 6).await;
}

pub async fn the_owner_moves_the_rooms_end((store, mut bus): (Store, Bus)) {
    let (room, token) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let id = &room.id;
    join(&store, id, "bob", 1).await;
    published(&mut bus).await;
    let owner = Actor::Token(&TokenHash::of(&token));
    let soon = now_ms() + 500;
    let change = RoomChange::Settings {
        locked: None,
        expires_at: Some(soon),
    };
    let view = store.change_room(id, owner, change).await.expect("moved");
    assert_eq!(view.room.expires_at, soon);
    assert!(!view.room.locked);
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "room_updated");
    assert_eq!(
        events[0]["expires_at"].as_str(),
        Some(protocol::rfc3339(soon).as_str())
    );
    sleep_ms(550).await;
    store.sweep().await.expect("sweep");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "expired");
    assert!(store.room(id).await.expect("read").is_none());
}

pub async fn a_handover_makes_another_member_the_owner((store, mut bus): (Store, Bus)) {
    let (room, token) = room(10, 60_000);
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let id = &room.id;
    let alice = claim_owner(&store, id, "t", 1).await;
    let bob = join(&store, id, "bob", 2).await;
    let carol = join(&store, id, "carol", 3).await;
    published(&mut bus).await;
    let to_bob = || RoomChange::Handover {
        member_id: bob.id.clone(),
    };
    let by_carol = store.change_room(id, Actor::Member(&carol.id), to_bob());
    assert_eq!(refused(by_carol.await), ErrorCode::Forbidden);
    let to_self = RoomChange::Handover {
        member_id: alice.id.clone(),
    };
    let itself = store.change_room(id, Actor::Member(&alice.id), to_self);
    assert_eq!(refused(itself.await), ErrorCode::Forbidden);

    let view = store
        .change_room(id, Actor::Token(&TokenHash::of(&token)), to_bob())
        .await
        .expect("handover");
    assert_eq!(view.room.owner_member_id, bob.id);
    let role = |id: &str| view.members.iter().find(|m| m.id == id).map(|m| m.role);
    assert_eq!(role(&bob.id), Some(Role::Owner));
    assert_eq!(role(&alice.id), Some(Role::Member));
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "room_updated");
    assert_eq!(events[0]["owner_member_id"], bob.id.as_str());

    // The old token is nothing now; the old owner can no longer act as one.
    let old = store.authenticate(id, &TokenHash::of(&token)).await;
    assert_eq!(old.expect("authenticate"), None);
    let by_alice = store.change_room(id, Actor::Member(&alice.id), lock(true));
    assert_eq!(refused(by_alice.await), ErrorCode::Forbidden);
    // Only the new owner sets its token, once.
    let mine = TokenHash::of("bob's owner token");
    let taken = store.take_ownership(id, &alice.id, TokenHash::of("x"));
    assert!(!taken.await.expect("take"));
    assert!(store.take_ownership(id, &bob.id, mine).await.expect("take"));
    let again = store.take_ownership(id, &bob.id, TokenHash::of("y"));
    assert!(!again.await.expect("take"));
    let new = store
        .authenticate(id, &TokenHash::of("bob's owner token"))
        .await;
    assert_eq!(new.expect("authenticate"), Some(Credential::Owner));
    store
        .change_room(id, Actor::Member(&bob.id), lock(true))
        .await
        .expect("the new owner acts");
    published(&mut bus).await;

    // The room now ends with its new owner, not its old one.
    store.release_member(id, &alice.id).await.expect("leave");
    assert!(store.room(id).await.expect("read").is_some());
    store.release_member(id, &bob.id).await.expect("leave");
    let events = published(&mut bus).await;
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("room_closed".into())
    );
    assert!(store.room(id).await.expect("read").is_none());
}

pub async fn the_owner_is_waited_for_its_owner_grace((store, mut bus): (Store, Bus)) {
    let (mut room, _) = room(10, 60_000);
    room.owner_grace_ms = GRACE_MS + 1000;
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(&room.id).await.expect("subscribe");
    let id = &room.id;
    let owner = claim_owner(&store, id, "t", 1).await;
    let bob = join(&store, id, "bob", 2).await;
    published(&mut bus).await;
    let bob_live = [live(id, &bob.id, 2)];
    let keep_bob = || store.touch_members(&bob_live);

    // Its presence grace ends: it is away, not gone, and everyone is told until when.
    store
        .disconnect_members(&[live(id, &owner.id, 1)])
        .await
        .expect("disconnect");
    sleep_ms(GRACE_MS + 50).await;
    keep_bob().await.expect("touch");
    store.sweep().await.expect("sweep");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "room_updated");
    let until = events[0]["owner_away_until"].as_str().expect("away until");
    let until = protocol::parse_rfc3339(until).expect("a time");
    let view = store.room(id).await.expect("read").expect("the room lives");
    assert_eq!(view.room.owner_away_until, Some(until));
    assert!(view.members.iter().any(|m| m.id == owner.id));

    // Its return ends the wait for everyone.
    claim_owner(&store, id, "t2", 3).await;
    let events = published(&mut bus).await;
    let back: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "room_updated")
        .collect();
    assert_eq!(back.len(), 1, "{events:?}");
    assert!(back[0]["owner_away_until"].is_null());
    assert_eq!(
        store
            .room(id)
            .await
            .expect("read")
            .expect("room")
            .room
            .owner_away_until,
        None
    );

    // Away again, and not back within the rest of its grace: the room ends.
    store
        .disconnect_members(&[live(id, &owner.id, 3)])
        .await
        .expect("disconnect");
    sleep_ms(GRACE_MS + 50).await;
    keep_bob().await.expect("touch");
    store.sweep().await.expect("sweep");
    assert_eq!(published(&mut bus).await.len(), 1, "away again");
    keep_bob().await.expect("touch");
    store.sweep().await.expect("sweep");
    assert!(
        published(&mut bus).await.is_empty(),
        "still within its grace"
    );
    sleep_ms(1000).await;
    keep_bob().await.expect("touch");
    store.sweep().await.expect("sweep");
    let events = published(&mut bus).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event"], "user_offline");
    assert_eq!(events[1]["reason"], "owner_offline");
}
