//! End-to-end suite: the real application, driven over HTTP and WebSocket.

mod abuse;
mod cluster;
mod helpers;
mod lifecycle;
mod ops;
mod process;
mod rest;
mod scale;
mod websocket;
