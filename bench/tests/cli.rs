//! The benchmark binary's command line: the four benchmarks of docs/benchmarks.md, and a clear
//! refusal of anything else. (`cli/tests/integration/bench.rs` runs `collab` against the real
//! server.)

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codesync-bench"))
}

#[test]
fn it_offers_the_four_benchmarks_and_refuses_anything_else() {
    let help = bench().arg("--help").output().expect("run codesync-bench");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for benchmark in ["collab", "sandbox", "history", "cluster"] {
        assert!(text.contains(benchmark), "{benchmark} is missing from:\n{text}");
    }
    // Each benchmark's own arguments hold together (clap checks them when asked for help).
    for benchmark in ["collab", "sandbox", "history", "cluster"] {
        let help = bench().args([benchmark, "--help"]).output().expect("run codesync-bench");
        assert!(help.status.success(), "{benchmark} --help: {}", String::from_utf8_lossy(&help.stderr));
    }
    let refused = bench().arg("throughput").output().expect("run codesync-bench");
    assert_eq!(refused.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unrecognized subcommand 'throughput'"));
}
