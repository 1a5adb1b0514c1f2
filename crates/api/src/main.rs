//! `ephemera`: configuration from the environment, logging, then the server until SIGTERM.

use ephemera_api::Application;
use ephemera_api::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
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
    app.run_until_stopped().await?;
    Ok(())
}
