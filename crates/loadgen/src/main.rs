//! `ephemera-loadgen`: drives a chat server with many WebSocket clients and reports deliveries
//! per second, end-to-end latency, correctness (gaps, duplicates, drops) and the CPU time and
//! peak memory of every process involved. See docs/benchmarks/README.md.

mod floor;
mod idle_sockets;
mod pauses;
mod proc_stats;
mod run;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// R rooms x M members, every room receiving `rate` messages/s.
    Fanout,
    /// Many rooms, only `active` of them sending.
    IdleRooms,
    /// One room of many members: join time and fan-out.
    BigRoom,
    /// Connections held open without messages.
    Idle,
    /// Everyone joins as fast as `--ramp` concurrent connects allow, `--over` more per room
    /// than it has room for: join time, and refusals by close code.
    JoinStorm,
    /// Fanout while members that do not send drop their connection every `--churn` seconds and
    /// resume with their last id: nothing may be missed or doubled.
    Churn,
    /// No server: paced small writes over `members` loopback connections read by another
    /// process; the writer's CPU per write is the machine's floor per delivery.
    Floor,
    /// No server: one thread per CPU spins on the clock; gaps over 0.5 ms are the machine's
    /// pauses, which every message in flight waits out.
    Pauses,
}

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    scenario: Scenario,
    /// Base URL for room creation.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    http: String,
    /// WebSocket base URLs, comma-separated; clients are spread over them.
    #[arg(long, default_value = "ws://127.0.0.1:8080", value_delimiter = ',')]
    ws: Vec<String>,
    #[arg(long, default_value = "/rooms")]
    create_path: String,
    /// `{room}` is replaced by the room id.
    #[arg(long, default_value = "/rooms/{room}/ws")]
    ws_path: String,
    #[arg(long, default_value_t = 50)]
    rooms: usize,
    #[arg(long, default_value_t = 20)]
    members: usize,
    /// Joiners per room beyond its user limit (`join-storm`): exactly these must be refused.
    #[arg(long, default_value_t = 0)]
    over: usize,
    /// Rooms that send (default: all).
    #[arg(long)]
    active: Option<usize>,
    /// Messages per second per active room.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Client processes (one holds at most ~19k sockets here).
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N.
    #[arg(long, default_value_t = 4)]
    sources: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
    /// Seconds between a churning member's reconnects (`churn`).
    #[arg(long, default_value_t = 3.0)]
    churn: f64,
    /// Encrypted rooms (Ephemera's `"encrypted": true`): members send random `ciphertext` of
    /// the size the same text would have encrypted, instead of `text`.
    #[arg(long)]
    encrypted: bool,
    /// Every message carries a `client_id`, as the page's do (the server remembers them for
    /// retries).
    #[arg(long)]
    client_ids: bool,
    /// One send in this many is a reaction or an edit (alternately) of the sender's own latest
    /// message instead of a new message: the conversation's events beside plain messages
    /// (0: messages only).
    #[arg(long, default_value_t = 0)]
    mix: u64,
    /// Other processes to measure: name=pid, comma-separated.
    #[arg(long, value_delimiter = ',')]
    watch: Vec<String>,
    /// Loopback TCP sockets to hold open, idle, for the whole run (helper processes hold both
    /// ends): what sockets cost the machine just by existing, without any server's work.
    #[arg(long, default_value_t = 0)]
    idle_sockets: usize,
    /// Write the JSON result here (also printed).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Internal: run as shard `i` of `--procs`, with these room ids.
    #[arg(long, hide = true)]
    shard: Option<usize>,
    #[arg(long, hide = true, value_delimiter = ',')]
    room_ids: Vec<String>,
    /// Internal: be the reading side of `floor`, connecting to this port.
    #[arg(long, hide = true)]
    floor_reader: Option<u16>,
    /// Internal: be a helper of `--idle-sockets`, holding this many.
    #[arg(long, hide = true)]
    hold_sockets: Option<usize>,
}

/// What every process needs to play its part.
#[derive(Clone, Debug)]
pub struct Plan {
    pub http: String,
    pub targets: Vec<String>,
    pub create_path: String,
    pub ws_path: String,
    pub rooms: usize,
    /// Members each room has room for (its user limit, less the owner's reserved slot).
    pub members: usize,
    /// Joiners per room beyond that (`join-storm`).
    pub over: usize,
    pub active: usize,
    pub rate: f64,
    /// Members of each active room that send (each at `rate / senders`).
    pub senders: usize,
    pub max_users: usize,
    pub expiry_seconds: u64,
    pub shard: usize,
    pub shards: usize,
    pub sources: usize,
    pub ramp: usize,
    /// Microseconds between reconnects of members that do not send, when churning.
    pub churn_us: Option<u64>,
    /// Encrypted rooms: messages are `ciphertext`.
    pub encrypted: bool,
    /// Messages carry a `client_id`.
    pub client_ids: bool,
    /// One send in this many reacts to or edits the sender's latest message (0: none).
    pub mix: u64,
    pub warmup_us: u64,
    pub duration_us: u64,
}

#[derive(Serialize)]
struct Report {
    scenario: Scenario,
    parameters: serde_json::Value,
    connected: u64,
    refused: u64,
    refused_by_code: run::ByCode,
    dropped: u64,
    dropped_by_code: run::ByCode,
    reconnects: u64,
    sent: u64,
    rejected: u64,
    expected_deliveries: u64,
    delivered_total: u64,
    lost: i64,
    gaps: u64,
    duplicates: u64,
    deliveries_per_second: f64,
    join_ms: u64,
    settle_ms: u64,
    unsettled: u64,
    latency_ms: Percentiles,
    /// The worst latency of the messages sent in each second of the window.
    worst_ms_per_second: Vec<f64>,
    processes: Vec<proc_stats::Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pauses: Option<pauses::Pauses>,
}

#[derive(Serialize, Default)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(main_async(args)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ephemera-loadgen: {e}");
            std::process::exit(1);
        }
    }
}

async fn main_async(args: Args) -> Result<(), String> {
    if let Some(n) = args.hold_sockets {
        return idle_sockets::serve(n);
    }
    if let Some(port) = args.floor_reader {
        return floor::read(port, args.members).await;
    }
    if args.over > 0 && args.scenario != Scenario::JoinStorm {
        return Err("--over is for join-storm only".into());
    }
    if args.shard.is_some() {
        return shard(&args).await;
    }
    let held = match args.idle_sockets {
        0 => None,
        n => Some(idle_sockets::hold(n).await?),
    };
    let mut report = match args.scenario {
        Scenario::Floor => floor_report(&args).await?,
        Scenario::Pauses => pauses_report(&args).await?,
        _ => chat(&args).await?,
    };
    report.parameters["idle_sockets"] = held.as_ref().map_or(0, |h| h.sockets).into();
    if let Some(held) = held {
        held.release().await;
    }
    write_report(&report, args.out.as_deref())
}

/// A chat scenario's plan, the same in every process but for `shard`.
fn plan(args: &Args) -> Plan {
    let (members, rate, active) = match args.scenario {
        Scenario::Idle | Scenario::JoinStorm => (args.members, 0.0, 0),
        _ => (
            args.members,
            args.rate,
            args.active.unwrap_or(args.rooms).min(args.rooms),
        ),
    };
    Plan {
        http: args.http.trim_end_matches('/').to_owned(),
        targets: args
            .ws
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect(),
        create_path: args.create_path.clone(),
        ws_path: args.ws_path.clone(),
        rooms: args.rooms,
        members,
        over: args.over,
        active,
        rate,
        // No member sends more than 5 messages/s (as in a real chat, and within the server's
        // per-member rate limit): faster rooms have more senders.
        senders: ((rate / 5.0).ceil() as usize).clamp(1, members.max(1)),
        max_users: members + 1,
        expiry_seconds: (args.warmup + args.duration) as u64 + 600,
        shard: args.shard.unwrap_or(0),
        shards: args.procs.max(1),
        sources: args.sources.clamp(1, 250),
        ramp: args.ramp.max(1),
        churn_us: (args.scenario == Scenario::Churn).then_some((args.churn * 1e6) as u64),
        encrypted: args.encrypted,
        client_ids: args.client_ids,
        mix: args.mix,
        warmup_us: (args.warmup * 1e6) as u64,
        duration_us: (args.duration * 1e6) as u64,
    }
}

/// A child of a chat scenario: says when its members joined, starts when told, prints its tally.
async fn shard(args: &Args) -> Result<(), String> {
    let barrier = async {
        println!("joined");
        let mut line = String::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let _ = stdin.read_line(&mut line).await;
        line.trim().parse().unwrap_or_else(|_| run::now_us())
    };
    let tally = run::run(plan(args), args.room_ids.clone(), Vec::new(), barrier).await;
    let json = serde_json::to_string(&tally).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

/// Every scenario with chat clients: this process creates the rooms, starts the shards, takes
/// its share of the members, and merges the shards' tallies into the report.
async fn chat(args: &Args) -> Result<Report, String> {
    let plan = plan(args);
    let room_ids = run::create_rooms(&plan).await?;
    let mut children = Vec::new();
    for shard in 1..plan.shards {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .args(std::env::args().skip(1))
            .arg(format!("--shard={shard}"))
            .arg(format!("--room-ids={}", room_ids.join(",")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("child stdin")?;
        let stdout = child.stdout.take().ok_or("child stdout")?;
        children.push((child, stdin, tokio::io::BufReader::new(stdout).lines()));
    }
    // Sending starts half a second after the last member of every process has joined.
    let barrier = async {
        for (_, _, lines) in children.iter_mut() {
            let _ = lines.next_line().await;
        }
        let start = run::now_us() + 500_000;
        for (_, stdin, _) in children.iter_mut() {
            let _ = stdin.write_all(format!("{start}\n").as_bytes()).await;
        }
        start
    };
    let watch = proc_stats::parse_watch(&args.watch)?;
    let mine = run::run(plan.clone(), room_ids, watch, barrier).await;
    let mut tallies = vec![mine];
    for (mut child, _, mut lines) in children {
        let line = lines.next_line().await.map_err(|e| e.to_string())?;
        let tally: run::Tally = serde_json::from_str(line.as_deref().unwrap_or(""))
            .map_err(|e| format!("shard output: {e}"))?;
        let _ = child.wait().await;
        tallies.push(tally);
    }
    let processes: Vec<proc_stats::Usage> = tallies
        .iter()
        .flat_map(|t| t.usage.iter().cloned())
        .collect();

    let mut latency = run::histogram();
    let mut total = run::Tally::default();
    for t in &tallies {
        run::merge(&mut latency, &t.latency_us);
        total.add(t);
    }
    // Every member of a room receives each accepted message, the sender included.
    let expected = total.sent.saturating_sub(total.rejected) * plan.members as u64;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        scenario: args.scenario,
        parameters: serde_json::json!({
            "rooms": plan.rooms, "members": plan.members, "over": plan.over, "active": plan.active,
            "rate_per_room": plan.rate, "senders_per_room": plan.senders, "duration_s": args.duration, "warmup_s": args.warmup,
            "procs": plan.shards, "sources": plan.sources, "ramp": args.ramp,
            "targets": plan.targets, "http": plan.http,
            "offered_deliveries_per_second": plan.active as f64 * plan.rate * plan.members as f64,
        }),
        connected: total.connected,
        refused: total.refused_by_code.total(),
        dropped: total.dropped_by_code.total(),
        refused_by_code: total.refused_by_code,
        dropped_by_code: total.dropped_by_code,
        reconnects: total.reconnects,
        sent: total.sent,
        rejected: total.rejected,
        expected_deliveries: expected,
        delivered_total: total.delivered_total,
        lost: expected as i64 - total.delivered_total as i64,
        gaps: total.gaps,
        duplicates: total.duplicates,
        deliveries_per_second: total.delivered as f64 / args.duration.max(1e-9),
        join_ms: total.join_ms,
        settle_ms: total.settle_ms,
        unsettled: total.unsettled,
        latency_ms: Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: latency.max() as f64 / 1000.0,
        },
        worst_ms_per_second: total
            .worst_us
            .iter()
            .map(|&us| us as f64 / 1000.0)
            .collect(),
        processes,
        pauses: None,
    })
}

impl Report {
    /// The report of a run without chat clients (`floor`, `pauses`): all counts zero.
    fn without_clients(scenario: Scenario, parameters: serde_json::Value) -> Self {
        Report {
            scenario,
            parameters,
            connected: 0,
            refused: 0,
            refused_by_code: run::ByCode::default(),
            dropped: 0,
            dropped_by_code: run::ByCode::default(),
            reconnects: 0,
            sent: 0,
            rejected: 0,
            expected_deliveries: 0,
            delivered_total: 0,
            lost: 0,
            gaps: 0,
            duplicates: 0,
            deliveries_per_second: 0.0,
            join_ms: 0,
            settle_ms: 0,
            unsettled: 0,
            latency_ms: Percentiles::default(),
            worst_ms_per_second: Vec::new(),
            processes: Vec::new(),
            pauses: None,
        }
    }
}

/// `floor`: writes counted as deliveries, so the report gives the writer's µs per delivery.
async fn floor_report(args: &Args) -> Result<Report, String> {
    let warmup_us = (args.warmup * 1e6) as u64;
    let duration_us = (args.duration * 1e6) as u64;
    let (written, processes) = floor::run(args.members, args.rate, warmup_us, duration_us).await?;
    let parameters = serde_json::json!({
        "rooms": 1, "members": args.members, "active": 0, "frame_bytes": 160,
        "duration_s": args.duration, "warmup_s": args.warmup,
        "offered_deliveries_per_second": args.rate,
    });
    Ok(Report {
        connected: args.members as u64,
        sent: written,
        expected_deliveries: written,
        delivered_total: written,
        deliveries_per_second: written as f64 / args.duration.max(1e-9),
        processes,
        ..Report::without_clients(Scenario::Floor, parameters)
    })
}

/// `pauses`: the machine's pauses, and the longest of each second in place of latency.
async fn pauses_report(args: &Args) -> Result<Report, String> {
    let duration = std::time::Duration::from_secs_f64(args.duration.max(0.0));
    let (pauses, worst_ms_per_second) = tokio::task::spawn_blocking(move || pauses::run(duration))
        .await
        .map_err(|e| e.to_string())??;
    let parameters = serde_json::json!({
        "rooms": 0, "members": 0, "active": 0, "duration_s": args.duration,
        "offered_deliveries_per_second": 0,
    });
    Ok(Report {
        worst_ms_per_second,
        pauses: Some(pauses),
        ..Report::without_clients(Scenario::Pauses, parameters)
    })
}

fn write_report(report: &Report, out: Option<&std::path::Path>) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    println!("{json}");
    if let Some(out) = out {
        std::fs::write(out, json).map_err(|e| e.to_string())?;
    }
    Ok(())
}
