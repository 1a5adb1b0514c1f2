//! The scaled topology with real processes: one `redis-server`, several `ephemera` instances,
//! and `nginx` running the shipped `nginx.conf` in front of them.

use crate::helpers::{TestApp, Ws};
use crate::process::Process;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use store::testing::{RedisServer, free_port, wait_for_port};

pub struct Cluster {
    /// The Redis the instances use, when the cluster owns it.
    pub redis: Option<RedisServer>,
    pub instances: Vec<Process>,
    pub nginx: Nginx,
}

impl Cluster {
    /// A fresh Redis, `n` instances (with these extra settings) and nginx.
    pub fn start(n: usize, env: &[(&str, &str)]) -> Cluster {
        let redis = RedisServer::start();
        let mut cluster = Cluster::on(&redis.url(), n, env);
        cluster.redis = Some(redis);
        cluster
    }

    /// `n` instances on the Redis at `url` (kept alive by the caller), and nginx.
    pub fn on(url: &str, n: usize, env: &[(&str, &str)]) -> Cluster {
        let nginx_port = free_port();
        let public = format!("http://127.0.0.1:{nginx_port}");
        let mut settings = vec![
            ("EPHEMERA_REDIS_URL", url),
            ("EPHEMERA_PUBLIC_URL", public.as_str()),
            ("EPHEMERA_TRUSTED_PROXIES", "127.0.0.1"),
            ("EPHEMERA_PRESENCE_GRACE_SECONDS", "1"),
            ("EPHEMERA_MIN_EXPIRY_SECONDS", "1"),
            // Every test client is 127.0.0.1: the per-client rates have tests of their own.
            ("EPHEMERA_CONNECT_RATE_PER_IP_PER_SECOND", "100000"),
            ("EPHEMERA_JOINS_PER_MINUTE", "100000"),
            ("EPHEMERA_MAX_ROOMS_PER_CLIENT", "100000"),
            ("EPHEMERA_ROOM_MESSAGE_RATE_PER_SECOND", "100000"),
            ("EPHEMERA_ROOM_JOIN_RATE_PER_SECOND", "100000"),
            ("EPHEMERA_READS_PER_MINUTE", "100000"),
        ];
        settings.extend_from_slice(env);
        let instances: Vec<Process> = (0..n).map(|_| Process::start(&settings)).collect();
        let ports: Vec<u16> = instances.iter().map(|p| p.port).collect();
        let nginx = Nginx::start(nginx_port, &ports);
        Cluster {
            redis: None,
            instances,
            nginx,
        }
    }

    /// A client through nginx.
    pub fn app(&self) -> TestApp {
        TestApp::at(self.nginx.port)
    }

    /// A client talking to instance `i` directly.
    pub fn instance(&self, i: usize) -> TestApp {
        TestApp::at(self.instances[i].port)
    }

    /// A member named `m<i>` on each instance `i`, connected directly.
    pub async fn member_on_each(&self, room: &str) -> Vec<Ws> {
        let mut members = Vec::new();
        for i in 0..self.instances.len() {
            members.push(self.instance(i).member(room, &format!("m{i}")).await.0);
        }
        members
    }

    /// How many connections (WebSockets and event streams) each instance holds.
    pub async fn connections(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for i in 0..self.instances.len() {
            let metrics = self.instance(i).get("/metrics").await.text().await;
            let count = metrics
                .expect("metrics")
                .lines()
                .find_map(|l| l.strip_prefix("ephemera_connections "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            counts.push(count);
        }
        counts
    }

    /// The instance holding the only connection there is, once there is exactly one (within
    /// 10 s).
    pub async fn holding_the_one_connection(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counts = self.connections().await;
            if counts.iter().sum::<u64>() == 1 {
                return counts.iter().position(|&n| n == 1).expect("one holds it");
            }
            assert!(
                Instant::now() < deadline,
                "one connection in all: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn redis(&self) -> &RedisServer {
        self.redis.as_ref().expect("this cluster owns its redis")
    }
}

/// nginx with the project's `nginx.conf`.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

/// The shipped configuration with the test's listen address and upstream instances; every
/// proxy setting stays as shipped.
pub fn render_nginx_conf(listen: u16, instances: &[u16], dir: &std::path::Path) -> String {
    let shipped = include_str!("../../nginx.conf");
    let upstream: String = instances
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {};\n", dir.join(t).display()))
        .collect();
    let replaced = shipped
        .replacen(
            "    listen 80;",
            &format!("    listen 127.0.0.1:{listen};"),
            1,
        )
        .replacen(
            "set $ephemera_app http://app:8080;",
            "set $ephemera_app http://ephemera_e2e;",
            1,
        )
        .replacen(
            "http {\n",
            &format!("http {{\n{temp}    upstream ephemera_e2e {{\n{upstream}    }}\n"),
            1,
        );
    assert!(
        replaced.contains(&format!("listen 127.0.0.1:{listen};")),
        "nginx.conf keeps `listen 80;`"
    );
    assert!(
        replaced.contains("http://ephemera_e2e;"),
        "nginx.conf keeps its app upstream line"
    );
    replaced
}

impl Nginx {
    pub fn start(port: u16, instances: &[u16]) -> Nginx {
        let dir =
            std::env::temp_dir().join(format!("ephemera-nginx-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, render_nginx_conf(port, instances, &dir)).expect("write nginx.conf");
        let log = std::fs::File::create(dir.join("access.log")).expect("access log");
        let errors = std::fs::File::create(dir.join("error.log")).expect("error log");
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args([
                "-g",
                &format!("daemon off; pid {};", dir.join("nginx.pid").display()),
            ])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(errors))
            .spawn()
            .expect("nginx starts (scripts/test.sh installs it)");
        wait_for_port(&mut child, port, "nginx");
        Nginx { child, port, dir }
    }

    /// What nginx logged of the requests it proxied.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// What nginx wrote to its error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

pub fn nginx_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must stop its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
