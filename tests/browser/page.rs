//! The page as people use it, in headless Chromium through nginx: long conversations on phones
//! and desktops, the message box, a second tab, reconnecting, endings, and accessibility
//! (axe-core, installed by scripts/test.sh).

use crate::browser::{Browser, Driver, banner_says, join_as, overlay_says, site};
use crate::cluster::Cluster;
use crate::helpers::{Room, TestApp, Ws};
use fantoccini::key::Key;
use seal::{RoomKey, message_aad};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `n` messages from the room's owner, some of them long, as a real conversation has.
async fn conversation(app: &TestApp, room: &Room, n: usize) {
    let (mut owner, _) = app.owner(room).await;
    for i in 1..=n {
        let text = if i % 7 == 0 {
            format!(
                "message {i}: {}",
                "a longer thought that wraps over several lines ".repeat(6)
            )
        } else {
            format!("message {i}")
        };
        owner.say(&text, &format!("c{i}")).await;
        owner.next_of("message").await;
    }
    owner.disconnect().await;
}

/// A desktop browser that joined `room` as `name` and is live in it.
async fn joined(driver: &Driver, site: &str, room: &str, name: &str) -> Browser {
    let browser = driver.browser(1000, 700, false).await;
    join_as(&browser, site, room, name, None).await;
    browser.wait_live().await;
    browser
}

/// Creates a room in the lobby as `owner` (named `name`, if given; encrypted, as the lobby
/// makes rooms) and waits until the page is live in it; returns the room's id.
pub(crate) async fn create_in_lobby(
    browser: &Browser,
    site: &str,
    owner: &str,
    name: Option<&str>,
) -> String {
    browser.goto(&format!("{site}/")).await;
    browser
        .until("!document.getElementById('lobby').hidden")
        .await;
    browser.fill("#create-owner", owner).await;
    if let Some(name) = name {
        browser.fill("#create-name", name).await;
    }
    browser.click("#create button[type=submit]").await;
    browser.wait_live().await;
    let id = browser.js("location.pathname.split('/')[2]").await;
    id.as_str().expect("room id").to_owned()
}

/// The room link the page shares, its key in the fragment.
pub(crate) async fn shared_link(browser: &Browser) -> String {
    let link = browser
        .js("document.getElementById('share-link').value")
        .await;
    link.as_str().expect("link").to_owned()
}

/// The key of the room the page is in, from its address.
pub(crate) async fn page_key(browser: &Browser) -> RoomKey {
    let at = browser.js("location.href").await;
    RoomKey::from_link(at.as_str().expect("href"))
        .expect("an encrypted room's key")
        .1
}

/// Sends `text` encrypted as `member_id` of room `id`, and waits for its echo.
async fn say_sealed(ws: &mut Ws, key: &RoomKey, id: &str, member_id: &str, text: &str) {
    let ciphertext = key.seal(text, &message_aad(id, member_id));
    ws.send_json(json!({"type": "message", "ciphertext": ciphertext}))
        .await;
    ws.next_of("message").await;
}

/// The owner token the page keeps for room `id`.
async fn owner_token(browser: &Browser, id: &str) -> String {
    let token = browser
        .js(&format!(
            "JSON.parse(localStorage.getItem('ephemera:owner:{id}')).token"
        ))
        .await;
    token.as_str().expect("owner token").to_owned()
}

/// The texts the room's history holds (read with `token` where the room needs one), decrypted
/// with `key` in an encrypted room.
async fn posted(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    key: Option<&RoomKey>,
) -> Vec<String> {
    app.messages(id, token).await["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| match (key, m["ciphertext"].as_str()) {
            (Some(key), Some(sealed)) => {
                let aad = message_aad(id, m["member_id"].as_str().expect("author"));
                key.open(sealed, &aad).expect("opens")
            }
            _ => m["text"].as_str().expect("text").to_owned(),
        })
        .collect()
}

/// Destroys room `id` with the owner token the page keeps.
async fn destroy_as_owner(app: &TestApp, browser: &Browser, id: &str) {
    let token = owner_token(browser, id).await;
    let res = app
        .http
        .delete(app.url(&format!("/rooms/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 200);
}

/// What a person sees of the layout: whether the page itself scrolls, whether the message box
/// and the Send button are on screen and the topmost thing where a finger lands on them, and
/// whether the conversation scrolls in its pane, shown from its end.
const LAYOUT: &str = r"(() => {
  const tappable = (el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth && (hit === el || el.contains(hit));
  };
  const pane = document.getElementById('scroller');
  const last = [...document.querySelectorAll('#messages .message')].pop();
  return {
    page_scrolls: document.scrollingElement.scrollHeight > innerHeight + 1 || document.scrollingElement.scrollWidth > innerWidth,
    box: tappable(document.getElementById('text')),
    send: tappable(document.querySelector('#say button[type=submit]')),
    pane_scrolls: pane.scrollHeight > pane.clientHeight,
    end_shown: !!last && last.getBoundingClientRect().bottom <= pane.getBoundingClientRect().bottom + 1,
  };
})()";

#[tokio::test]
async fn a_long_conversation_scrolls_in_its_pane_and_the_box_stays_tappable() {
    let cluster = Cluster::start(
        1,
        &[
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "100000"),
            ("EPHEMERA_MESSAGE_BURST", "100000"),
            ("EPHEMERA_HISTORY_LIMIT", "1000"),
            // A thousand messages take more than the default 256 KiB of history.
            ("EPHEMERA_HISTORY_MAX_BYTES", "4194304"),
        ],
    );
    let app = cluster.app();
    let site = site(&cluster);
    let long = app
        .create_room(json!({"owner_name": "alice", "name": "A long talk", "destroy_on_owner_offline": false}))
        .await;
    conversation(&app, &long, 40).await;
    // One message, and a thousand under a title of 80 characters that has no space to wrap at.
    let title =
        "Quarterlyplanningandretrospectiveforthewholeengineeringorganisation-allteamsinvited";
    let title = &title[..80];
    let short = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    conversation(&app, &short, 1).await;
    let thousand = app
        .create_room(
            json!({"owner_name": "alice", "name": title, "destroy_on_owner_offline": false}),
        )
        .await;
    conversation(&app, &thousand, 1000).await;
    let driver = Driver::start();
    // Each browser adds one message to the long conversation.
    for (shown, (size, width, height)) in (40..).zip([
        ("phone", 360, 740),
        ("phone-landscape", 740, 360),
        ("desktop", 1280, 800),
    ]) {
        let browser = driver.browser(width, height, false).await;
        join_as(&browser, &site, &long.id, &format!("bob-{size}"), None).await;
        browser.wait_live().await;
        browser
            .until(&format!(
                "document.querySelectorAll('#messages .message').length === {shown}"
            ))
            .await;
        let layout = browser.js(LAYOUT).await;
        assert_eq!(
            layout,
            json!({"page_scrolls": false, "box": true, "send": true, "pane_scrolls": true, "end_shown": true}),
            "{size} with {shown} messages"
        );
        // The person can still send, with the on-screen button.
        browser.fill("#text", "still here").await;
        browser.click("#say button[type=submit]").await;
        browser
            .until(&format!(
                "document.querySelectorAll('#messages .message').length === {shown} + 1"
            ))
            .await;
        assert_eq!(browser.js(LAYOUT).await["end_shown"], json!(true), "{size}");

        join_as(&browser, &site, &short.id, &format!("bob-{size}"), None).await;
        browser.wait_live().await;
        browser
            .until("document.querySelectorAll('#messages .message').length === 1")
            .await;
        let layout = browser.js(LAYOUT).await;
        assert_eq!(layout["page_scrolls"], json!(false), "{size}: {layout}");
        assert_eq!(layout["box"], json!(true), "{size}: {layout}");

        join_as(&browser, &site, &thousand.id, &format!("bob-{size}"), None).await;
        browser.wait_live().await;
        browser
            .until("document.querySelectorAll('#messages .message').length === 1000")
            .await;
        let layout = browser.js(LAYOUT).await;
        assert_eq!(
            layout,
            json!({"page_scrolls": false, "box": true, "send": true, "pane_scrolls": true, "end_shown": true}),
            "{size} with 1,000 messages"
        );
        // The long title wraps within its line, at most two lines high, and says itself whole
        // on hover; the tab's title is the same name.
        let heading = browser
            .js("(() => { const h = document.getElementById('room-title'); const line = parseFloat(getComputedStyle(h).lineHeight); return {fits: h.scrollWidth <= h.clientWidth, lines: Math.round(h.getBoundingClientRect().height / line), title: h.title}; })()")
            .await;
        assert_eq!(heading["fits"], json!(true), "{size}: {heading}");
        assert!(
            heading["lines"]
                .as_i64()
                .is_some_and(|l| (1..=2).contains(&l)),
            "{size}: {heading}"
        );
        assert_eq!(heading["title"], json!(title), "{size}");
        assert_eq!(
            browser.js("document.title").await,
            json!(format!("{title} · Ephemera"))
        );
        browser.close().await;
    }
}

#[tokio::test]
async fn on_a_touch_screen_enter_is_a_new_line_and_the_button_sends() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app.open_room().await;
    let driver = Driver::start();
    let phone = driver.browser(360, 740, false).await;
    assert_eq!(
        phone.js("matchMedia('(pointer: coarse)').matches").await,
        json!(true),
        "the phone is emulated with touch"
    );
    join_as(&phone, &site, &room.id, "bob", None).await;
    phone.wait_live().await;
    let before = phone
        .js("document.getElementById('text').offsetHeight")
        .await;
    phone
        .fill("#text", "first line\nsecond line\nthird line")
        .await;
    assert_eq!(
        phone.js("document.getElementById('text').value").await,
        json!("first line\nsecond line\nthird line")
    );
    assert_eq!(
        phone
            .js("document.querySelectorAll('#messages .message').length")
            .await,
        json!(0),
        "Enter sent nothing"
    );
    let grown = phone
        .js("document.getElementById('text').offsetHeight")
        .await;
    assert!(
        grown.as_f64() > before.as_f64(),
        "the box grows with its text: {before} -> {grown}"
    );
    // It grows a few lines, not over the conversation.
    phone.fill("#text", &"line\n".repeat(40)).await;
    let capped = phone
        .js("[document.getElementById('text').offsetHeight, innerHeight]")
        .await;
    assert!(
        capped[0].as_f64().unwrap_or(f64::MAX) < capped[1].as_f64().unwrap_or(0.0) / 3.0,
        "the box stops growing: {capped}"
    );
    phone.fill("#text", "first line\nsecond line").await;
    phone.click("#say button[type=submit]").await;
    phone
        .until("[...document.querySelectorAll('#messages .text')].some(e => e.textContent === 'first line\\nsecond line')")
        .await;
    phone
        .until("document.getElementById('text').value === ''")
        .await;
    phone.close().await;
}

#[tokio::test]
async fn a_refused_message_stays_in_the_box_and_goes_out_once_when_allowed() {
    let cluster = Cluster::start(
        1,
        &[
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "1"),
            ("EPHEMERA_MESSAGE_BURST", "1"),
        ],
    );
    let app = cluster.app();
    let site = site(&cluster);
    let room = app.open_room().await;
    let driver = Driver::start();
    let browser = joined(&driver, &site, &room.id, "bob").await;
    browser.fill("#text", "one\n").await;
    browser
        .until("document.querySelectorAll('#messages .message').length === 1 && document.getElementById('text').value === ''")
        .await;
    // The second within the second is over the rate: refused, and kept.
    browser.fill("#text", "two\n").await;
    browser
        .until("document.getElementById('text-state').textContent.startsWith('Not sent: you are sending too fast')")
        .await;
    assert_eq!(
        browser.js("document.getElementById('text').value").await,
        json!("two")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    browser.click("#say button[type=submit]").await;
    browser
        .until("document.querySelectorAll('#messages .message').length === 2 && document.getElementById('text').value === ''")
        .await;
    assert_eq!(browser.messages().await, ["one", "two"]);
    assert_eq!(
        posted(&app, &room.id, None, None).await,
        ["one", "two"],
        "posted once each"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_owner_offline_sees_what_is_at_stake_and_a_message_waits_for_the_connection() {
    let mut cluster = Cluster::start(1, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10")]);
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;
    let id = create_in_lobby(&browser, &site, "alice", None).await;

    cluster.instances[0].kill();
    browser
        .until("document.getElementById('status').textContent.startsWith('Reconnecting')")
        .await;
    // Retries come well within the 10 s grace, and the owner is told what is at stake.
    let status = browser
        .until("/^Reconnecting in [1-3] s…$/.test(document.getElementById('status').textContent) && document.getElementById('status').textContent")
        .await;
    assert!(status.is_string(), "{status}");
    let away = browser
        .until("!document.getElementById('away').hidden && document.getElementById('away').textContent")
        .await;
    // The owner grace (120 s by default), not the presence grace.
    assert!(
        away.as_str().is_some_and(|a| {
            (a.starts_with("This room ends in 1:") || a.starts_with("This room ends in 2:00"))
                && a.ends_with(" unless you reconnect.")
        }),
        "{away}"
    );
    assert_eq!(
        browser
            .js("!document.getElementById('retry-btn').hidden")
            .await,
        json!(true),
        "Retry now is offered"
    );

    // Written while offline: it stays in the box, marked, and goes out on reconnect, once.
    browser.fill("#text", "written offline\n").await;
    browser
        .until("document.getElementById('text-state').textContent.startsWith('Not sent yet')")
        .await;
    assert_eq!(
        browser.js("document.getElementById('text').value").await,
        json!("written offline")
    );
    let restarted = Instant::now();
    cluster.instances[0].restart();
    // Retry now, unless the page's own retry (at most 3 s apart) got there first.
    browser
        .js("(() => { const b = document.getElementById('retry-btn'); if (!b.hidden) b.click(); return true; })()")
        .await;
    browser.wait_live().await;
    assert!(
        restarted.elapsed() < Duration::from_secs(5),
        "Retry now reconnects at once"
    );
    browser
        .until("document.getElementById('text').value === '' && document.getElementById('away').hidden")
        .await;
    let token = owner_token(&browser, &id).await;
    let key = page_key(&browser).await;
    assert_eq!(
        posted(&app, &id, Some(&token), Some(&key)).await,
        ["written offline"]
    );
    assert_eq!(browser.messages().await, ["written offline"]);
    browser.close().await;
}

#[tokio::test]
async fn a_second_tab_takes_the_room_over_and_gives_it_back() {
    let cluster = Cluster::start(1, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "3")]);
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;
    let id = create_in_lobby(&browser, &site, "alice", Some("Tabs")).await;
    let link = shared_link(&browser).await;

    // A new owner lands on the invite view, which Esc closes, leaving the box focused.
    browser
        .until("!document.getElementById('share').hidden && !document.getElementById('share-hint').hidden")
        .await;
    assert_eq!(
        browser.js("document.activeElement.id").await,
        json!("copy-btn")
    );
    browser
        .client
        .active_element()
        .await
        .expect("focus")
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .expect("Esc");
    browser
        .until("document.getElementById('share').hidden && document.activeElement.id === 'text'")
        .await;
    assert_eq!(
        browser.js("document.title").await,
        json!("Tabs · Ephemera"),
        "title and header agree"
    );

    let first = browser.client.window().await.expect("window");
    let second = browser.client.new_window(true).await.expect("new tab");
    browser
        .client
        .switch_to_window(second.handle)
        .await
        .expect("switch");
    browser.goto(&link).await;
    browser.wait_live().await;
    assert_eq!(
        browser.js("document.querySelector('#online .badge.owner') !== null && document.getElementById('online').textContent.includes('you')").await,
        json!(true),
        "the second tab is the owner"
    );
    browser
        .client
        .switch_to_window(first.clone())
        .await
        .expect("switch");
    overlay_says(&browser, "Opened in another tab").await;
    assert_eq!(
        browser
            .js(&format!(
                "localStorage.getItem('ephemera:owner:{id}') !== null"
            ))
            .await,
        json!(true),
        "nobody deletes the owner token"
    );
    assert_eq!(
        browser.js("!document.getElementById('overlay-stay').hidden && document.getElementById('overlay-stay').textContent").await,
        json!("Use this tab")
    );

    // The newer tab closes: the first takes the room back by itself, as its owner.
    browser
        .client
        .switch_to_window(
            browser
                .client
                .windows()
                .await
                .expect("windows")
                .into_iter()
                .find(|w| *w != first)
                .expect("second"),
        )
        .await
        .expect("switch");
    browser.client.close_window().await.expect("closes the tab");
    browser
        .client
        .switch_to_window(first)
        .await
        .expect("switch");
    browser.wait_live().await;
    assert_eq!(
        browser.js("document.getElementById('overlay').open").await,
        json!(false)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let details = app.details(&id).await;
    assert_eq!(details["online_users_count"], 1, "{details}");
    assert_eq!(details["online_users"][0]["role"], "owner", "{details}");
    browser.close().await;
}

#[tokio::test]
async fn endings_say_what_happened_and_leave_the_conversation_readable() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;

    // The overlay stops the countdown, keeps focus inside it, and can be dismissed to read.
    let room = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    conversation(&app, &room, 3).await;
    join_as(&browser, &site, &room.id, "bob", None).await;
    browser.wait_live().await;
    app.close_room(&room).await;
    overlay_says(&browser, "This room was destroyed").await;
    assert_eq!(browser.text("countdown").await, "Ended");
    for _ in 0..4 {
        browser
            .client
            .active_element()
            .await
            .expect("focus")
            .send_keys(&char::from(Key::Tab).to_string())
            .await
            .expect("Tab");
        assert_eq!(
            browser
                .js("document.activeElement.closest('dialog') === document.getElementById('overlay')")
                .await,
            json!(true),
            "focus stays in the overlay"
        );
    }
    browser.click("#overlay-read").await;
    browser
        .until("!document.getElementById('overlay').open")
        .await;
    assert_eq!(
        browser.messages().await,
        ["message 1", "message 2", "message 3"]
    );
    banner_says(&browser, "This room was destroyed").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(browser.text("countdown").await, "Ended");

    // An owner whose room ended while they were away is told so.
    browser.goto(&format!("{site}/")).await;
    browser
        .until("!document.getElementById('lobby').hidden")
        .await;
    assert_eq!(
        browser.js("document.getElementById('banner').hidden").await,
        json!(true),
        "the lobby starts clean"
    );
    let id = create_in_lobby(&browser, &site, "olga", None).await;
    destroy_as_owner(&app, &browser, &id).await;
    overlay_says(&browser, "This room was destroyed").await;
    browser.goto(&format!("{site}/r/{id}")).await;
    overlay_says(&browser, "Room not found").await;

    // The lobby shows a room's ending once: a reload is a fresh lobby.
    browser.click("#overlay-home").await;
    banner_says(&browser, "Room not found").await;
    browser.client.refresh().await.expect("reload");
    browser
        .until("!document.getElementById('lobby').hidden")
        .await;
    assert_eq!(
        browser.js("document.getElementById('banner').hidden").await,
        json!(true)
    );
    browser.close().await;
}

#[tokio::test]
async fn an_owner_who_comes_back_to_an_ended_room_is_told_it_ended() {
    let cluster = Cluster::start(
        1,
        &[
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "1"),
            ("EPHEMERA_OWNER_GRACE_SECONDS", "1"),
        ],
    );
    let site = site(&cluster);
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;
    let id = create_in_lobby(&browser, &site, "olga", None).await;
    let link = shared_link(&browser).await;
    // The owner goes away (the tab navigates elsewhere) longer than the grace: the room ends.
    browser.goto(&format!("{site}/docs")).await;
    let app = cluster.app();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get(&format!("/rooms/{id}")).await.status() != 404 {
        assert!(Instant::now() < deadline, "the room ends with its owner");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.goto(&link).await;
    overlay_says(&browser, "Your room has ended").await;
    browser.close().await;
}

#[tokio::test]
async fn back_to_a_room_page_asks_the_server_again() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app.open_room().await;
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;
    browser.goto(&format!("{site}/r/{}", room.id)).await;
    browser
        .until("document.getElementById('join-info').textContent.includes('online')")
        .await;
    // The join page selects the suggested name, so typing replaces it, and says the room ends.
    assert_eq!(
        browser
            .js("document.activeElement.id === 'join-name' && document.activeElement.selectionStart === 0 && document.activeElement.selectionEnd === document.activeElement.value.length")
            .await,
        json!(true)
    );
    let info = browser.text("join-info").await;
    assert!(info.contains("self-destructs in 60 minutes"), "{info}");
    browser.goto(&format!("{site}/docs")).await;
    app.close_room(&room).await;
    browser.client.back().await.expect("back");
    overlay_says(&browser, "Room not found").await;

    // In a password room too, the name comes first.
    let locked = app
        .create_room(json!({"owner_name": "alice", "password": "s3cret"}))
        .await;
    browser.goto(&format!("{site}/r/{}", locked.id)).await;
    browser
        .until("!document.getElementById('join-password').hidden && document.activeElement.id === 'join-name'")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn links_leave_out_the_punctuation_around_them() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app.open_room().await;
    let driver = Driver::start();
    let browser = joined(&driver, &site, &room.id, "bob").await;
    let text = "See https://example.com/a. Or (https://example.com/b), https://en.wikipedia.org/wiki/Rust_(language)! And www.example.org?";
    browser.fill("#text", &format!("{text}\n")).await;
    browser
        .until("document.querySelectorAll('#messages .message').length === 1")
        .await;
    assert_eq!(
        browser
            .js("[...document.querySelectorAll('#messages a')].map(a => [a.textContent, a.href])")
            .await,
        json!([
            ["https://example.com/a", "https://example.com/a"],
            ["https://example.com/b", "https://example.com/b"],
            [
                "https://en.wikipedia.org/wiki/Rust_(language)",
                "https://en.wikipedia.org/wiki/Rust_(language)"
            ],
            ["www.example.org", "https://www.example.org/"],
        ])
    );
    assert_eq!(browser.messages().await, [text], "the text itself is whole");
    browser.close().await;
}

#[tokio::test]
async fn the_countdown_warns_in_the_conversation_and_to_screen_readers() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    let browser = driver.browser(1000, 700, false).await;
    for (seconds, words) in [(302, "5 minutes"), (62, "1 minute")] {
        let room = app
            .create_room(json!({"owner_name": "alice", "expiry_seconds": seconds}))
            .await;
        join_as(&browser, &site, &room.id, "bob", None).await;
        browser.wait_live().await;
        let said = format!("This room self-destructs in {words}.");
        browser
            .until(&format!(
                "[...document.querySelectorAll('#messages .notice')].some(n => n.textContent === {said:?}) && document.getElementById('announce').textContent === {said:?}"
            ))
            .await;
        assert_eq!(
            browser
                .js("document.getElementById('typing').getAttribute('aria-live')")
                .await,
            json!("off"),
            "typing notices are not read out one by one"
        );
    }
    browser.close().await;
}

#[tokio::test]
async fn repeated_notices_collapse_into_one() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app.open_room().await;
    let driver = Driver::start();
    let browser = joined(&driver, &site, &room.id, "bob").await;
    // Twenty refusals the server could send: one line, counted.
    browser
        .js("(() => { for (let i = 0; i < 20; i++) frame({type: 'error', code: 'forbidden', message: 'no'}); return true; })()")
        .await;
    assert_eq!(
        browser
            .js("[...document.querySelectorAll('#messages .notice')].map(n => n.textContent)")
            .await,
        json!(["No. (×20)"])
    );
    browser.close().await;
}

/// axe-core's serious and critical findings on the page as it is now.
async fn axe(browser: &Browser) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/axe/node_modules/axe-core/axe.min.js"
    );
    let source = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (scripts/test.sh installs axe-core)"));
    browser
        .client
        .execute(&source, vec![])
        .await
        .expect("axe loads");
    browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(r => done(
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)));",
            vec![],
        )
        .await
        .expect("axe runs")
}

#[tokio::test]
async fn axe_finds_nothing_serious_on_the_lobby_join_and_room_pages() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app
        .create_room(
            json!({"owner_name": "alice", "name": "Checked", "destroy_on_owner_offline": false}),
        )
        .await;
    conversation(&app, &room, 12).await;
    let driver = Driver::start();
    for dark in [false, true] {
        let browser = driver.browser(1000, 700, dark).await;
        browser.goto(&format!("{site}/")).await;
        browser
            .until("!document.getElementById('lobby').hidden")
            .await;
        assert_eq!(axe(&browser).await, json!([]), "lobby, dark: {dark}");
        browser.goto(&format!("{site}/r/{}", room.id)).await;
        browser
            .until("!document.getElementById('join').hidden")
            .await;
        assert_eq!(axe(&browser).await, json!([]), "join, dark: {dark}");
        join_as(&browser, &site, &room.id, &format!("checker-{dark}"), None).await;
        browser.wait_live().await;
        browser
            .until("document.querySelectorAll('#messages .message').length === 12")
            .await;
        browser.click("#share-btn").await;
        assert_eq!(axe(&browser).await, json!([]), "room, dark: {dark}");
        browser.close().await;
    }
}

#[tokio::test]
async fn the_page_has_a_favicon() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let res = app.get("/assets/favicon.svg").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/svg+xml")
    );
    let page = app.get("/").await.text().await.expect("page");
    assert!(page.contains(r#"<link rel="icon" href="/assets/favicon.svg""#));
}

#[tokio::test]
async fn screenshots_of_a_real_conversation_the_invite_a_pending_message_and_the_end() {
    let mut cluster = Cluster::start(
        1,
        &[
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "10"),
            ("EPHEMERA_MESSAGE_RATE_PER_SECOND", "1000"),
            ("EPHEMERA_MESSAGE_BURST", "1000"),
        ],
    );
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    for (size, width, height) in [("phone", 360, 740), ("desktop", 1200, 760)] {
        // The owner creates a room in the page and lands on the invite view.
        let browser = driver.browser(width, height, false).await;
        let id = create_in_lobby(&browser, &site, "Alice", Some("Friday standup")).await;
        browser
            .until("!document.getElementById('share').hidden && document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0")
            .await;
        browser.screenshot(&format!("invite-{size}")).await;
        browser.click("#share-close").await;

        // Forty messages from two people.
        let key = page_key(&browser).await;
        let (mut bob, welcome) = app.member(&id, "Bob").await;
        let bob_id = welcome["member_id"].as_str().expect("id").to_owned();
        let lines = [
            "Morning! Shipping the release today.",
            "Great. Anything blocking?",
            "The docs need screenshots, on it.",
            "Let me know when the build is green: https://example.com/ci.",
        ];
        for i in 0..40 {
            let text = lines[i % lines.len()];
            if i % 2 == 0 {
                say_sealed(&mut bob, &key, &id, &bob_id, text).await;
            } else {
                browser.fill("#text", text).await;
                browser.click("#say button[type=submit]").await;
                browser
                    .until("document.getElementById('text').value === ''")
                    .await;
            }
        }
        browser
            .until("document.querySelectorAll('#messages .message').length === 40")
            .await;
        browser.screenshot(&format!("room-{size}")).await;

        // Offline: a message waits in the box.
        cluster.instances[0].kill();
        browser
            .until("document.getElementById('status').textContent.startsWith('Reconnecting')")
            .await;
        browser
            .fill("#text", "Back in a minute, the train is in a tunnel.")
            .await;
        browser.click("#say button[type=submit]").await;
        browser
            .until("document.getElementById('text-state').textContent.startsWith('Not sent yet')")
            .await;
        browser.screenshot(&format!("pending-{size}")).await;
        cluster.instances[0].restart();
        browser.wait_live().await;
        browser
            .until("document.getElementById('text').value === ''")
            .await;

        // The owner's link is shared; the room is destroyed: the end overlay.
        bob.kill();
        destroy_as_owner(&app, &browser, &id).await;
        overlay_says(&browser, "This room was destroyed").await;
        browser.screenshot(&format!("ended-{size}")).await;
        browser.close().await;
    }
}

/// A message sent to an instance that never read it (the process stopped, then killed): the
/// page reconnects to the other instance, finds in the resumed history that the message did not
/// arrive, and sends it again with the same client_id; it is posted once.
#[tokio::test]
async fn a_message_the_server_never_took_is_sent_again_after_the_reconnect_once() {
    let mut cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10")]);
    let app = cluster.app();
    let site = site(&cluster);
    let room = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    let driver = Driver::start();
    let browser = joined(&driver, &site, &room.id, "bob").await;
    let on = cluster.holding_the_one_connection().await;
    cluster.instances[on].pause();
    browser.fill("#text", "lost in a frozen server\n").await;
    browser
        .until("document.getElementById('text-state').textContent === 'Sending…'")
        .await;
    cluster.instances[on].kill();
    browser.wait_live().await;
    browser
        .until("document.getElementById('text').value === '' && document.querySelectorAll('#messages .message').length === 1")
        .await;
    assert_eq!(
        posted(&app, &room.id, None, None).await,
        ["lost in a frozen server"],
        "posted exactly once"
    );
    browser.close().await;
}

/// A resume that cannot recover everything (more was said while the page was away than the
/// room keeps) leaves what the page shows on screen, says what was missed, and adds what is
/// still kept after it.
#[tokio::test]
async fn a_resume_that_cannot_recover_keeps_the_screen_and_says_what_was_missed() {
    let mut cluster = Cluster::start(
        2,
        &[
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "10"),
            ("EPHEMERA_HISTORY_LIMIT", "3"),
        ],
    );
    let app = cluster.app();
    let site = site(&cluster);
    let room = app
        .create_room(json!({"owner_name": "alice", "destroy_on_owner_offline": false}))
        .await;
    let driver = Driver::start();
    let browser = joined(&driver, &site, &room.id, "bob").await;
    let on = cluster.holding_the_one_connection().await;
    let other = cluster.instance(1 - on);
    let say = |text: &str| {
        let req = other
            .http
            .post(other.url(&format!("/rooms/{}/messages", room.id)))
            .bearer_auth(&room.owner_token)
            .json(&json!({ "text": text }));
        async move {
            let res = req.send().await.expect("posts");
            assert_eq!(res.status(), 201);
        }
    };
    say("one").await;
    say("two").await;
    browser
        .until("document.querySelectorAll('#messages .message').length === 2")
        .await;
    // Bob's instance freezes: nothing reaches his page while five more are said.
    cluster.instances[on].pause();
    for text in ["m1", "m2", "m3", "m4", "m5"] {
        say(text).await;
    }
    cluster.instances[on].kill();
    browser
        .until("[...document.querySelectorAll('#messages .notice')].some((n) => n.textContent.startsWith('Some messages were missed'))")
        .await;
    browser
        .until("document.querySelectorAll('#messages .message').length === 5")
        .await;
    assert_eq!(browser.messages().await, ["one", "two", "m3", "m4", "m5"]);
    browser.close().await;
}
