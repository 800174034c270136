//! The Helm chart runs (issue 16), as far as this machine allows: no registry, no cluster.
//! The image is built here with podman from a Debian root file system made by `mmdebstrap`
//! (the Dockerfile's `prebuilt` target, with the binary these tests run), the chart is rendered
//! by helm-python-sdk with host networking (a port per component) and pointed at the host's
//! PostgreSQL and Redis and a Tansu broker, and `podman kube play` runs its Deployments with the
//! chart's own commands, variables and Secret (`deploy/tests/podman_manifests.py` says where
//! podman needs the manifests adapted). The migration runs first, from the chart's Job; then
//! `/readyz` is ready through the gateway, a user registers, makes a room and a file, and two
//! stock Yjs clients converge through it.
//!
//! `make test` sets `CODESYNC_TEST_REQUIRE_PODMAN=1` (and installs podman, runc and
//! mmdebstrap); without it, a machine lacking them skips the test with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use codesync_common::kafka::test_support::TansuBroker;
use serde_json::json;

use crate::harness::{Cluster, PostgresDatabase, binary, free_port, redis_prefix};

const BASE_IMAGE: &str = "localhost/codesync-test-base:bookworm";
const SERVICES: usize = codesync_common::grpc::SERVICE_NAMES.len();

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn available(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|output| output.status.success())
}

/// podman with a configuration of the test's own (runc, and limits runc can set here).
struct Podman {
    config: PathBuf,
}

impl Podman {
    fn new(directory: &Path) -> Self {
        let hard = Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .ok()
            .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().ok())
            .unwrap_or(1024);
        let nofile = hard.min(20_000);
        let config = directory.join("containers.conf");
        std::fs::write(
            &config,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=4096:4096\"]\n\n[engine]\nruntime = \"runc\"\n"
            ),
        )
        .expect("write containers.conf");
        Self { config }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman").args(args).env("CONTAINERS_CONF", &self.config).output().expect("run podman")
    }

    fn must(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "podman {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// What a container said, for a failing test.
    fn logs(&self, container: &str) -> String {
        let output = self.run(&["logs", "--tail", "40", container]);
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }
}

/// What the test started under podman, taken down however the test ends.
struct Played<'a> {
    podman: &'a Podman,
    manifests: Vec<PathBuf>,
    image: String,
    secret: String,
    volumes: Vec<String>,
}

impl Drop for Played<'_> {
    fn drop(&mut self) {
        for manifest in self.manifests.iter().rev() {
            if let Some(path) = manifest.to_str() {
                let _ = self.podman.run(&["kube", "down", path]);
            }
        }
        let _ = self.podman.run(&["secret", "rm", &self.secret]);
        for volume in &self.volumes {
            let _ = self.podman.run(&["volume", "rm", "--force", volume]);
        }
        let _ = self.podman.run(&["rmi", "--force", &self.image]);
    }
}

/// The base image: Debian's minimal root file system, imported once and kept.
fn base_image(podman: &Podman, directory: &Path) {
    if podman.run(&["image", "exists", BASE_IMAGE]).status.success() {
        return;
    }
    let rootfs = directory.join("rootfs.tar");
    let output = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--include=ca-certificates", "bookworm"])
        .arg(&rootfs)
        .output()
        .expect("run mmdebstrap");
    assert!(output.status.success(), "mmdebstrap failed: {}", String::from_utf8_lossy(&output.stderr));
    podman.must(&["import", rootfs.to_str().expect("utf-8 path"), BASE_IMAGE]);
}

/// `count` consecutive free ports on 127.0.0.1, from a random start below the kernel's ephemeral
/// range: the pods bind them seconds after this check, and in that time an outgoing connection or
/// another test's port-0 listener could take any port inside the range (as one did in CI).
fn free_port_range(count: u16) -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000_u32, ephemeral_start.saturating_sub(u32::from(count)).max(10_001));
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.subsec_nanos());
    for attempt in 0..200_u32 {
        let start = low + (seed.wrapping_add(attempt.wrapping_mul(7_919)) % (high - low));
        let start = u16::try_from(start).expect("a port");
        if (start..start + count).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return start;
        }
    }
    panic!("no {count} consecutive free ports");
}

#[tokio::test]
async fn the_helm_chart_runs_under_podman_and_two_yjs_clients_converge_through_it() {
    let required = std::env::var("CODESYNC_TEST_REQUIRE_PODMAN").as_deref() == Ok("1");
    let missing: Vec<&str> = ["podman", "runc", "mmdebstrap"].into_iter().filter(|tool| !available(tool)).collect();
    let python = std::env::var("CODESYNC_TEST_DEPLOY_PYTHON").ok();
    if !missing.is_empty() || python.is_none() {
        assert!(!required, "missing {missing:?} or CODESYNC_TEST_DEPLOY_PYTHON: `make test` installs them");
        eprintln!("skipped: the chart's podman test needs podman, runc, mmdebstrap and CODESYNC_TEST_DEPLOY_PYTHON");
        return;
    }
    let python = python.unwrap_or_default();
    let directory = tempfile::tempdir().expect("temp dir");
    let podman = Podman::new(directory.path());

    // The image: the Dockerfile's runtime on Debian from mmdebstrap, the binary the tests run.
    base_image(&podman, directory.path());
    let context = directory.path().join("context");
    std::fs::create_dir(&context).expect("context dir");
    std::fs::copy(binary(), context.join("codesync")).expect("copy the binary");
    let tag = format!("test-{}-{}", std::process::id(), free_port());
    let image = format!("localhost/codesync:{tag}");
    let dockerfile = repository().join("deploy/container/Dockerfile");
    podman.must(&[
        "build",
        "--quiet",
        "-f",
        dockerfile.to_str().expect("utf-8 path"),
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("RUNTIME_IMAGE={BASE_IMAGE}"),
        "--build-arg",
        "BINARY=codesync",
        "-t",
        &image,
        context.to_str().expect("utf-8 path"),
    ]);

    // The data stores: the host's PostgreSQL and Redis, a Tansu broker.
    let database = PostgresDatabase::create();
    let broker = TansuBroker::start().await;
    let ports = free_port_range(SERVICES as u16 + 2);
    let (http_port, grpc_base) = (ports, ports + 1);
    let release = format!("cs{}", free_port());
    let values = json!({
        "image": {"repository": "localhost/codesync", "tag": tag, "pullPolicy": "Never"},
        "hostNetwork": {"enabled": true, "address": "127.0.0.1", "httpPort": http_port, "grpcPortBase": grpc_base},
        "defaults": {"replicas": 1, "podDisruptionBudget": {"enabled": false}},
        "gateway": {"replicas": 1},
        "services": {"documents": {"replicas": 1}},
        "config": {
            "CODESYNC_LOG_FORMAT": "text",
            "CODESYNC_REDIS_KEY_PREFIX": redis_prefix(),
            "CODESYNC_RATE_LIMIT_PER_MINUTE": "100000",
        },
        "postgresql": {"enabled": false, "externalUrl": database.url()},
        "redis": {"enabled": false, "externalUrl": "redis://127.0.0.1:6379"},
        "kafka": {"enabled": false, "externalBrokers": broker.address},
        "networkPolicy": {"enabled": false},
    });
    let values_path = directory.path().join("values.json");
    std::fs::write(&values_path, values.to_string()).expect("write values");
    let manifests = directory.path().join("manifests");
    std::fs::create_dir(&manifests).expect("manifests dir");
    let output = Command::new(&python)
        .arg(repository().join("deploy/tests/podman_manifests.py"))
        .args([values_path.as_os_str(), release.as_ref(), "codesync".as_ref(), manifests.as_os_str()])
        .output()
        .expect("run the deploy virtualenv's python");
    assert!(output.status.success(), "rendering failed: {}", String::from_utf8_lossy(&output.stderr));
    let rendered: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the rendered objects' names");
    let deployments: Vec<String> = rendered["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter_map(|name| name.as_str().map(str::to_string))
        .collect();
    assert_eq!(deployments.len(), SERVICES + 1, "the gateway and nine services: {deployments:?}");

    let path = |name: &str| manifests.join(name);
    let mut played = Played {
        podman: &podman,
        manifests: Vec::new(),
        image: image.clone(),
        secret: format!("{release}-codesync"),
        volumes: vec![format!("{release}-codesync"), "codesync-data".into(), "codesync-tmp".into()],
    };
    for manifest in ["secret.yaml", "migrate.yaml"] {
        played.manifests.push(path(manifest));
        podman.must(&["kube", "play", path(manifest).to_str().expect("utf-8 path")]);
    }
    // The migration, from the chart's Job, ends before the services start.
    let migrate = format!("{release}-codesync-migrate-migrate");
    let exit = podman.must(&["wait", &migrate]);
    assert_eq!(exit, "0", "the migration failed:\n{}", podman.logs(&migrate));

    played.manifests.push(path("deployments.yaml"));
    podman.must(&["kube", "play", path("deployments.yaml").to_str().expect("utf-8 path")]);

    let cluster = Cluster::external(http_port, grpc_base + 2);
    let ready_url = format!("{}/readyz", cluster.base_url);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let answer = cluster.http.get(&ready_url).send().await;
        if answer.as_ref().is_ok_and(|answer| answer.status().is_success()) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = deployments
                .iter()
                .map(|name| format!("--- {name} ---\n{}", podman.logs(&format!("{name}-pod-0-codesync"))))
                .collect();
            panic!("/readyz never answered 200 ({answer:?}):\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A user registers, makes a room and a file, and two stock Yjs clients converge on it.
    crate::interop::stock_clients_converge(&cluster, 0, 0).await;
    drop(played);
}
