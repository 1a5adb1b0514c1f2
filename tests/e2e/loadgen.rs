//! Short runs of the load generator's scenarios through nginx: correctness only (speed is the
//! benchmark's business, scripts/bench.sh).

use crate::cluster::Cluster;
use crate::process::loadgen;
use serde_json::Value;
use std::process::Command;

fn run(cluster: &Cluster, args: &[&str]) -> Value {
    let base = format!("127.0.0.1:{}", cluster.nginx.port);
    let out = Command::new(loadgen())
        .args(args)
        .args([
            "--http",
            &format!("http://{base}"),
            "--ws",
            &format!("ws://{base}"),
        ])
        .args(["--warmup", "0.5", "--duration", "2", "--procs", "2"])
        .output()
        .expect("loadgen runs");
    report(out)
}

/// The JSON report of a run that must have succeeded.
fn report(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn each_scenario_runs_short_with_nothing_lost_doubled_or_dropped_limits_exact_presence_settled() {
    let cluster = Cluster::start(2, &[("EPHEMERA_ROOM_CREATE_PER_MINUTE", "100000")]);
    for args in [
        &["fanout", "--rooms", "4", "--members", "5", "--rate", "20"][..],
        &[
            "idle-rooms",
            "--rooms",
            "20",
            "--active",
            "2",
            "--members",
            "3",
        ][..],
        &["big-room", "--rooms", "1", "--members", "40", "--rate", "5"][..],
        &["idle", "--rooms", "10", "--members", "4"][..],
        // Two joiners per room more than it has room for: exactly those are refused, as full.
        &[
            "join-storm",
            "--rooms",
            "10",
            "--members",
            "6",
            "--over",
            "2",
        ][..],
        &["churn", "--rooms", "3", "--members", "4", "--churn", "0.5"][..],
        // Encrypted rooms: ciphertext through the same relay, resumes included.
        &[
            "churn",
            "--rooms",
            "3",
            "--members",
            "4",
            "--churn",
            "0.5",
            "--encrypted",
        ][..],
    ] {
        let report = run(&cluster, args);
        let members = report["parameters"]["rooms"].as_u64().expect("rooms")
            * report["parameters"]["members"].as_u64().expect("members");
        assert_eq!(report["connected"], members, "{args:?}: {report}");
        let over = report["parameters"]["rooms"].as_u64().expect("rooms")
            * report["parameters"]["over"].as_u64().expect("over");
        assert_eq!(report["refused"], over, "{args:?}: {report}");
        let by_code = match over {
            0 => serde_json::json!({}),
            n => serde_json::json!({ "4403": n }),
        };
        assert_eq!(report["refused_by_code"], by_code, "{args:?}: {report}");
        // Every member saw its room full (`unsettled` below counts those that never did).
        assert!(report["settle_ms"].is_u64(), "{report}");
        for key in [
            "rejected",
            "dropped",
            "unsettled",
            "lost",
            "gaps",
            "duplicates",
        ] {
            assert_eq!(report[key], 0, "{args:?} {key}: {report}");
        }
        if args[0] == "churn" {
            assert!(report["reconnects"].as_u64() > Some(0), "{report}");
        }
        if report["parameters"]["rate_per_room"].as_f64() > Some(0.0) {
            assert!(report["sent"].as_u64() > Some(0), "{args:?}: {report}");
            assert!(
                report["deliveries_per_second"].as_f64() > Some(0.0),
                "{report}"
            );
        }
    }
}

#[test]
fn the_floor_scenario_writes_at_its_rate_and_measures_writer_and_reader() {
    let out = Command::new(loadgen())
        .args(["floor", "--members", "50", "--rate", "5000"])
        .args(["--warmup", "0.5", "--duration", "2"])
        .output()
        .expect("loadgen runs");
    let report = report(out);
    // 2 s at 5000 writes/s, counted by when each was due: exactly the window's writes.
    let sent = report["sent"].as_u64().expect("sent");
    assert!((9_999..=10_001).contains(&sent), "{report}");
    assert_eq!(report["delivered_total"], report["sent"], "{report}");
    let processes = report["processes"].as_array().expect("processes");
    let names: Vec<&str> = processes
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["writer", "reader"], "{report}");
    for p in processes {
        assert!(p["cores"].as_f64() > Some(0.0), "{report}");
    }
}

#[test]
fn the_pauses_scenario_spins_on_every_cpu_and_sums_up_its_gaps() {
    let out = Command::new(loadgen())
        .args(["pauses", "--duration", "1"])
        .output()
        .expect("loadgen runs");
    let report = report(out);
    let pauses = &report["pauses"];
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(pauses["threads"], cpus, "{report}");
    assert_eq!(pauses["gap_ms"], 0.5, "{report}");
    let worst = report["worst_ms_per_second"].as_array().expect("worst");
    assert_eq!(worst.len(), 1, "{report}");
    let longest = pauses["longest_ms"].as_f64().expect("longest");
    assert_eq!(worst[0].as_f64(), Some(longest), "{report}");
    let share = pauses["lost_percent"].as_f64().expect("lost");
    assert!((0.0..100.0).contains(&share), "{report}");
    assert!(pauses["per_second"].as_f64() >= pauses["long_per_second"].as_f64());
    assert!(pauses["steal_percent"].as_f64() >= Some(0.0), "{report}");
}

/// `--idle-sockets` spreads its sockets over helper processes (a process may hold at most 20,000
/// files here), which hold them for the whole run and are gone when it ends.
#[test]
fn idle_sockets_are_held_by_helpers_for_the_run_and_released_after() {
    let helpers = || {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains("--hold-sockets=10000"))
            .count()
    };
    let run = Command::new(loadgen())
        .args(["pauses", "--duration", "3", "--idle-sockets", "20000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while helpers() < 2 {
        assert!(std::time::Instant::now() < deadline, "no helpers appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let report = report(run.wait_with_output().expect("loadgen ends"));
    assert_eq!(report["parameters"]["idle_sockets"], 20_000, "{report}");
    assert_eq!(helpers(), 0, "helpers outlived the run");
}

/// Members that joined first keep answering pings while the rest join: with pings every second
/// (a socket silent for two is closed), a ramp of several seconds loses no one.
#[test]
fn early_members_outlive_a_ramp_longer_than_the_ping_timeout() {
    let cluster = Cluster::start(
        2,
        &[
            ("EPHEMERA_PING_INTERVAL_SECONDS", "1"),
            ("EPHEMERA_ROOM_CREATE_PER_MINUTE", "100000"),
            ("EPHEMERA_MAX_CONNECTIONS_PER_IP", "100000"),
            ("EPHEMERA_CONNECT_RATE_PER_SECOND", "100000"),
        ],
    );
    // One join at a time in each of the two processes: several seconds.
    let report = run(
        &cluster,
        &["idle", "--rooms", "200", "--members", "20", "--ramp", "1"],
    );
    assert!(
        report["join_ms"].as_u64() > Some(3_000),
        "the ramp must outlast two ping intervals to test anything: {report}"
    );
    assert_eq!(report["connected"], 4_000, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
}
