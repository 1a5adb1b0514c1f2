//! The conversation as one stream of events: replies, edits, deletions and reactions each take
//! the room's next id, change the message history keeps, and are kept and published like
//! messages.

use super::{RATE, refused};
use crate::helpers::*;
use protocol::ErrorCode;
use protocol::frames::ChatEvent;
use serde_json::{Value, json};
use store::{Amend, Bus, Member, NewMessage, Store};

const WINDOW: u64 = 900_000;

async fn say(store: &Store, room: &str, by: &Member, said: &str, reply_to: Option<u64>) -> u64 {
    let message = NewMessage {
        content: text(said),
        client_id: None,
        reply_to,
    };
    let posted = store.append_message(room, by, message, RATE).await;
    posted.expect("posted").frame.id
}

async fn amend(store: &Store, room: &str, by: &Member, target: u64, amend: Amend) -> ChatEvent {
    store
        .amend_message(room, by, target, amend, RATE, WINDOW)
        .await
        .expect("amended")
}

fn react(emoji: &str) -> Amend {
    Amend::React(emoji.into())
}

/// Everything history keeps after `after`, as JSON.
async fn kept(store: &Store, room: &str, after: u64) -> Vec<Value> {
    let history = store
        .history_after(room, after, 100)
        .await
        .expect("history");
    let events = history.events.iter();
    events
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect()
}

pub async fn edits_deletions_and_reactions_are_events_of_the_conversation(
    (store, mut bus): (Store, Bus),
) {
    let (room, _) = room(10, 60_000);
    let id = &room.id;
    store.create_room(room.clone()).await.expect("create");
    store.subscribe(id).await.expect("subscribe");
    let owner = claim_owner(&store, id, "t", 1).await;
    let bob = join(&store, id, "bob", 2).await;
    let carol = join(&store, id, "carol", 3).await;
    assert_eq!(say(&store, id, &bob, "helo", None).await, 1);
    assert_eq!(say(&store, id, &carol, "hi bob", Some(1)).await, 2);
    published(&mut bus).await;

    // Only the author edits; the edit is event 3 and the message keeps the latest text.
    let edit = Amend::Edit(text("hello"));
    let by_carol = store.amend_message(id, &carol, 1, edit.clone(), RATE, WINDOW);
    assert_eq!(refused(by_carol.await), ErrorCode::Forbidden);
    let edited = amend(&store, id, &bob, 1, edit).await;
    assert_eq!(edited.id(), 3);
    // Reactions toggle, each an event.
    let on = amend(&store, id, &carol, 1, react("👍")).await;
    let again = amend(&store, id, &owner, 1, react("👍")).await;
    let off = amend(&store, id, &carol, 1, react("👍")).await;
    let heart = amend(&store, id, &carol, 1, react("❤\u{fe0f}")).await;
    assert_eq!([on.id(), again.id(), off.id(), heart.id()], [4, 5, 6, 7]);

    let history = kept(&store, id, 0).await;
    let ids: Vec<u64> = history
        .iter()
        .map(|e| e["id"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7], "one stream, contiguous");
    assert_eq!(history[0]["text"], "hello");
    assert_eq!(history[0]["edited"], true);
    assert_eq!(
        history[0]["reactions"],
        json!([{"emoji": "👍", "member_ids": [owner.id]}, {"emoji": "❤\u{fe0f}", "member_ids": [carol.id]}])
    );
    assert_eq!(history[1]["reply_to"], 1);
    assert_eq!(history[2]["type"], "message_edited");
    assert_eq!(
        (history[2]["target"].clone(), history[2]["text"].clone()),
        (json!(1), json!("hello"))
    );
    let toggles: Vec<(Value, Value)> = history[3..]
        .iter()
        .map(|e| (e["member_id"].clone(), e["on"].clone()))
        .collect();
    assert_eq!(
        toggles,
        [
            (json!(carol.id), json!(true)),
            (json!(owner.id), json!(true)),
            (json!(carol.id), json!(false)),
            (json!(carol.id), json!(true)),
        ]
    );
    let events = published(&mut bus).await;
    assert_eq!(events, history[2..], "published as kept, in order");

    // Only the author or the owner deletes; the owner may delete anyone's.
    let by_carol = store.amend_message(id, &carol, 1, Amend::Delete, RATE, WINDOW);
    assert_eq!(refused(by_carol.await), ErrorCode::Forbidden);
    let deleted = amend(&store, id, &owner, 1, Amend::Delete).await;
    assert_eq!(deleted.id(), 8);
    let own = amend(&store, id, &carol, 2, Amend::Delete).await;
    assert_eq!(own.id(), 9);
    let history = kept(&store, id, 0).await;
    assert_eq!(
        history[0],
        json!({"type": "message", "id": 1, "room_id": id, "member_id": bob.id,
               "connection_id": bob.id, "display_name": "bob",
               "timestamp": history[0]["timestamp"], "deleted": true}),
        "a tombstone: no text, no reactions"
    );
    assert!(
        history[2].get("text").is_none(),
        "its edit lost the text too"
    );
    assert_eq!(history[2]["type"], "message_edited");
    assert_eq!(history[7]["type"], "message_deleted");
    assert_eq!(history[7]["member_id"], json!(owner.id), "who deleted it");
    let json = serde_json::to_string(&history).expect("json");
    assert!(!json.contains("hello") && !json.contains("helo") && !json.contains("hi bob"));

    // A deleted message takes no more changes, but may still be answered.
    for change in [Amend::Edit(text("x")), Amend::Delete, react("👍")] {
        let late = store.amend_message(id, &bob, 1, change, RATE, WINDOW);
        assert_eq!(refused(late.await), ErrorCode::NotFound);
    }
    assert_eq!(say(&store, id, &bob, "still", Some(1)).await, 10);
    // What is not a message is refused: an event's id, 0, an id not yet used.
    for target in [3, 0, 11, 99] {
        let wrong = store.amend_message(id, &bob, target, react("👍"), RATE, WINDOW);
        assert_eq!(
            refused(wrong.await),
            ErrorCode::InvalidFrame,
            "target {target}"
        );
        let message = NewMessage {
            content: text("x"),
            client_id: None,
            reply_to: Some(target),
        };
        let reply = store.append_message(id, &bob, message, RATE);
        assert_eq!(
            refused(reply.await),
            ErrorCode::InvalidFrame,
            "reply_to {target}"
        );
    }
    assert_eq!(
        kept(&store, id, 10).await,
        [] as [Value; 0],
        "refusals keep nothing"
    );
    let stranger = Member {
        id: "stranger".into(),
        ..bob.clone()
    };
    let by_stranger = store.amend_message(id, &stranger, 10, react("👍"), RATE, WINDOW);
    assert_eq!(refused(by_stranger.await), ErrorCode::Unauthorized);
}

pub async fn edits_close_after_the_window_and_reactions_stop_at_twenty_emoji(
    (store, _bus): (Store, Bus),
) {
    let (room, _) = room(30, 60_000);
    let id = &room.id;
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, id, "bob", 1).await;
    let carol = join(&store, id, "carol", 2).await;
    say(&store, id, &bob, "one", None).await;
    sleep_ms(20).await;
    let late = store.amend_message(id, &bob, 1, Amend::Edit(text("two")), RATE, 10);
    assert_eq!(refused(late.await), ErrorCode::Forbidden, "past the window");

    let emoji: Vec<&str> = vec![
        "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰",
        "😗", "😙", "😚", "🙂", "🤗", "🤩",
    ];
    for e in &emoji[..20] {
        amend(&store, id, &bob, 1, react(e)).await;
    }
    let extra = store.amend_message(id, &bob, 1, react(emoji[20]), RATE, WINDOW);
    assert_eq!(
        refused(extra.await),
        ErrorCode::InvalidFrame,
        "a 21st emoji"
    );
    let same = amend(&store, id, &carol, 1, react(emoji[0])).await;
    assert_eq!(same.id(), 22, "one already there takes more members");
    // Taking one off makes room again.
    amend(&store, id, &bob, 1, react(emoji[19])).await;
    amend(&store, id, &carol, 1, react(emoji[20])).await;
    let message = &kept(&store, id, 0).await[0];
    assert_eq!(message["reactions"].as_array().map(Vec::len), Some(20));

    // Amendments count against the member's message rate, like messages: a fresh member
    // with a burst of one gets one reaction in, and the next is refused.
    let slow = store::Rate {
        per_second: 1,
        burst: 1,
    };
    let dave = join(&store, id, "dave", 3).await;
    let first = store.amend_message(id, &dave, 1, react(emoji[0]), slow, WINDOW);
    assert!(first.await.is_ok(), "the burst");
    let second = store.amend_message(id, &dave, 1, react(emoji[0]), slow, WINDOW);
    assert_eq!(refused(second.await), ErrorCode::RateLimited);
}

pub async fn parallel_reactions_each_land_once((store, _bus): (Store, Bus)) {
    let (room, _) = room(40, 60_000);
    let id = &room.id;
    store.create_room(room.clone()).await.expect("create");
    let bob = join(&store, id, "bob", 1).await;
    say(&store, id, &bob, "react to me", None).await;
    let mut members = Vec::new();
    for i in 0..20 {
        members.push(join(&store, id, &format!("m{i}"), 10 + i).await);
    }
    let reactions = members.iter().map(|m| amend(&store, id, m, 1, react("🎉")));
    let events = futures_util::future::join_all(reactions).await;
    let mut ids: Vec<u64> = events.iter().map(ChatEvent::id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (2..=21).collect::<Vec<u64>>());
    let message = &kept(&store, id, 0).await[0];
    let mut who: Vec<String> =
        serde_json::from_value(message["reactions"][0]["member_ids"].clone()).expect("member ids");
    who.sort();
    let mut expected: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    expected.sort();
    assert_eq!(who, expected, "every reaction, once");
}
