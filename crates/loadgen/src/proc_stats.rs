//! CPU time and peak memory of processes, from /proc, over the measured window, so figures can
//! be turned into CPU microseconds per delivery.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
pub const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Usage {
    pub name: String,
    pub pid: u32,
    /// CPU seconds (user + system) spent inside the window.
    pub cpu_seconds: f64,
    /// The same per second of window: cores in use.
    pub cores: f64,
    /// Peak resident memory of the process so far (VmHWM).
    pub peak_rss_kib: u64,
    /// Resident memory at the end of the window (VmRSS).
    pub rss_kib: u64,
}

/// CPU ticks of `pid`, and of its children when `children` (nginx's workers are children of
/// its master).
fn ticks(pid: u32, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let children: u64 = match children {
        true => std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .filter_map(|c| ticks(c, true))
            .sum(),
        false => 0,
    };
    Some(utime + stime + children)
}

fn memory(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Measures this process (as `own`, without its children: they are shards or the floor's
/// reader, measured on their own) and the `watched` (name, pid) processes with their children,
/// between the wall-clock instants `start_us` and `end_us`.
pub async fn measure(
    own: String,
    watched: Vec<(String, u32)>,
    start_us: u64,
    end_us: u64,
) -> Vec<Usage> {
    let mut targets = vec![(own, std::process::id(), false)];
    targets.extend(watched.into_iter().map(|(name, pid)| (name, pid, true)));
    let until = |at: u64| Duration::from_micros(at.saturating_sub(crate::run::now_us()));
    tokio::time::sleep(until(start_us)).await;
    let before: Vec<Option<u64>> = targets
        .iter()
        .map(|&(_, pid, children)| ticks(pid, children))
        .collect();
    tokio::time::sleep(until(end_us)).await;
    let seconds = (end_us - start_us) as f64 / 1e6;
    targets
        .into_iter()
        .zip(before)
        .map(|((name, pid, children), before)| {
            let cpu = match (before, ticks(pid, children)) {
                (Some(b), Some(a)) => a.saturating_sub(b) as f64 / TICKS_PER_SECOND,
                _ => 0.0,
            };
            Usage {
                name,
                pid,
                cpu_seconds: cpu,
                cores: cpu / seconds.max(1e-9),
                peak_rss_kib: memory(pid, "VmHWM:"),
                rss_kib: memory(pid, "VmRSS:"),
            }
        })
        .collect()
}

/// `name=pid` pairs from the command line.
pub fn parse_watch(specs: &[String]) -> Result<Vec<(String, u32)>, String> {
    specs
        .iter()
        .filter(|s| !s.is_empty())
        .map(|spec| {
            let (name, pid) = spec
                .split_once('=')
                .ok_or(format!("--watch {spec}: name=pid"))?;
            let pid = pid
                .parse()
                .map_err(|_| format!("--watch {spec}: bad pid"))?;
            Ok((name.to_owned(), pid))
        })
        .collect()
}
