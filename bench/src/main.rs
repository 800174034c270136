//! `codesync-bench`: the load generators and measurements of docs/benchmarks.md, apart from the
//! server binary (it ships none of this): collaboration through the WebSocket path against
//! CodeSync and other Yjs servers side by side, the cluster topology with its failover, the
//! local sandbox's cost per run, and what versions cost to store.

#![forbid(unsafe_code)]

mod capacity;
mod client;
mod cluster;
mod collab;
mod history;
mod sandbox;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "codesync-bench", version, about = "CodeSync's benchmarks: each prints figures (docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Real-time collaboration through the WebSocket path: trace replay, fan-out and memory,
    /// against CodeSync and other Yjs servers side by side.
    Collab(collab::CollabArgs),
    /// The local sandbox's cost per run against a bare run, and runs per second at once.
    Sandbox(sandbox::SandboxArgs),
    /// What versions cost to store: an editing trace replayed with a checkpoint every N edits.
    History(history::HistoryArgs),
    /// The cluster topology (two gateways, two documents and presence replicas) started here on
    /// a given PostgreSQL, Redis and Kafka: fan-out over both gateways, and failover after kill -9.
    Cluster(cluster::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("codesync-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let _telemetry =
            codesync_common::telemetry::init(codesync_common::telemetry::LogFormat::Text, "codesync-bench")?;
        match cli.command {
            Command::Collab(args) => collab::run(args).await,
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::History(args) => history::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("codesync-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
