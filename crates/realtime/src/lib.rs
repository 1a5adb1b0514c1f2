//! One instance's live connections: sessions, the per-room local fan-out, timers and presence.
//!
//! - [`Hub`]: every local connection, grouped by room. One dispatcher task turns the store's
//!   [`store::Bus`] into deliveries: each event is parsed once and its JSON shared by every
//!   local member of the room. Two tickers (not one timer per connection) run the store's
//!   deadline sweep, and refresh the liveness of live members and ping every socket, a slice of
//!   the rooms at a time.
//! - [`session`]: one task per connection: join, welcome, then frames in and out. `api` spawns
//!   it on [`Hub::runtime`], so the dispatcher reaches it without waking another thread.
//! - [`Transport`] and [`Inbound`]: what a connection is to this crate; `api` implements them
//!   on the socket.
//!
//! Architecture invariant: independent of actix; never talks to Redis, only to `store`.

mod hub;
pub mod metrics;
pub mod session;

pub use hub::{Hub, HubConfig};
pub use session::Entry;

use bytes::Bytes;
use bytestring::ByteString;
use std::future::Future;

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
    fn ping(&mut self) -> impl Future<Output = Result<(), Gone>>;
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), Gone>>;
    fn close(self, code: u16, reason: &'static str) -> impl Future<Output = ()>;
}
