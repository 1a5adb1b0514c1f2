//! The `pauses` scenario: how long the machine keeps a thread that is ready to run from running.
//!
//! One thread per CPU spins on the monotonic clock and records every gap between two readings
//! longer than `GAP`. On a quiet machine such a gap is time the CPU spent elsewhere: in the
//! guest's kernel, or, in a VM, with the host (the kernel counts the latter as steal time,
//! reported alongside). A message in flight during a pause waits it out, so the pauses bound the
//! tail latency any server can have here.

use crate::proc_stats::TICKS_PER_SECOND;
use serde::Serialize;
use std::f64::consts::TAU;
use std::time::{Duration, Instant};

/// The shortest gap counted as a pause.
const GAP: Duration = Duration::from_micros(500);
/// Gaps at least this long are also counted on their own.
const LONG_GAP: Duration = Duration::from_millis(2);

#[derive(Serialize, Debug)]
pub struct Pauses {
    pub threads: usize,
    pub gap_ms: f64,
    /// Gaps of at least `gap_ms`, per second, over all threads.
    pub per_second: f64,
    /// Gaps of at least 2 ms, per second, over all threads.
    pub long_per_second: f64,
    /// The share of the threads' time lost in gaps.
    pub lost_percent: f64,
    pub longest_ms: f64,
    /// The kernel's steal time over the run, as a share of all CPUs' time.
    pub steal_percent: f64,
    /// The period, between 0.5 and 4 s, at which the gaps of at least 2 ms line up best (of
    /// periods that do so about equally, the longest: see `strongest_period`), and how well
    /// (the mean resultant length of their phases: 1 when all fall at the same phase).
    pub period_s: f64,
    pub period_strength: f64,
    /// About the best strength random instants reach over the periods tried
    /// (sqrt(ln(periods) / gaps)): a strength well above it is a real period.
    pub period_chance: f64,
}

/// Spins one thread per CPU for `duration`; returns the pauses and the longest gap of each
/// second.
pub fn run(duration: Duration) -> Result<(Pauses, Vec<f64>), String> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let steal_before = steal_ticks()?;
    let start = Instant::now();
    let spinners: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || spin(start, duration)))
        .collect();
    let mut gaps: Vec<(f64, f64)> = Vec::new();
    for spinner in spinners {
        gaps.extend(spinner.join().map_err(|_| "a spinning thread panicked")?);
    }
    let steal = steal_ticks()?.saturating_sub(steal_before) as f64 / TICKS_PER_SECOND;
    Ok(summarise(threads, duration.as_secs_f64(), &gaps, steal))
}

/// The steal ticks (USER_HZ) of all CPUs, from the `cpu` line of /proc/stat.
fn steal_ticks() -> Result<u64, String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    stat.lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .and_then(|l| l.split_whitespace().nth(7)?.parse().ok())
        .ok_or_else(|| "/proc/stat has no steal time".into())
}

/// Reads the clock until `duration` has passed since `start`; returns each gap longer than
/// `GAP` as (seconds since `start` at which it began, its length in seconds).
fn spin(start: Instant, duration: Duration) -> Vec<(f64, f64)> {
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    while last.duration_since(start) < duration {
        let now = Instant::now();
        let gap = now.duration_since(last);
        if gap >= GAP {
            gaps.push((last.duration_since(start).as_secs_f64(), gap.as_secs_f64()));
        }
        last = now;
    }
    gaps
}

fn summarise(
    threads: usize,
    seconds: f64,
    gaps: &[(f64, f64)],
    steal_seconds: f64,
) -> (Pauses, Vec<f64>) {
    let mut worst_ms = vec![0.0f64; seconds.ceil() as usize];
    for &(at, length) in gaps {
        if let Some(worst) = worst_ms.get_mut(at as usize) {
            *worst = worst.max(length * 1e3);
        }
    }
    let long: Vec<f64> = gaps
        .iter()
        .filter(|g| g.1 >= LONG_GAP.as_secs_f64())
        .map(|g| g.0)
        .collect();
    let (period_s, period_strength) = strongest_period(&long);
    let period_chance = ((PERIODS_MS.count() as f64).ln() / long.len() as f64)
        .sqrt()
        .min(1.0);
    let thread_seconds = threads as f64 * seconds;
    let pauses = Pauses {
        threads,
        gap_ms: GAP.as_secs_f64() * 1e3,
        per_second: gaps.len() as f64 / seconds,
        long_per_second: long.len() as f64 / seconds,
        lost_percent: 100.0 * gaps.iter().map(|g| g.1).sum::<f64>() / thread_seconds,
        longest_ms: gaps.iter().map(|g| g.1 * 1e3).fold(0.0, f64::max),
        steal_percent: 100.0 * steal_seconds / thread_seconds,
        period_s,
        period_strength,
        period_chance,
    };
    (pauses, worst_ms)
}

/// The periods `strongest_period` tries, in milliseconds.
const PERIODS_MS: std::ops::RangeInclusive<u32> = 500..=4000;

/// Folds the instants over every period from 0.5 to 4 s in 1 ms steps; returns the period at
/// which their phases agree best and that agreement (0 to 1). Folding at P/k lines up events
/// that recur at P as well as P does, so of the best period's multiples that line them up
/// about as well (within `TIE`), the longest is the period. Events that do recur at P/k cancel
/// out at P (every other one falls at the opposite phase), so this never doubles a true period.
fn strongest_period(instants: &[f64]) -> (f64, f64) {
    let n = instants.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let strength = |ms: u32| {
        let period = f64::from(ms) / 1e3;
        let (sin, cos) = instants
            .iter()
            .map(|t| (TAU * t / period).sin_cos())
            .fold((0.0, 0.0), |(s, c), (ds, dc)| (s + ds, c + dc));
        sin.hypot(cos) / n as f64
    };
    let strengths: Vec<(u32, f64)> = PERIODS_MS.map(|ms| (ms, strength(ms))).collect();
    let best = |from: u32, to: u32| {
        strengths
            .iter()
            .filter(|(ms, _)| (from..=to).contains(ms))
            .fold((0, 0.0), |best, &p| if p.1 > best.1 { p } else { best })
    };
    let (ms, top) = best(*PERIODS_MS.start(), *PERIODS_MS.end());
    // A multiple k of a period found to the millisecond is known to k - 1 ms either way.
    let (ms, top) = (2..=PERIODS_MS.end() / ms)
        .rev()
        .map(|k| best(k * ms - (k - 1), k * ms + (k - 1)))
        .find(|&(_, s)| s >= top - TIE)
        .unwrap_or((ms, top));
    (f64::from(ms) / 1e3, top)
}

/// How much less a multiple of the best period may line the instants up and still be taken
/// for the same period.
const TIE: f64 = 0.05;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_that_recur_each_second_and_a_quarter_show_that_period() {
        // Up to 40 ms early or late, so that half the period lines them up less well.
        let jitter = |k: u32| f64::from(k * 7 % 9) * 0.01 - 0.04;
        let gaps: Vec<(f64, f64)> = (0..40)
            .map(|k| (0.3 + 1.25 * f64::from(k) + jitter(k), 0.003))
            .collect();
        let (pauses, worst) = summarise(2, 50.0, &gaps, 0.5);
        assert!((pauses.period_s - 1.25).abs() < 0.003, "{pauses:?}");
        assert!(pauses.period_strength > 0.9, "{pauses:?}");
        assert!((pauses.period_chance - (3501f64.ln() / 40.0).sqrt()).abs() < 1e-9);
        assert_eq!(pauses.per_second, 0.8);
        assert_eq!(pauses.long_per_second, 0.8);
        assert!((pauses.lost_percent - 0.12).abs() < 1e-9, "{pauses:?}");
        assert!((pauses.steal_percent - 0.5).abs() < 1e-9, "{pauses:?}");
        assert_eq!(pauses.longest_ms, 3.0);
        assert_eq!(worst.len(), 50);
        assert_eq!(worst[0], 3.0);
        assert_eq!(worst[3], 0.0);
    }

    #[test]
    fn gaps_that_recur_exactly_every_three_seconds_show_three_not_a_fraction() {
        // Without jitter 0.5, 0.6, 0.75, 1, 1.5 and 3 s line them up equally well.
        let gaps: Vec<(f64, f64)> = (0..20).map(|k| (3.0 * f64::from(k), 0.003)).collect();
        let (pauses, _) = summarise(2, 60.0, &gaps, 0.0);
        assert_eq!(pauses.period_s, 3.0, "{pauses:?}");
        assert!(pauses.period_strength > 0.99, "{pauses:?}");
    }

    #[test]
    fn gaps_that_recur_every_one_and_a_half_seconds_are_not_taken_for_three() {
        let gaps: Vec<(f64, f64)> = (0..40).map(|k| (1.5 * f64::from(k), 0.003)).collect();
        let (pauses, _) = summarise(2, 60.0, &gaps, 0.0);
        assert_eq!(pauses.period_s, 1.5, "{pauses:?}");
    }

    #[test]
    fn no_gaps_make_an_empty_summary() {
        let (pauses, worst) = summarise(2, 3.0, &[], 0.0);
        assert_eq!(pauses.per_second, 0.0);
        assert_eq!((pauses.period_s, pauses.period_strength), (0.0, 0.0));
        assert_eq!(pauses.period_chance, 1.0);
        assert_eq!(worst, vec![0.0; 3]);
    }
}
