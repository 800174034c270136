//! `codesync`: one binary that runs any subset of CodeSync's nine services and
//! its gateway, and migrates the database.
#![forbid(unsafe_code)]

mod config;
mod topology;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::topology::Component;

/// jemalloc, purging freed memory in background threads (`.cargo/config.toml` sets its options
/// at build time): after a flood the process's resident memory comes back down, where glibc's
/// per-thread arenas kept 1.5 to 2.5 GiB of it (docs/benchmarks.md, "Memory after floods").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "codesync",
    version,
    about = "CodeSync: edit code together, run it in sandboxes, ask an assistant, browse history.",
    long_about = "CodeSync: a self-hosted collaborative development platform.\n\n\
        `codesync run` starts everything in one process with embedded defaults: open \
        http://127.0.0.1:8080 (REST API under /api, gRPC on 127.0.0.1:50051, data under ./data).\n\n\
        Configuration comes from CODESYNC_* environment variables over an optional TOML file \
        (--config) over defaults; `codesync config` prints the result and `codesync config --keys` \
        lists every key.",
    after_help = "Examples:\n  \
        codesync run                                   # everything, one process\n  \
        codesync run --service auth --service rooms    # two services; reach the rest by *_endpoint keys\n  \
        codesync run --service gateway                 # the HTTP gateway alone\n  \
        CODESYNC_HTTP_ADDR=0.0.0.0:8080 codesync run   # listen on every interface\n  \
        codesync migrate                               # apply database migrations and exit\n  \
        codesync admin grant ada                       # make the user ada an administrator"
)]
struct Cli {
    /// A TOML file with configuration keys (same names as the environment variables, lower-case, without CODESYNC_).
    #[arg(long, global = true, env = "CODESYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start services: all nine and the gateway, or those named with --service.
    Run {
        /// A component to run: auth, rooms, documents, presence, history, execution,
        /// assistant, notifications, analytics, or gateway. Repeatable, or comma-separated.
        #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
        services: Vec<Component>,
    },
    /// Apply the database migrations of every service, then exit.
    Migrate,
    /// Administrators: who may see the analytics dashboard (the first account registered is one).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the effective configuration (secrets redacted), then exit.
    Config {
        /// List every configuration key with its meaning instead.
        #[arg(long)]
        keys: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make a user an administrator (by username or email); it applies from their next sign-in
    /// or token refresh, within 15 minutes.
    Grant {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Take a user's administrator rights away.
    Revoke {
        #[arg(value_name = "USER")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("codesync: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config { keys } = cli.command {
        let text = if keys { config::key_list().unwrap_or_else(|error| error.to_string()) } else { config.describe() };
        // A reader that stops early (`| head`) is no error.
        let _ = writeln!(std::io::stdout(), "{text}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("codesync: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let service_label = match &cli.command {
            Command::Run { services } if services.len() == 1 => format!("codesync-{}", services[0].name()),
            _ => "codesync".to_string(),
        };
        let _telemetry = codesync_common::telemetry::init(config.log_format, &service_label)?;
        for name in &config.unknown_env_vars {
            tracing::warn!(variable = %name, "ignoring an unknown CODESYNC_ variable; `codesync config --keys` lists the known ones");
        }
        match cli.command {
            Command::Run { services } => topology::run(config, Component::selection(&services)).await,
            Command::Migrate => topology::migrate(&config).await,
            Command::Admin(AdminCommand::Grant { user }) => topology::set_admin(&config, &user, true).await,
            Command::Admin(AdminCommand::Revoke { user }) => topology::set_admin(&config, &user, false).await,
            Command::Config { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("codesync: {error:#}");
            ExitCode::FAILURE
        }
    }
}
