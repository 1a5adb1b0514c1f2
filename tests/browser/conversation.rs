//! The conversation in the page, two people on two instances through nginx, in an encrypted
//! room (the lobby's default, so edits are sealed too): an @mention completed from who is
//! online and highlighted for whom it names, formatting, a reply that quotes and jumps, an edit,
//! reactions with who reacted, a deletion the reply's quote follows, and notifications asked
//! for on a click, never before.

use crate::browser::{Browser, Driver, connections, site};
use crate::cluster::Cluster;
use crate::page::{create_in_lobby, shared_link};
use crate::sealed::join_link;
use fantoccini::key::Key;
use serde_json::json;

/// Types into the message box (as keys, so input events fire), without clearing it.
async fn type_keys(browser: &Browser, keys: &str) {
    let text = browser
        .client
        .find(fantoccini::Locator::Css("#text"))
        .await
        .expect("the box");
    text.send_keys(keys).await.expect("types");
}

/// A special key, as `send_keys` takes it.
fn key(k: Key) -> String {
    char::from(k).to_string()
}

/// Opens the actions of the message whose text contains `says` and clicks `button` in it.
async fn on_message(browser: &Browser, says: &str, button: &str) {
    let menu = format!(
        "[...document.querySelectorAll('#messages .message')].find((m) => m.querySelector('.text').textContent.includes({says:?})).querySelector('.msg-menu')"
    );
    browser.js(&format!("({menu}).open = true")).await;
    browser
        .until(&format!(
            "({menu}).querySelectorAll('.msg-actions button').length > 0"
        ))
        .await;
    browser
        .js(&format!(
            "[...({menu}).querySelectorAll('.msg-actions button')].find((b) => b.textContent === {button:?} || b.getAttribute('aria-label') === {button:?}).click()"
        ))
        .await;
}

#[tokio::test]
async fn two_people_reply_edit_react_delete_mention_and_are_notified() {
    let cluster = Cluster::start(2, &[]);
    let site = site(&cluster);
    let driver = Driver::start();
    let alice = driver.browser(1200, 800, false).await;
    create_in_lobby(&alice, &site, "alice", Some("Team")).await;
    let link = shared_link(&alice).await;
    alice.click("#share-close").await;
    let bob = driver.browser(390, 800, false).await;
    join_link(&bob, &link, "bob").await;
    // On two instances: bob reloads until nginx sends him to the other one.
    let mut reloads = 0;
    while connections(&cluster).await != [1, 1] {
        reloads += 1;
        assert!(reloads < 20, "nginx never spread the two pages");
        bob.client.refresh().await.expect("reloads");
        bob.wait_live().await;
    }
    alice
        .until("document.getElementById('online-count').textContent === '2'")
        .await;

    // Notifications: nothing asked on load; asked on the click, then on. The browser's
    // permission prompt cannot be answered over WebDriver, so the page's Notification is
    // replaced by one that records what is asked and shown.
    assert_eq!(alice.js("Notification.permission").await, json!("default"));
    assert_eq!(
        alice.js("localStorage.getItem('ephemera:notify')").await,
        json!(null)
    );
    alice
        .js("(() => { window.asked = 0; window.shown = []; window.Notification = class { static permission = 'default'; static requestPermission() { window.asked += 1; this.permission = 'granted'; return Promise.resolve('granted'); } constructor(title, options) { window.shown.push([title, options.body]); } }; return true; })()")
        .await;
    alice.click("#alerts summary").await;
    alice.click("#notify-btn").await;
    alice
        .until("document.getElementById('notify-btn').getAttribute('aria-pressed') === 'true'")
        .await;
    assert_eq!(alice.js("window.asked").await, json!(1));
    alice.click("#alerts summary").await;
    alice.click("#sound-btn").await;
    assert_eq!(
        alice.js("localStorage.getItem('ephemera:sound')").await,
        json!("true")
    );

    // An @mention, completed from who is online; formatting.
    type_keys(&bob, "@al").await;
    bob.until("!document.getElementById('mentions').hidden")
        .await;
    assert_eq!(
        bob.js("[...document.querySelectorAll('#mentions li')].map((l) => l.textContent)")
            .await,
        json!(["@alice"])
    );
    type_keys(&bob, &key(Key::Tab)).await;
    type_keys(&bob, "look at `this` and **that**").await;
    assert_eq!(
        bob.js("document.getElementById('text').value").await,
        json!("@alice look at `this` and **that**")
    );
    bob.click("#say button[type=submit]").await;
    alice
        .until("document.querySelector('#messages .message.mentions-me')")
        .await;
    assert_eq!(
        alice
            .js("(() => { const t = document.querySelector('#messages .message.mentions-me .text'); return [t.querySelector('.mention').textContent, t.querySelector('code').textContent, t.querySelector('strong').textContent]; })()")
            .await,
        json!(["@alice", "this", "that"])
    );
    alice.until("window.shown.length === 1").await;
    assert_eq!(
        alice.js("window.shown[0]").await,
        json!(["bob mentioned you", "@alice look at this and that"])
    );
    assert_eq!(
        bob.js("document.querySelector('#messages .message.mentions-me')")
            .await,
        json!(null),
        "only whom it names"
    );

    // A reply quotes the message and jumps to it.
    on_message(&alice, "look at", "Reply").await;
    alice
        .until("document.getElementById('context-text').textContent.startsWith('Replying to bob')")
        .await;
    type_keys(&alice, "on it").await;
    alice.click("#say button[type=submit]").await;
    bob.until("[...document.querySelectorAll('#messages .quote')].some((q) => q.textContent === '↩ bob: @alice look at this and that')")
        .await;

    // Bob edits his message; both see it, marked.
    on_message(&bob, "look at", "Edit").await;
    bob.until("document.getElementById('text').value.startsWith('@alice look')")
        .await;
    bob.fill("#text", "@alice look at the fixed one").await;
    bob.click("#say button[type=submit]").await;
    alice
        .until("[...document.querySelectorAll('#messages .message.is-edited .text')].some((t) => t.textContent === '@alice look at the fixed one')")
        .await;
    alice
        .until("[...document.querySelectorAll('#messages .quote')].some((q) => q.textContent === '↩ bob: @alice look at the fixed one')")
        .await;

    // Reactions: alice's from the menu, bob's on the chip; each says who.
    on_message(&alice, "fixed one", "React 🎉").await;
    bob.until("document.querySelector('#messages .reaction')?.textContent === '🎉 1'")
        .await;
    assert_eq!(
        bob.js("document.querySelector('#messages .reaction').getAttribute('aria-label')")
            .await,
        json!("🎉 1: alice")
    );
    bob.click("#messages .reaction").await;
    alice
        .until("document.querySelector('#messages .reaction')?.textContent === '🎉 2'")
        .await;
    alice
        .until(
            "document.querySelector('#messages .reaction').getAttribute('aria-pressed') === 'true'",
        )
        .await;
    alice.screenshot("conversation-desktop").await;
    bob.screenshot("conversation-phone").await;

    // Bob deletes it: gone for both, and the reply's quote says so.
    on_message(&bob, "fixed one", "Delete").await;
    bob.until("document.getElementById('confirm-delete').open")
        .await;
    bob.click("#confirm-delete-yes").await;
    alice
        .until("document.querySelector('#messages .message.deleted .text')?.textContent === 'Message deleted'")
        .await;
    alice
        .until("[...document.querySelectorAll('#messages .quote')].some((q) => q.textContent === '↩ bob: message deleted')")
        .await;
    assert_eq!(
        alice
            .js("document.getElementById('messages').textContent.includes('fixed one')")
            .await,
        json!(false)
    );

    // Sound stays on after a reload (remembered per browser); notifications were never asked
    // for again.
    alice.client.refresh().await.expect("reloads");
    alice.wait_live().await;
    assert_eq!(alice.text("sound-btn").await, "Sound: on");
    alice.close().await;
    bob.close().await;
}
