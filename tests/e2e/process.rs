//! The real `ephemera` binary as a child process, for what only a process shows: its logs, its
//! exit on a bad setting, its handling of SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// The `ephemera` binary, built once per test run.
pub fn binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| build("ephemera-api", "ephemera"))
}

/// The command-line client, built once per test run.
pub fn eph() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| build("ephemera-cli", "eph"))
}

/// The load generator, built once per test run.
pub fn loadgen() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| build("ephemera-loadgen", "ephemera-loadgen"))
}

fn build(package: &str, bin: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "{bin} builds");
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    format!("{target}/debug/{bin}")
}

pub struct Process {
    child: Child,
    pub port: u16,
    lines: Receiver<String>,
    /// Where the process's stderr goes (a panic's message, for one).
    stderr: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Process {
    /// Starts the binary on a free port with JSON logs and these extra variables.
    pub fn start(env: &[(&str, &str)]) -> Process {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Process::spawn(env, "127.0.0.1:0")
    }

    /// SIGKILLs the process (if it runs) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Process::spawn(
            std::mem::take(&mut self.env),
            &format!("127.0.0.1:{}", self.port),
        );
        // Replacing `self` drops the old (already dead) value.
        *self = fresh;
    }

    fn spawn(env: Vec<(String, String)>, bind: &str) -> Process {
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr =
            std::env::temp_dir().join(format!("ephemera-e2e-{}-{n}.stderr", std::process::id()));
        let errors = std::fs::File::create(&stderr).expect("a file for stderr");
        let mut command = Command::new(binary());
        command
            .env("EPHEMERA_BIND_ADDR", bind)
            .env("EPHEMERA_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errors));
        for (name, value) in &env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("ephemera starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("a start-up log line");
            let entry: Value = serde_json::from_str(&line).expect("JSON log lines");
            if let Some(port) = entry["fields"]["port"].as_u64() {
                break port as u16;
            }
        };
        Process {
            child,
            port,
            lines,
            stderr,
            env,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGSTOP: the process holds its sockets and reads nothing until killed.
    #[allow(dead_code)] // The browser suite's; this file is shared with it.
    pub fn pause(&self) {
        let status = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The log lines printed so far (those that arrive within a second at most: an instance
    /// that logs without pause must not hold the caller), then its stderr.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            logs.push_str(&line);
            logs.push('\n');
            if Instant::now() >= deadline {
                logs.push_str("(more)\n");
                break;
            }
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        if !stderr.is_empty() {
            logs.push_str("stderr:\n");
            logs.push_str(&stderr);
        }
        logs
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.stderr);
    }
}
