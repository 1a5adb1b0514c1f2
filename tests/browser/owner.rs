//! The owner's controls in the page: three people on two instances through nginx. The owner
//! locks the room (a newcomer is told), gives it more time (every page's countdown moves),
//! makes another member the owner (the controls move with it), the new owner removes someone
//! (who is told, and stays out), and when the new owner's browser goes, the others see how
//! long the room waits for it.

use crate::browser::{Browser, Driver, banner_says, overlay_says, site};
use crate::cluster::Cluster;
use crate::page::{create_in_lobby, shared_link};
use serde_json::json;

/// Opens the room's link (its key in the fragment) and joins as `name`.
async fn join_link(browser: &Browser, link: &str, name: &str) {
    browser.goto(link).await;
    browser
        .until("!document.getElementById('join').hidden")
        .await;
    browser.fill("#join-name", name).await;
    browser.click("#join-form button[type=submit]").await;
}

/// Whether the page shows the owner's controls.
async fn has_owner_tools(browser: &Browser) -> bool {
    browser
        .js("!document.getElementById('owner-tools').hidden")
        .await
        == json!(true)
}

/// Opens the owner's menu (beside the countdown) and chooses `button` in it.
async fn owner_menu(browser: &Browser, button: &str) {
    browser.click("#owner-tools summary").await;
    browser
        .until("document.getElementById('owner-tools').open")
        .await;
    browser.click(button).await;
}

/// A screenshot with the owner's menu open, which is then closed again.
async fn shot_with_menu(browser: &Browser, name: &str) {
    browser.click("#owner-tools summary").await;
    browser
        .until("document.getElementById('owner-tools').open")
        .await;
    browser.screenshot(name).await;
    browser.click("#owner-tools summary").await;
    browser
        .until("!document.getElementById('owner-tools').open")
        .await;
}

/// Opens the owner's menu action `label` ("Remove", "Make owner") for `name`, and confirms.
async fn act_on(browser: &Browser, label: &str, name: &str, confirm: &str) {
    browser
        .click(&format!("#online button[aria-label='{label}: {name}']"))
        .await;
    browser
        .until(&format!(
            "document.querySelector('{confirm}').closest('dialog').open"
        ))
        .await;
    browser.click(confirm).await;
}

/// The countdown's seconds left, as the page shows them.
async fn seconds_left(browser: &Browser) -> u64 {
    let text = browser.text("countdown").await;
    text.split(':')
        .map(|part| part.trim().parse::<u64>().expect("a countdown"))
        .fold(0, |total, part| total * 60 + part)
}

#[tokio::test]
async fn the_owner_locks_extends_hands_over_and_the_new_owner_removes_someone_with_screenshots() {
    let cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "2")]);
    let site = site(&cluster);
    let driver = Driver::start();
    let alice = driver.browser(1200, 800, false).await;
    create_in_lobby(&alice, &site, "alice", Some("Team")).await;
    let link = shared_link(&alice).await;
    alice.click("#share-close").await;
    let bob = driver.browser(1200, 800, false).await;
    join_link(&bob, &link, "bob").await;
    bob.wait_live().await;
    let carol = driver.browser(390, 800, false).await;
    join_link(&carol, &link, "carol").await;
    carol.wait_live().await;
    alice
        .until("document.getElementById('online-count').textContent === '3'")
        .await;

    // Only the owner has the controls, and a menu for each other member.
    assert!(has_owner_tools(&alice).await);
    assert!(!has_owner_tools(&bob).await);
    let menus = alice
        .js("[...document.querySelectorAll('#online .member-menu')].length")
        .await;
    assert_eq!(menus, json!(2));
    let menus = bob
        .js("document.querySelectorAll('#online .member-menu').length")
        .await;
    assert_eq!(menus, json!(0));
    shot_with_menu(&alice, "owner-controls-desktop").await;

    // Locked: everyone sees it, and a newcomer is told, not let in.
    owner_menu(&alice, "#lock-btn").await;
    bob.until("!document.getElementById('locked').hidden").await;
    bob.until("[...document.querySelectorAll('#messages .notice')].some((n) => n.textContent.startsWith('The owner locked the room'))")
        .await;
    let dave = driver.browser(1000, 700, false).await;
    join_link(&dave, &link, "dave").await;
    banner_says(&dave, "This room is locked").await;
    owner_menu(&alice, "#lock-btn").await;
    bob.until("document.getElementById('locked').hidden").await;

    // An hour more: every page's countdown moves at once.
    let before = seconds_left(&bob).await;
    owner_menu(&alice, "#extend-1h").await;
    bob.until(&format!(
        "(() => {{ const [m, s] = document.getElementById('countdown').textContent.split(':').slice(-2).map(Number); const h = document.getElementById('countdown').textContent.split(':').length === 3 ? Number(document.getElementById('countdown').textContent.split(':')[0]) : 0; return h * 3600 + m * 60 + s > {before} + 3000; }})()"
    ))
    .await;
    assert!(seconds_left(&carol).await > before + 3000);
    // Or any end within the bounds: half an hour from now.
    owner_menu(&alice, "#extend-btn").await;
    alice.until("document.getElementById('extend').open").await;
    alice.fill("#extend-minutes", "30").await;
    alice.click("#extend-yes").await;
    bob.until("(() => { const t = document.getElementById('countdown').textContent; return t.startsWith('30:') || t.startsWith('29:'); })()")
        .await;

    // Carol is made owner: the controls move to her, with a token of her own.
    act_on(&alice, "Make owner", "carol", "#confirm-handover-yes").await;
    carol
        .until("!document.getElementById('owner-tools').hidden")
        .await;
    alice
        .until("document.getElementById('owner-tools').hidden")
        .await;
    let token = carol
        .until("localStorage.getItem('ephemera:owner:' + location.pathname.split('/')[2])")
        .await;
    assert!(token.is_string(), "{token}");
    assert_eq!(
        alice
            .js("localStorage.getItem('ephemera:owner:' + location.pathname.split('/')[2])")
            .await,
        json!(null),
        "the old owner's token is dropped"
    );
    bob.until("[...document.querySelectorAll('#messages .notice')].some((n) => n.textContent === 'carol is the owner of this room now.')")
        .await;
    shot_with_menu(&carol, "owner-controls-phone").await;

    // Carol removes bob: he is told and stays out; the others see why he went.
    act_on(&carol, "Remove", "bob", "#confirm-kick-yes").await;
    overlay_says(&bob, "You were removed").await;
    alice
        .until("[...document.querySelectorAll('#messages .notice')].some((n) => n.textContent === 'bob was removed by the owner')")
        .await;
    // Opened anew (the same address again would not load the page again).
    bob.goto("about:blank").await;
    bob.goto(&link).await;
    bob.until("!document.getElementById('join').hidden").await;
    bob.fill("#join-name", "robert").await;
    bob.click("#join-form button[type=submit]").await;
    overlay_says(&bob, "You cannot join this room").await;

    // Carol's phone goes: the others see how long the room waits for her (the owner grace,
    // 120 s, not the 2 s presence grace).
    carol.close().await;
    let away = alice
        .until("!document.getElementById('owner-away').hidden && document.getElementById('owner-away').textContent")
        .await;
    let away = away.as_str().expect("a banner").to_owned();
    assert!(
        away.starts_with("The owner is away; this room ends in 1:")
            && away.ends_with(" unless they return."),
        "{away}"
    );
    alice.screenshot("owner-away-desktop").await;
    for browser in [alice, bob, dave] {
        browser.close().await;
    }
}
