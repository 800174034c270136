//! `codesync-bench collab` runs end to end against the real server, on a
//! small trace, and reports every delivery it expected.

use std::io::Write;
use std::process::Command;

use serde_json::Value;

use crate::harness::Cluster;

/// The benchmark binary beside this build's server: `cargo test --workspace` (make test) builds
/// both.
fn bench_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_codesync")).with_file_name("codesync-bench");
    assert!(path.exists(), "{} is not built: run the workspace's tests (make test)", path.display());
    path
}

/// Runs `codesync-bench` with `args` (off the runtime's threads), and answers its output and the
/// figures it printed as JSON at the end; a failed run fails the test with its output.
async fn run_bench(args: Vec<String>) -> (String, Value) {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bench_binary()).args(&args).output().expect("run codesync-bench")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let json_start = stdout.find("\n[").expect("the figures as JSON at the end");
    let rows: Value = serde_json::from_str(&stdout[json_start..]).expect("JSON figures");
    (stdout, rows)
}

#[tokio::test]
async fn the_collaboration_benchmark_runs_against_the_real_server() {
    let cluster = Cluster::one_process(&[]).await;
    let trace_path = cluster.data_dir.path().join("trace.json.gz");
    let trace = serde_json::json!({
        "startContent": "",
        "endContent": "hello world",
        "txns": [
            {"patches": [[0, 0, "hello"]]},
            {"patches": [[5, 0, " wrld"]]},
            {"patches": [[7, 0, "o"]]},
            {"patches": [[6, 1, "w"]]},
        ],
    });
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(trace.to_string().as_bytes()).unwrap();
    std::fs::write(&trace_path, encoder.finish().unwrap()).unwrap();

    let server = format!("codesync={}", cluster.base_url);
    let trace = trace_path.display().to_string();
    let (_, rows) = run_bench(args(&[
        &["collab", "--server", &server, "--trace", &trace],
        &["--fanout-clients", "6", "--fanout-documents", "2", "--fanout-seconds", "2", "--fanout-rate", "20"],
        &["--memory-documents", "2"],
    ]))
    .await;
    let row = &rows[0];
    assert_eq!(row["server"], "codesync");
    assert_eq!(row["replay"]["edits"], 4);
    assert_eq!(row["replay"]["inserts_measured"], 4, "every inserting edit was seen by the second client");
    let fanout = &row["fanout"];
    assert!(fanout["edits_sent"].as_u64().unwrap() > 0);
    assert_eq!(fanout["deliveries_measured"], fanout["deliveries_expected"], "{fanout}");
    assert_eq!(row["memory"]["documents"], 2);
}

/// `--capacity` raises the load step by step and reports the highest step sustained. The limit on
/// the p99 is set out of reach: this asserts the steps and their deliveries, never a time.
#[tokio::test]
async fn the_capacity_search_steps_through_each_load_and_reports_the_highest_sustained() {
    let cluster = Cluster::one_process(&[]).await;
    let server = format!("codesync={}", cluster.base_url);
    let (stdout, rows) = run_bench(args(&[
        &["collab", "--server", &server, "--capacity", "--capacity-steps", "4,8", "--capacity-seconds", "1"],
        &["--capacity-p99-ms", "600000", "--capacity-attempts", "1", "--capacity-clients-per-document", "4"],
        &["--fanout-rate", "10", "--require-every-delivery"],
    ]))
    .await;
    assert!(stdout.contains("| **sustainable** | **80** |"), "the table names the highest step:\n{stdout}");
    let capacity = &rows[0]["capacity"];
    assert_eq!(capacity["sustainable_edits_per_second"], 80.0, "{capacity}");
    let steps = capacity["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{capacity}");
    for (step, clients) in steps.iter().zip([4, 8]) {
        assert_eq!(step["clients"], clients);
        assert_eq!(step["documents"], clients / 4);
        assert_eq!(step["verdict"], "sustained");
        assert!(step["edits_sent"].as_u64().unwrap() > 0, "{step}");
        assert_eq!(step["deliveries_measured"], step["deliveries_expected"], "{step}");
        assert!(step["server_cpu_seconds_per_1000_edits"].is_null(), "no --pid, no server CPU: {step}");
        assert!(step["bench_cpu_seconds_per_1000_edits"].as_f64().is_some(), "{step}");
    }
    assert!(rows[0].get("replay").is_none(), "--capacity alone runs the capacity phase alone");
}

fn args(groups: &[&[&str]]) -> Vec<String> {
    groups.iter().flat_map(|group| group.iter().map(|arg| arg.to_string())).collect()
}
