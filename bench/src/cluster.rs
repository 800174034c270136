//! `codesync-bench cluster`: the cluster topology of SPEC §5, started from the codesync binary on
//! 127.0.0.1 (two gateways, two documents and two presence replicas, one process of every other
//! service) on the PostgreSQL, Redis and Kafka it is given; then the fan-out load with its
//! clients spread over both gateways, and the time until edits flow again after `kill -9` of a
//! file's owner (median and worst of `--failover-rounds`). `scripts/bench-cluster.sh` brings the
//! database, Redis and a Kafka broker, and runs the one-process topology beside it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use codesync_common::db::Database;
use serde_json::json;
use sqlx::Row;
use yrs::{Text, Transact};

use crate::client::{Client, Framing, Heard};
use crate::collab::{FanoutLoad, new_doc};

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// A PostgreSQL database of the bench's own (its tables are made; several documents
    /// replicas need PostgreSQL).
    #[arg(long, value_name = "URL")]
    database_url: String,
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Keys of the bench's own in that Redis.
    #[arg(long, default_value = "codesync-bench:")]
    redis_key_prefix: String,
    #[arg(long, value_name = "HOST:PORT")]
    kafka_brokers: String,
    /// The documents replicas' lease: the failover time is about this.
    #[arg(long, default_value_t = 4000)]
    lease_ttl_ms: u64,
    #[arg(long, default_value_t = 10)]
    failover_rounds: usize,
    #[command(flatten)]
    fanout: FanoutLoad,
    /// Skip the fan-out (measure the failover only).
    #[arg(long)]
    no_fanout: bool,
    #[command(flatten)]
    capacity: crate::capacity::CapacityArgs,
    /// The codesync binary the processes run (by default the one beside this benchmark).
    #[arg(long, value_name = "PATH")]
    codesync: Option<std::path::PathBuf>,
}

/// The codesync binary beside this one (both come out of one `cargo build`).
fn codesync_beside_this() -> anyhow::Result<std::path::PathBuf> {
    let this = std::env::current_exe()?;
    let codesync = this.with_file_name("codesync");
    anyhow::ensure!(codesync.exists(), "no codesync binary beside {}: pass --codesync PATH", this.display());
    Ok(codesync)
}

const PROCESSES: [(&str, &[&str]); 13] = [
    ("gateway-1", &["gateway"]),
    ("gateway-2", &["gateway"]),
    ("documents-1", &["documents"]),
    ("documents-2", &["documents"]),
    ("presence-1", &["presence"]),
    ("presence-2", &["presence"]),
    ("auth", &["auth"]),
    ("rooms", &["rooms"]),
    ("history", &["history"]),
    ("execution", &["execution"]),
    ("assistant", &["assistant"]),
    ("notifications", &["notifications"]),
    ("analytics", &["analytics"]),
];

use codesync_common::grpc::SERVICE_NAMES as SERVICES;

const PATIENCE: Duration = Duration::from_secs(60);

struct Process {
    binary: std::path::PathBuf,
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    grpc_addr: String,
    child: Option<Child>,
}

impl Process {
    fn start(&mut self, log_dir: &std::path::Path) -> anyhow::Result<()> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(log_dir.join(format!("{}.log", self.name)))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cluster's processes, killed when dropped.
struct Cluster {
    processes: Vec<Process>,
    gateways: Vec<String>,
    log_dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in &mut self.processes {
            process.kill();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    async fn start(args: &ClusterArgs) -> anyhow::Result<Self> {
        let binary = match &args.codesync {
            Some(path) => path.clone(),
            None => codesync_beside_this()?,
        };
        let log_dir = tempfile::tempdir()?;
        let mut ports = Vec::new();
        for _ in PROCESSES {
            ports.push((free_port()?, free_port()?));
        }
        let mut env: Vec<(String, String)> = vec![
            ("CODESYNC_DATA_DIR".into(), log_dir.path().join("data").display().to_string()),
            ("CODESYNC_DATABASE_URL".into(), args.database_url.clone()),
            ("CODESYNC_REDIS_URL".into(), args.redis_url.clone()),
            ("CODESYNC_REDIS_KEY_PREFIX".into(), args.redis_key_prefix.clone()),
            ("CODESYNC_KAFKA_BROKERS".into(), args.kafka_brokers.clone()),
            ("CODESYNC_DOCUMENTS_LEASE_TTL_MS".into(), args.lease_ttl_ms.to_string()),
            ("CODESYNC_RATE_LIMIT_PER_MINUTE".into(), "100000000".into()),
            ("CODESYNC_MAX_CONNECTIONS_PER_ADDRESS".into(), "100000".into()),
            ("CODESYNC_MAX_STREAMS_PER_USER".into(), "100000".into()),
            ("CODESYNC_LOG".into(), "warn".into()),
        ];
        for service in SERVICES {
            let endpoints: Vec<String> = PROCESSES
                .iter()
                .zip(&ports)
                .filter(|((_, components), _)| components.contains(&service))
                .map(|(_, (grpc, _))| format!("http://127.0.0.1:{grpc}"))
                .collect();
            env.push((format!("CODESYNC_{}_ENDPOINT", service.to_uppercase()), endpoints.join(",")));
        }
        let migrated = Command::new(&binary).arg("migrate").envs(env.iter().cloned()).status()?;
        anyhow::ensure!(migrated.success(), "codesync migrate failed");
        let mut processes = Vec::new();
        let mut gateways = Vec::new();
        for ((name, components), (grpc, http)) in PROCESSES.iter().zip(&ports) {
            let mut process_env = env.clone();
            process_env.push(("CODESYNC_GRPC_ADDR".into(), format!("127.0.0.1:{grpc}")));
            if components.contains(&"gateway") {
                process_env.push(("CODESYNC_HTTP_ADDR".into(), format!("127.0.0.1:{http}")));
                gateways.push(format!("http://127.0.0.1:{http}"));
            }
            let args = std::iter::once("run".to_string())
                .chain(components.iter().flat_map(|component| ["--service".to_string(), component.to_string()]))
                .collect();
            let mut process = Process {
                binary: binary.clone(),
                name,
                args,
                env: process_env,
                grpc_addr: format!("127.0.0.1:{grpc}"),
                child: None,
            };
            process.start(log_dir.path())?;
            processes.push(process);
        }
        let cluster = Self { processes, gateways, log_dir };
        for gateway in &cluster.gateways {
            wait_until_ready(gateway).await?;
        }
        Ok(cluster)
    }

    fn pids(&self) -> Vec<u32> {
        self.processes.iter().filter_map(|process| process.child.as_ref().map(Child::id)).collect()
    }

    fn process_at(&mut self, address: &str) -> anyhow::Result<&mut Process> {
        self.processes
            .iter_mut()
            .find(|process| process.grpc_addr == address)
            .with_context(|| format!("no process of the cluster at {address}"))
    }
}

async fn wait_until_ready(gateway: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{gateway}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < PATIENCE, "{gateway} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&args).await?;
    println!("cluster: {} processes, gateways {}", cluster.processes.len(), cluster.gateways.join(" "));
    let mut report = json!({});
    if !args.no_fanout {
        let load = args.fanout;
        let spec = format!("codesync={}", cluster.gateways.join(","));
        report["fanout"] = crate::collab::fanout_on(&spec, cluster.pids(), load).await?;
    }
    if args.capacity.capacity {
        let spec = format!("codesync={}", cluster.gateways.join(","));
        let mut capacity = crate::collab::capacity_on(&spec, cluster.pids(), args.fanout.rate, &args.capacity).await?;
        capacity.server = "codesync-cluster".into();
        println!("\n{}", crate::capacity::table(std::slice::from_ref(&capacity)));
        report["capacity"] = capacity.to_json();
    }
    report["failover"] = failover(&mut cluster, &args).await?;
    println!("\n{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Per round: two clients, one on each gateway, on a new file; the file's owner is killed with
/// SIGKILL; the time until an edit made after the kill reaches the other client.
async fn failover(cluster: &mut Cluster, args: &ClusterArgs) -> anyhow::Result<serde_json::Value> {
    let database = Database::connect(&args.database_url).await?;
    let http = reqwest::Client::new();
    let api = cluster.gateways[0].clone();
    let name = format!("failover{}", std::process::id());
    let session = crate::collab::post(
        &http,
        &format!("{api}/api/auth/register"),
        None,
        json!({"username": name, "email": format!("{name}@bench.invalid"), "password": "benchmark password"}),
    )
    .await?;
    let token = session["access_token"].as_str().context("no access token")?.to_string();
    let room = crate::collab::post(
        &http,
        &format!("{api}/api/rooms"),
        Some(&token),
        json!({"name": "failover", "is_public": false}),
    )
    .await?;
    let room_id = room["id"].as_str().context("no room id")?.to_string();
    let mut times_ms = Vec::new();
    for round in 0..args.failover_rounds {
        let file = crate::collab::post(
            &http,
            &format!("{api}/api/rooms/{room_id}/files"),
            Some(&token),
            json!({"filename": format!("failover-{round}.txt")}),
        )
        .await?;
        let file_id = file["id"].as_str().context("no file id")?.to_string();
        let urls: Vec<String> = cluster
            .gateways
            .iter()
            .map(|gateway| format!("{}/ws/files/{file_id}?token={token}", gateway.replacen("http://", "ws://", 1)))
            .collect();
        let (writer_doc, reader_doc) = (new_doc(), new_doc());
        let mut writer = connect(&urls[0], &file_id, writer_doc.clone()).await?;
        let mut reader = connect(&urls[1], &file_id, reader_doc.clone()).await?;
        edit_and_wait(&writer_doc, &writer, &mut reader).await?;
        let owner: String = sqlx::query(
            "SELECT n.address FROM document_owners o JOIN document_nodes n ON n.node_id = o.node_id WHERE o.file_id = $1",
        )
        .bind(&file_id)
        .fetch_one(database.pool())
        .await?
        .try_get("address")?;
        let killed = cluster.process_at(&owner)?;
        killed.kill();
        let killed_at = Instant::now();
        drop((writer, reader));
        writer = reconnect(&urls[0], &file_id, writer_doc.clone()).await?;
        reader = reconnect(&urls[1], &file_id, reader_doc.clone()).await?;
        edit_and_wait(&writer_doc, &writer, &mut reader).await?;
        let took = killed_at.elapsed();
        times_ms.push(took.as_millis() as u64);
        println!(
            "failover round {round}: killed the owner ({owner}); edits flowed again after {} ms",
            took.as_millis()
        );
        let log_dir = cluster.log_dir.path().to_path_buf();
        cluster.process_at(&owner)?.start(&log_dir)?;
        wait_for_grpc(&owner).await?;
    }
    let mut sorted = times_ms.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let worst = sorted.last().copied().unwrap_or_default();
    println!(
        "failover after kill -9 of the owner: median {median} ms, worst {worst} ms (lease {} ms)",
        args.lease_ttl_ms
    );
    Ok(json!({"rounds": times_ms, "median_ms": median, "worst_ms": worst, "lease_ttl_ms": args.lease_ttl_ms}))
}

async fn connect(url: &str, document: &str, doc: yrs::Doc) -> anyhow::Result<Client> {
    let mut client = Client::connect(url, Framing::YWebsocket, document, doc).await?;
    client.synced(PATIENCE).await?;
    Ok(client)
}

/// Connects again as a y-websocket client would after its connection broke: at once, then every
/// 50 ms while the gateway refuses.
async fn reconnect(url: &str, document: &str, doc: yrs::Doc) -> anyhow::Result<Client> {
    let started = Instant::now();
    loop {
        match connect(url, document, doc.clone()).await {
            Ok(client) => return Ok(client),
            Err(error) if started.elapsed() > PATIENCE => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One edit by `writer`, waited for at `reader`.
async fn edit_and_wait(writer_doc: &yrs::Doc, writer: &Client, reader: &mut Client) -> anyhow::Result<()> {
    let text = writer_doc.get_or_insert_text("content");
    let (update, clock) = {
        let mut transaction = writer_doc.transact_mut();
        text.insert(&mut transaction, 0, "x");
        let clock = yrs::ReadTxn::state_vector(&transaction).get(&writer_doc.client_id());
        (transaction.encode_update_v1(), clock)
    };
    writer.send_update(&update);
    tokio::time::timeout(PATIENCE, async {
        while let Some(heard) = reader.heard.recv().await {
            if let Heard::Update(state_vector) = heard
                && state_vector.get(&writer_doc.client_id()) >= clock
            {
                return Ok(());
            }
        }
        anyhow::bail!("the reader's connection ended")
    })
    .await
    .context("the edit did not arrive in time")?
}

async fn wait_for_grpc(address: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let started = Instant::now();
    loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{address}"))?.connect().await
            && HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.is_ok()
        {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < PATIENCE, "{address} did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
