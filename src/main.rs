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
        /// Log format (overrides [log] format).
        #[arg(long, value_enum)]
        log_format: Option<tarn::config::LogFormat>,
    },
    /// Manage users, access keys and grants in the data directory (prints JSON).
    Admin {
        /// Data directory (overrides [storage] data_dir).
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: tarn::admin::AdminCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (listen, data_dir, config, log_format) = match cli.command {
        Command::Serve {
            listen,
            data_dir,
            config,
            log_format,
        } => {
            limit_malloc_arenas();
            (listen, data_dir, config, log_format)
        }
        Command::Admin {
            data_dir,
            config,
            command,
        } => return admin(data_dir, config, command),
    };
    let mut settings = match tarn::config::Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tarn: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(l) = listen {
        settings.server.listen = l;
    }
    if let Some(d) = data_dir {
        settings.storage.data_dir = d;
    }
    if let Some(f) = log_format {
        settings.log.format = f;
    }
    init_logging(settings.log.format);
    tarn::sched::configure(settings.server.scheduling);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(tarn::sched::on_thread_start)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tarn: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tarn: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn admin(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    command: tarn::admin::AdminCommand,
) -> std::process::ExitCode {
    let mut settings = match tarn::config::Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tarn: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(d) = data_dir {
        settings.storage.data_dir = d;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tarn: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tarn::admin::run(&settings, command)) {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tarn admin: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: tarn::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TARN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        tarn::config::LogFormat::Json => builder.json().with_current_span(true).init(),
        tarn::config::LogFormat::Pretty => builder.with_ansi(false).init(),
    }
}

async fn serve(settings: tarn::config::Settings) -> Result<(), Box<dyn std::error::Error>> {
    let app = tarn::app::App::build(settings).await?;
    let addr = app.local_addr()?;
    let scheme = if app.is_tls() { "https" } else { "http" };
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "tarn listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, scheme, "listening");
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

/// Caps glibc malloc at two arenas (its default is eight per core). Every thread of
/// tokio's blocking pool that writes or reads a blob otherwise gets an arena of its own,
/// and memory freed into one arena is kept there for that thread: with four multipart
/// parts uploading at once the server's peak RSS was 111 MiB, with two arenas 86 MiB.
/// Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; it runs here while the process has
    // a single thread, and any value is valid (a failure leaves the default).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
