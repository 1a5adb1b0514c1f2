//! `--idle-sockets N`: N loopback TCP sockets that carry nothing, held open for the whole run.
//!
//! They let a run separate what a server does for idle clients from what the machine charges
//! for sockets merely existing (ANALYSIS.md: this VM's agent spends 150 ms of a CPU on 80,000
//! sockets every 3 s).
//! Both ends of each connection live in one helper process (`--hold-sockets`); a process may
//! hold at most 20,000 files here, so N is spread over as many helpers as that takes.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;

/// Most sockets one helper holds (both ends of 9,000 connections), under the file limit.
const PER_HELPER: usize = 18_000;

/// Helpers holding sockets (killed if this is dropped).
pub struct Held {
    pub sockets: usize,
    helpers: Vec<Child>,
}

impl Held {
    /// Ends the helpers and waits until they are gone, sockets and all.
    pub async fn release(self) {
        for mut helper in self.helpers {
            let _ = helper.kill().await;
        }
    }
}

/// Starts helpers holding `n` sockets between them (rounded up to whole connections) and waits
/// until they all do.
pub async fn hold(n: usize) -> Result<Held, String> {
    let helpers = n.div_ceil(PER_HELPER);
    let each = n.div_ceil(helpers.max(1));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut held = Held {
        sockets: 0,
        helpers: Vec::new(),
    };
    for _ in 0..helpers {
        // A helper also exits when its stdin closes, so it cannot outlive this process.
        let mut child = tokio::process::Command::new(&exe)
            .args(["pauses", &format!("--hold-sockets={each}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("helper stdout")?;
        let line = tokio::io::BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .map_err(|e| e.to_string())?;
        held.sockets += line
            .and_then(|l| l.strip_prefix("held ")?.parse::<usize>().ok())
            .ok_or("a helper could not hold its sockets")?;
        held.helpers.push(child);
    }
    Ok(held)
}

/// The helper: opens `n / 2` (rounded up) connections to itself, says how many sockets it
/// holds, and keeps them until its stdin closes.
pub fn serve(n: usize) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut sockets = Vec::with_capacity(n + 1);
    for _ in 0..n.div_ceil(2) {
        sockets.push(TcpStream::connect(addr).map_err(|e| e.to_string())?);
        sockets.push(listener.accept().map_err(|e| e.to_string())?.0);
    }
    println!("held {}", sockets.len());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}
