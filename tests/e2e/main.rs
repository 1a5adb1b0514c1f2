//! End-to-end suite: the real application, driven over HTTP and WebSocket.

mod abuse;
mod cli;
mod client;
mod cluster;
mod contract;
mod conversation;
mod faults;
mod helpers;
mod lifecycle;
mod loadgen;
mod ops;
mod owner;
mod process;
mod rest;
mod scale;
mod scripts;
mod sealed;
mod security;
mod ship;
mod soak;
mod websocket;
