//! `--capacity`: each server's sustainable load. The fan-out load is raised step by step (clients
//! at the fan-out rate, a fixed number to a document, fresh documents each step) until the p99
//! propagation passes the limit or a delivery is lost; the highest step that passed is the
//! server's sustainable load. Each step's latencies and CPU seconds per 1,000 edits are kept, the
//! load generator's own CPU apart from the server's.

use std::time::Duration;

use serde_json::{Value, json};

use crate::collab::{FanoutFigures, FanoutLoad, Target, measure_fanout};

#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Find each server's sustainable load (the capacity phase alone, unless `--only` names more).
    #[arg(long)]
    pub capacity: bool,
    /// The steps, as numbers of clients (each at `--fanout-rate` edits/s).
    #[arg(
        long = "capacity-steps",
        value_delimiter = ',',
        default_values_t = [100, 250, 500, 750, 1000, 1500, 2000, 3000, 4000]
    )]
    pub steps: Vec<usize>,
    /// A step passes while its p99 propagation latency stays at or under this.
    #[arg(long = "capacity-p99-ms", default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    #[arg(long = "capacity-clients-per-document", default_value_t = 5)]
    pub clients_per_document: usize,
    /// How long each step's load lasts.
    #[arg(long = "capacity-seconds", default_value_t = 10)]
    pub step_seconds: u64,
    /// Runs of a step before it counts as not sustained: on a shared machine one run's tail can
    /// be another process's doing.
    #[arg(long = "capacity-attempts", default_value_t = 2)]
    pub attempts: usize,
}

/// One step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Sustained,
    /// The p99 passed the limit.
    Slow,
    /// Some delivery never arrived.
    Lost,
    /// The step could not run (connections refused or broken).
    Failed,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Self::Sustained => "sustained",
            Self::Slow => "p99 over the limit",
            Self::Lost => "deliveries lost",
            Self::Failed => "failed",
        }
    }
}

struct Step {
    clients: usize,
    offered_edits_per_second: f64,
    verdict: Verdict,
    figures: Option<FanoutFigures>,
    error: Option<String>,
    /// Runs of this step: the last one's figures are kept.
    attempts: usize,
}

/// One server's capacity: its steps, up to the first that did not pass.
pub struct Capacity {
    pub server: String,
    p99_limit_ms: f64,
    steps: Vec<Step>,
}

impl Capacity {
    /// The highest offered load that passed, in edits/s.
    pub fn sustainable_edits_per_second(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|step| step.verdict == Verdict::Sustained)
            .map(|step| step.offered_edits_per_second)
            .reduce(f64::max)
    }

    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|step| {
                let mut value = step.figures.as_ref().map(FanoutFigures::to_json).unwrap_or_else(|| json!({}));
                value["clients"] = json!(step.clients);
                value["edits_per_second"] = json!(step.offered_edits_per_second);
                value["verdict"] = json!(step.verdict.name());
                value["runs"] = json!(step.attempts);
                if let Some(error) = &step.error {
                    value["error"] = json!(error);
                }
                value
            })
            .collect();
        json!({
            "p99_limit_ms": self.p99_limit_ms,
            "sustainable_edits_per_second": self.sustainable_edits_per_second(),
            "steps": steps,
        })
    }
}

/// One run of one step's load.
async fn run_step(target: &Target, load: FanoutLoad, p99_limit_ms: f64) -> Step {
    let clients = load.clients;
    let offered_edits_per_second = clients as f64 * load.rate;
    match measure_fanout(target, load).await {
        Ok(figures) => {
            let verdict = if figures.lost() > 0 {
                Verdict::Lost
            } else if figures.p99_ms.is_nan() || figures.p99_ms > p99_limit_ms {
                // NaN: nothing was measured at all.
                Verdict::Slow
            } else {
                Verdict::Sustained
            };
            Step { clients, offered_edits_per_second, verdict, figures: Some(figures), error: None, attempts: 1 }
        }
        Err(error) => Step {
            clients,
            offered_edits_per_second,
            verdict: Verdict::Failed,
            figures: None,
            error: Some(format!("{error:#}")),
            attempts: 1,
        },
    }
}

/// Raises the load on `target` step by step until a step does not pass.
pub(crate) async fn find(target: &Target, rate: f64, args: &CapacityArgs) -> anyhow::Result<Capacity> {
    anyhow::ensure!(!args.steps.is_empty(), "--capacity-steps needs at least one step");
    anyhow::ensure!(
        args.clients_per_document >= 2,
        "--capacity-clients-per-document: at least 2 (a sender and a receiver)"
    );
    let mut capacity =
        Capacity { server: target.kind().to_string(), p99_limit_ms: args.p99_limit_ms, steps: Vec::new() };
    for &clients in &args.steps {
        let load = FanoutLoad {
            clients,
            documents: clients.div_ceil(args.clients_per_document).max(1),
            rate,
            seconds: args.step_seconds,
        };
        let offered_edits_per_second = clients as f64 * rate;
        let mut attempt = 0;
        let step = loop {
            attempt += 1;
            let step = run_step(target, load, args.p99_limit_ms).await;
            println!(
                "capacity {} {clients} clients ({offered_edits_per_second} edits/s), run {attempt}: {}",
                capacity.server,
                describe(&step)
            );
            if step.verdict == Verdict::Sustained || attempt >= args.attempts.max(1) {
                break Step { attempts: attempt, ..step };
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let passed = step.verdict == Verdict::Sustained;
        capacity.steps.push(step);
        if !passed {
            break;
        }
        // The last step's connections close and its documents go idle before the next starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(capacity)
}

fn describe(step: &Step) -> String {
    match (&step.figures, &step.error) {
        (Some(figures), _) => format!(
            "{}; p50 {:.2} / p99 {:.2} / p99.9 {:.2} ms, {} of {} deliveries, server {} / bench {} CPU s per 1,000 edits",
            step.verdict.name(),
            figures.p50_ms,
            figures.p99_ms,
            figures.p999_ms,
            figures.deliveries_measured,
            figures.deliveries_expected,
            seconds(figures.server_cpu_per_thousand_edits()),
            seconds(figures.bench_cpu_per_thousand_edits()),
        ),
        (None, error) => format!("{}: {}", step.verdict.name(), error.as_deref().unwrap_or("")),
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_string(), |value| format!("{value:.3}"))
}

/// The servers side by side, a row per load step: latencies and CPU per 1,000 edits of each, and
/// each server's sustainable load at the foot.
pub fn table(capacities: &[Capacity]) -> String {
    let mut loads: Vec<f64> = capacities
        .iter()
        .flat_map(|capacity| capacity.steps.iter().map(|step| step.offered_edits_per_second))
        .collect();
    loads.sort_by(f64::total_cmp);
    loads.dedup();
    let mut out = String::new();
    let limit = capacities.first().map_or(50.0, |capacity| capacity.p99_limit_ms);
    out.push_str(&format!(
        "capacity: p50 / p99 / p99.9 ms; server and load-generator CPU seconds per 1,000 edits (a step passes at p99 ≤ {limit} ms with nothing lost)\n\n"
    ));
    out.push_str("| edits/s |");
    for capacity in capacities {
        out.push_str(&format!(" {} | {} CPU s/1k (bench) |", capacity.server, capacity.server));
    }
    out.push_str("\n|---:|");
    for _ in capacities {
        out.push_str("---|---|");
    }
    out.push('\n');
    for load in &loads {
        out.push_str(&format!("| {load} |"));
        for capacity in capacities {
            match capacity.steps.iter().find(|step| step.offered_edits_per_second == *load) {
                Some(Step { figures: Some(figures), verdict, .. }) => {
                    let mark = if *verdict == Verdict::Sustained { "" } else { " ✗" };
                    out.push_str(&format!(
                        " {:.2} / {:.1} / {:.1}{mark} | {} ({}) |",
                        figures.p50_ms,
                        figures.p99_ms,
                        figures.p999_ms,
                        seconds(figures.server_cpu_per_thousand_edits()),
                        seconds(figures.bench_cpu_per_thousand_edits()),
                    ));
                }
                Some(step) => out.push_str(&format!(" {} | |", step.verdict.name())),
                None => out.push_str(" | |"),
            }
        }
        out.push('\n');
    }
    out.push_str("| **sustainable** |");
    for capacity in capacities {
        let sustainable =
            capacity.sustainable_edits_per_second().map_or_else(|| "none".to_string(), |load| format!("**{load}**"));
        out.push_str(&format!(" {sustainable} | |"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(clients: usize, verdict: Verdict, p99_ms: f64) -> Step {
        let load = FanoutLoad { clients, documents: clients / 5, rate: 5.0, seconds: 10 };
        Step {
            clients,
            offered_edits_per_second: clients as f64 * 5.0,
            verdict,
            figures: Some(FanoutFigures {
                load,
                edits_sent: clients * 50,
                deliveries_expected: clients * 200,
                deliveries_measured: clients * 200,
                p50_ms: 1.0,
                p99_ms,
                p999_ms: p99_ms * 2.0,
                server_cpu_seconds: Some(clients as f64 / 100.0),
                bench_cpu_seconds: Some(clients as f64 / 200.0),
                server_rss_bytes: None,
            }),
            error: None,
            attempts: 1,
        }
    }

    #[test]
    fn the_sustainable_load_is_the_highest_step_that_passed() {
        let capacity = Capacity {
            server: "a".into(),
            p99_limit_ms: 50.0,
            steps: vec![
                step(100, Verdict::Sustained, 4.0),
                step(500, Verdict::Sustained, 20.0),
                step(1000, Verdict::Slow, 80.0),
            ],
        };
        assert_eq!(capacity.sustainable_edits_per_second(), Some(2500.0));
        let none = Capacity { server: "b".into(), p99_limit_ms: 50.0, steps: vec![step(100, Verdict::Lost, 4.0)] };
        assert_eq!(none.sustainable_edits_per_second(), None);

        let table = table(&[capacity, none]);
        assert!(table.contains("| 5000 | 1.00 / 80.0 / 160.0 ✗ |"), "{table}");
        assert!(table.contains("| **sustainable** | **2500** | | none | |"), "{table}");
        // Two CPU seconds over 5,000 edits: 0.2 s per 1,000 (the generator's half of that apart).
        assert!(table.contains("| 0.200 (0.100) |"), "{table}");
    }
}
