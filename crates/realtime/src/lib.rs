//! One instance's live connections: sessions, the per-room local fan-out, timers and presence.
//!
//! - [`Hub`]: every local connection, grouped by room. One dispatcher task turns the store's
//!   [`store::Bus`] into deliveries: each event is parsed once and its JSON shared by every
//!   local member of the room. Two tickers (not one timer per connection) run the store's
//!   deadline sweep, and refresh the liveness of live members and ping every socket, a slice of
//!   the rooms at a time.
//! - [`commands`]: what a member does (post, leave, destroy), written once for the session
//!   and the REST handlers.
//! - [`session`]: one task per connection: join, welcome, then frames in and out. `api` spawns
//!   it on [`Hub::runtime`], so the dispatcher reaches it without waking another thread.
//! - [`Transport`], [`Direct`] and [`Inbound`]: what a connection is to this crate; `api`
//!   implements them on the socket. The fan-out writes chat messages through [`Direct`] while
//!   the connection's queue is empty, so a message wakes no task per socket.
//!
//! Architecture invariant: independent of actix; never talks to Redis, only to `store`.

pub mod bucket;
pub mod commands;
mod conn;
mod dispatch;
mod hub;
pub mod metrics;
mod rooms;
pub mod session;
mod tickers;

pub use commands::{Change, Commands, Draft, Refusal};
pub use hub::{Hub, HubConfig};
pub use session::Entry;

use bytes::Bytes;
use bytestring::ByteString;
use std::future::Future;
use std::sync::Arc;

/// A frame received from a client.
#[derive(Debug, Clone)]
pub enum Inbound {
    Text(ByteString),
    Binary,
    Ping(Bytes),
    Pong,
    /// The client closed the socket, with this code if it gave one.
    Close(Option<u16>),
    /// A frame over the configured size.
    TooLarge,
    /// The stream broke (protocol error or I/O).
    Broken,
}

/// The socket went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The writing half of a WebSocket.
pub trait Transport: 'static {
    fn send(&mut self, text: ByteString) -> impl Future<Output = Result<(), Gone>>;
    /// Writes what [`Direct::try_send`] left behind.
    fn flush(&mut self) -> impl Future<Output = Result<(), Gone>>;
    /// A handle the fan-out writes through without waking the session's task.
    fn direct(&self) -> Arc<dyn Direct>;
    fn ping(&mut self) -> impl Future<Output = Result<(), Gone>>;
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), Gone>>;
    fn close(self, code: u16, reason: &'static str) -> impl Future<Output = ()>;
}

/// Writing a text frame at once, from outside the session's task.
pub trait Direct: Send + Sync {
    /// Writes the frame unless earlier bytes are still waiting. What the kernel does not take
    /// now stays with the socket, for [`Transport::flush`].
    fn try_send(&self, text: &ByteString) -> Result<Sent, Gone>;
}

/// What [`Direct::try_send`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Not taken: earlier bytes wait to be written.
    No,
    /// Written whole.
    Whole,
    /// Taken, part of it still to be flushed.
    Partly,
}
