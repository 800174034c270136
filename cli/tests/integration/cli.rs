//! The binary's own interface: help, version, configuration errors, migrate.

use std::process::{Command, Output};

use crate::harness::{binary, free_port};

fn codesync(args: &[&str], env: &[(&str, &str)], directory: &std::path::Path) -> Output {
    let mut command = Command::new(binary());
    command.args(args).current_dir(directory);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CODESYNC_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run codesync")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn help_and_version_explain_the_binary() {
    let directory = tempfile::tempdir().unwrap();
    let help = codesync(&["--help"], &[], directory.path());
    assert!(help.status.success());
    let help_text = text(&help);
    for expected in ["run", "migrate", "config", "--service", "http://127.0.0.1:8080", "CODESYNC_"] {
        assert!(help_text.contains(expected), "--help lacks {expected}: {help_text}");
    }
    let run_help = text(&codesync(&["run", "--help"], &[], directory.path()));
    assert!(run_help.contains("gateway") && run_help.contains("notifications"), "{run_help}");
    let version = codesync(&["--version"], &[], directory.path());
    assert!(version.status.success());
    assert!(text(&version).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let output = codesync(&["run"], &[("CODESYNC_HTTP_ADDR", "localhost:http")], directory.path());
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output);
    assert!(message.contains("CODESYNC_HTTP_ADDR") && message.contains("socket address"), "{message}");

    std::fs::write(directory.path().join("codesync.toml"), "grpc_adr = \"127.0.0.1:1\"\n").unwrap();
    let output = codesync(&["--config", "codesync.toml", "run"], &[], directory.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("unknown key 'grpc_adr'"), "{}", text(&output));

    // Three bad keys at once: all three told, and nothing started (no data directory made).
    std::fs::write(directory.path().join("three.toml"), "grpc_adr = \"127.0.0.1:1\"\nevent_queue = \"many\"\n")
        .unwrap();
    let data_dir = directory.path().join("never-made");
    let output = codesync(
        &["--config", "three.toml", "run"],
        &[("CODESYNC_HTTP_ADDR", "localhost:http"), ("CODESYNC_DATA_DIR", data_dir.to_str().unwrap())],
        directory.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output);
    for told in ["3 problems", "unknown key 'grpc_adr'", "'event_queue' in three.toml", "CODESYNC_HTTP_ADDR"] {
        assert!(message.contains(told), "{told}: {message}");
    }
    assert!(!data_dir.exists(), "nothing starts");

    std::fs::write(directory.path().join("broken.toml"), "http_addr = [").unwrap();
    let output = codesync(&["--config", "broken.toml", "run"], &[], directory.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("not valid TOML"), "{}", text(&output));

    let output = codesync(&["run", "--service", "bogus"], &[], directory.path());
    assert!(!output.status.success());
    assert!(text(&output).contains("bogus"), "{}", text(&output));
}

#[test]
fn config_prints_the_effective_values_without_secrets() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("codesync.toml"),
        "http_addr = \"127.0.0.1:9999\"\nrate_limit_per_minute = 50\n",
    )
    .unwrap();
    let output = codesync(
        &["--config", "codesync.toml", "config"],
        &[("CODESYNC_RATE_LIMIT_PER_MINUTE", "75"), ("CODESYNC_AI_API_KEY", "sk-very-secret")],
        directory.path(),
    );
    assert!(output.status.success());
    let printed = text(&output);
    assert!(printed.contains("http_addr = \"127.0.0.1:9999\""), "{printed}");
    assert!(printed.contains("rate_limit_per_minute = 75"), "the environment wins: {printed}");
    assert!(!printed.contains("sk-very-secret"), "{printed}");
    let keys = text(&codesync(&["config", "--keys"], &[], directory.path()));
    assert!(keys.contains("CODESYNC_DATABASE_URL") && keys.contains("CODESYNC_ROOMS_ENDPOINT"), "{keys}");
}

#[test]
fn migrate_is_idempotent() {
    let directory = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = codesync(&["migrate"], &[], directory.path());
        assert!(output.status.success(), "{}", text(&output));
    }
    assert!(directory.path().join("data/codesync.db").exists(), "the default database is ./data/codesync.db");
}

#[test]
fn a_taken_port_is_reported_and_fatal() {
    let directory = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let grpc = format!("127.0.0.1:{}", free_port());
    let output =
        codesync(&["run"], &[("CODESYNC_HTTP_ADDR", &address), ("CODESYNC_GRPC_ADDR", &grpc)], directory.path());
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("cannot listen for HTTP") && message.contains("CODESYNC_HTTP_ADDR"), "{message}");
}
