//! The `floor` scenario: what one delivery costs the machine before any server runs a line.
//!
//! A writer thread sends one 160-byte WebSocket-sized frame per "delivery", paced at `rate`
//! frames/s, round-robin over `members` loopback TCP connections (TCP_NODELAY), whose other
//! ends a child process reads with tokio, as the load generator and nginx do. The writer does
//! nothing else, so its CPU per write is the kernel's price of one write per delivery: the least
//! any server that writes each delivery to its own socket can cost on this machine.

use crate::proc_stats::{self, Usage};
use crate::run::now_us;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A text frame header (0x81, 16-bit length) and a payload of the size of a chat message.
const FRAME: [u8; 160] = {
    let mut frame = [b'x'; 160];
    frame[0] = 0x81;
    frame[1] = 126;
    frame
};

/// Runs the writer and its reader; returns the frames written in the window and the CPU of both.
pub async fn run(
    members: usize,
    rate: f64,
    warmup_us: u64,
    duration_us: u64,
) -> Result<(u64, Vec<Usage>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut reader = tokio::process::Command::new(exe)
        .args(["floor", &format!("--members={members}")])
        .arg(format!("--floor-reader={port}"))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let reader_pid = reader.id().ok_or("reader pid")?;
    let sockets = tokio::task::spawn_blocking(move || {
        (0..members)
            .map(|_| {
                let (socket, _) = listener.accept()?;
                socket.set_nodelay(true)?;
                Ok(socket)
            })
            .collect::<std::io::Result<Vec<TcpStream>>>()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;

    let start = now_us() + warmup_us;
    let end = start + duration_us;
    let watched = vec![("reader".to_owned(), reader_pid)];
    let usage = tokio::spawn(proc_stats::measure("writer".into(), watched, start, end));
    let written = tokio::task::spawn_blocking(move || write_paced(sockets, rate, start, end))
        .await
        .map_err(|e| e.to_string())??;
    let usage = usage.await.map_err(|e| e.to_string())?;
    let _ = reader.kill().await;
    Ok((written, usage))
}

/// Writes `rate` frames/s round-robin; returns how many were due within `start..end`. Writes
/// are counted by when they were due, so a writer starved of CPU catches up instead of
/// changing the count.
fn write_paced(
    mut sockets: Vec<TcpStream>,
    rate: f64,
    start: u64,
    end: u64,
) -> Result<u64, String> {
    let began = now_us();
    let due = |k: u64| began + (k as f64 * 1e6 / rate) as u64;
    let (mut k, mut in_window, count) = (0u64, 0u64, sockets.len() as u64);
    while due(k) < end {
        let now = now_us();
        while due(k) <= now && due(k) < end {
            let socket = &mut sockets[(k % count) as usize];
            socket
                .write_all(&FRAME)
                .map_err(|e| format!("floor write: {e}"))?;
            in_window += u64::from(due(k) >= start);
            k += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(in_window)
}

/// The child: `members` connections to `port`, each read by its own task until it closes.
pub async fn read(port: u16, members: usize) -> Result<(), String> {
    let mut tasks = Vec::with_capacity(members);
    for _ in 0..members {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}
