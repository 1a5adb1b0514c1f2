//! The UI in real headless Chromium, apart from the end-to-end suite: a browser takes a core
//! of its own, and the timing-sensitive load and fault tests must not share the machine with
//! one. The topology helpers are the end-to-end suite's own.

// Helpers shared with the end-to-end suite; this binary uses only some of them.
#![allow(dead_code)]

#[path = "../e2e/cluster.rs"]
mod cluster;
#[path = "../e2e/helpers.rs"]
mod helpers;
#[path = "../e2e/process.rs"]
mod process;

mod browser;
mod conversation;
mod owner;
mod page;
mod sealed;
