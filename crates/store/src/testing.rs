//! Test support (feature `testing`): real `redis-server` processes on free loopback ports,
//! stopped by PID when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 outside the kernel's ephemeral range, so no outgoing
/// connection can take it before the server binds it. Its cluster bus port (+10000) is free
/// and outside that range too. Ports are handed out in turn, so parallel tests never get the
/// same one. Panics if the range leaves no such ports (e.g. widened to 1024-65535).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static CANDIDATES: OnceLock<Vec<u32>> = OnceLock::new();
    let candidates = CANDIDATES.get_or_init(|| {
        let (low, high) = ephemeral_range();
        let outside = |p: u32| p < low || p > high;
        let candidates: Vec<u32> = (10_000..=55_535)
            .filter(|&p| outside(p) && outside(p + 10_000))
            .collect();
        assert!(
            !candidates.is_empty(),
            "no test ports outside the ephemeral range {low}-{high}: restore \
             net.ipv4.ip_local_port_range (the default is 32768 60999)"
        );
        candidates
    });
    let start = std::process::id() * 7919;
    loop {
        let i = (start + NEXT.fetch_add(1, Ordering::Relaxed)) as usize % candidates.len();
        let port = candidates[i] as u16;
        if [port, port + 10_000]
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return port;
        }
    }
}

/// The kernel's ephemeral port range, from which outgoing connections take their ports.
fn ephemeral_range() -> (u32, u32) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let mut bounds = range
        .iter()
        .flat_map(|r| r.split_whitespace())
        .filter_map(|v| v.parse().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) => (low, high),
        _ => (32_768, 60_999),
    }
}

/// Waits until the process `child` (called `what`) accepts connections on `port`; panics at
/// once if it exits, or after 20 s.
pub fn wait_for_port(child: &mut Child, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} on {port} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One `redis-server` without persistence (nothing of a room may reach disk).
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(free_port(), &[])
    }

    /// Starts on `port` with extra `redis-server` arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir =
            std::env::temp_dir().join(format!("ephemera-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a working directory");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn(port, &dir, &extra);
        RedisServer {
            child,
            port,
            dir,
            extra,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL); its data is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, &self.extra);
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn unpause(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    /// Closes every client connection (commands and subscriptions), as a proxy or a failover
    /// would.
    pub fn kill_clients(&self) {
        for kind in ["normal", "pubsub"] {
            self.cli(&["CLIENT", "KILL", "TYPE", kind]);
        }
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn spawn(port: u16, dir: &PathBuf, extra: &[String]) -> Child {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--loglevel", "warning", "--dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts (scripts/test.sh installs it)");
    wait_for_port(&mut child, port, "redis-server");
    child
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas), made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with_replicas(0)
    }

    /// Three primaries, each with `replicas` replicas (which take over a primary that stops
    /// answering for the node timeout, 2 s).
    pub fn start_with_replicas(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(
                    free_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let synced = |n: &RedisServer| {
            let role = n.cli(&["role"]);
            !role.starts_with("slave") || role.contains("connected")
        };
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok") && synced(n))
        {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        RedisCluster { nodes }
    }

    /// The node that is the primary holding `key` now (the key must exist).
    pub fn primary_holding(&self, key: &str) -> usize {
        let slot = self.nodes[0].cli(&["cluster", "keyslot", key]);
        let slot = slot.trim();
        self.nodes
            .iter()
            .position(|n| {
                n.cli(&["role"]).starts_with("master")
                    && n.cli(&["cluster", "countkeysinslot", slot]).trim() != "0"
            })
            .expect("a primary holds the key")
    }

    /// `redis-cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].port,
            others.join("&")
        )
    }
}
