//! The `tarn` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tarn", version, about = "A self-hosted data lake server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (overrides [server] listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides [storage] data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        listen,
        data_dir,
        config,
    } = cli.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tarn: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(listen, data_dir, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tarn: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = tarn::config::Settings::load(config.as_deref())?;
    if let Some(l) = listen {
        settings.server.listen = l;
    }
    if let Some(d) = data_dir {
        settings.storage.data_dir = d;
    }
    let app = tarn::app::App::build(settings).await?;
    let addr = app.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "tarn listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "listening");
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
