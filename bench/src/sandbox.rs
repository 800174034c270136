//! `codesync-bench sandbox`: what the `local` sandbox costs. A Python hello world run bare (the
//! same interpreter and flags, in a plain directory) against the same program run the way the
//! service runs it (work directory, cgroups, the uid drop, bwrap, removal), median of many, and
//! the runs per second with several runs at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use codesync_execution::languages::LanguageTable;
use codesync_execution::run::{self, Program};
use codesync_execution::sandbox::local::LocalSandbox;
use codesync_execution::sandbox::{Limits, Sandbox};
use codesync_proto::execution::v1 as pb;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Runs measured one after another, bare and sandboxed each (after 3 warm-up runs).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Runs at once for the throughput figures. Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![2, 8])]
    concurrency: Vec<usize>,
    /// Sandboxed runs per throughput figure.
    #[arg(long, default_value_t = 48)]
    throughput_runs: usize,
}

const PROGRAM: &str = "print('hello, world')\n";

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let runs_dir = codesync_execution::default_runs_dir();
    let sandbox = Arc::new(Sandbox::Local(LocalSandbox::new(runs_dir).context("the local sandbox cannot run here")?));
    let table = Arc::new(LanguageTable::embedded());
    let python = table.by_name("python").context("no python in the language table")?;
    anyhow::ensure!(python.available(), "python is not installed");
    let bare_command = python.run_command(&codesync_execution::languages::CommandContext {
        entry: "main.py",
        sources: &["main.py".to_string()],
    });
    println!("sandbox overhead: python hello world, {} runs each, after 3 warm-up runs", args.runs);

    let bare_directory = tempfile::tempdir()?;
    std::fs::write(bare_directory.path().join("main.py"), PROGRAM)?;
    let mut bare = Vec::with_capacity(args.runs);
    for index in 0..args.runs + 3 {
        let started = Instant::now();
        let output = tokio::process::Command::new(&bare_command[0])
            .args(&bare_command[1..])
            .current_dir(bare_directory.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .await?;
        anyhow::ensure!(output.stdout == b"hello, world\n", "the bare run printed {:?}", output.stdout);
        if index >= 3 {
            bare.push(started.elapsed());
        }
    }

    let mut sandboxed = Vec::with_capacity(args.runs);
    for index in 0..args.runs + 3 {
        let started = Instant::now();
        sandboxed_run(&sandbox, &table).await?;
        if index >= 3 {
            sandboxed.push(started.elapsed());
        }
    }
    let bare_median = percentile(&mut bare, 50);
    let sandboxed_median = percentile(&mut sandboxed, 50);
    println!("  bare:       median {:>6.1} ms   p90 {:>6.1} ms", ms(bare_median), ms(percentile(&mut bare, 90)));
    println!(
        "  sandboxed:  median {:>6.1} ms   p90 {:>6.1} ms   (work directory, cgroups, uid drop, bwrap, seccomp; removal after the answer)",
        ms(sandboxed_median),
        ms(percentile(&mut sandboxed, 90))
    );
    println!(
        "  overhead:   {:>6.1} ms per run (median against median)",
        ms(sandboxed_median.saturating_sub(bare_median))
    );

    println!("throughput: {} sandboxed runs each", args.throughput_runs);
    for &concurrency in &args.concurrency {
        let remaining = Arc::new(AtomicUsize::new(args.throughput_runs));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (sandbox, table, remaining) = (sandbox.clone(), table.clone(), remaining.clone());
            workers.push(tokio::spawn(async move {
                while remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok() {
                    sandboxed_run(&sandbox, &table).await?;
                }
                anyhow::Ok(())
            }));
        }
        for worker in workers {
            worker.await??;
        }
        let elapsed = started.elapsed();
        println!(
            "  {concurrency} at once: {:>6.1} runs/s ({} runs in {:.2} s, {} CPUs)",
            args.throughput_runs as f64 / elapsed.as_secs_f64(),
            args.throughput_runs,
            elapsed.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        );
    }
    Ok(())
}

async fn sandboxed_run(sandbox: &Sandbox, table: &LanguageTable) -> anyhow::Result<()> {
    let files = [pb::SourceFile { name: "main.py".into(), content: PROGRAM.into() }];
    let program = Program { language: "python", files: &files, entry: "", stdin: "" };
    let (language, entry) = run::resolve(table, &program).map_err(|error| anyhow::anyhow!("{error}"))?;
    let result = run::run(sandbox, language, &entry, &program, &Limits::default(), None).await?;
    anyhow::ensure!(
        result.stdout == "hello, world\n",
        "the sandboxed run printed {:?}: {}",
        result.stdout,
        result.stderr
    );
    Ok(())
}

fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort();
    samples.get((samples.len() * percent / 100).min(samples.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
