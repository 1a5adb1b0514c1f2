//! `ephemera`: configuration from the environment, logging, then the server until SIGTERM.
//! `ephemera healthcheck` asks a running instance's `/healthz` (for container HEALTHCHECKs, so
//! the runtime image needs no curl).

use ephemera_api::Application;
use ephemera_api::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(healthcheck());
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ephemera: invalid configuration: {err}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "ephemera listening");
    app.run(ephemera_api::shutdown_signal()).await?;
    Ok(())
}

/// Exit status 0 if the instance on `EPHEMERA_BIND_ADDR`'s port answers `/healthz` with 200.
fn healthcheck() -> i32 {
    use std::io::{Read, Write};
    let port = Config::from_env().map_or(8080, |c| c.bind_addr.port());
    let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut tcp| {
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut reply = String::new();
        tcp.read_to_string(&mut reply)?;
        Ok(reply)
    });
    match answer {
        Ok(reply) if reply.starts_with("HTTP/1.1 200") => 0,
        _ => 1,
    }
}
