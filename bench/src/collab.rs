//! `codesync-bench collab`: drives Yjs servers over the y-websocket protocol
//! and prints figures: a real editing trace replayed through the WebSocket
//! path (updates/s, and the latency until a second client sees each edit), a
//! fan-out run (many clients on many documents typing at a steady rate:
//! propagation latency, server CPU and memory), and the server's memory per
//! loaded document. It drives CodeSync (setting itself up over REST), the
//! reference y-websocket server and Hocuspocus alike, side by side.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact};

use crate::capacity::CapacityArgs;
use crate::client::{Client, Framing, Heard};
use crate::trace::Trace;

#[derive(Debug, clap::Args)]
pub struct CollabArgs {
    /// A server to drive, as KIND=URL: `codesync=http://127.0.0.1:8080` (sets up a user, a room
    /// and files over REST; several gateways of one cluster comma-separated, clients spread over
    /// them), `y-websocket=ws://127.0.0.1:1234` (document name in the path) or
    /// `hocuspocus=ws://127.0.0.1:1235`. Repeatable: the figures are printed side by side.
    #[arg(long = "server", required = true, value_name = "KIND=URL")]
    servers: Vec<String>,
    /// KIND=PID of a server's process, to report its CPU time and resident memory (several PIDs
    /// comma-separated: their sum). Repeatable.
    #[arg(long = "pid", value_name = "KIND=PID")]
    pids: Vec<String>,
    /// The sequential editing trace to replay (gzip'd JSON).
    #[arg(long, default_value = "../shared/data/editing-traces/automerge-paper.json.gz")]
    trace: PathBuf,
    /// Replay only the first N edits of the trace (all by default).
    #[arg(long)]
    replay_edits: Option<usize>,
    #[command(flatten)]
    fanout: FanoutLoad,
    #[command(flatten)]
    capacity: CapacityArgs,
    /// Memory: documents loaded with the trace's whole history.
    #[arg(long, default_value_t = 20)]
    memory_documents: usize,
    /// Fail (exit status 1) when any fan-out or capacity step lost a delivery: the smoke test of
    /// `make test`, which asserts nothing about time.
    #[arg(long)]
    require_every_delivery: bool,
    /// Run only these phases (replay, fanout, memory, capacity); all but capacity by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Replay,
    Fanout,
    Memory,
    Capacity,
}

const PATIENCE: Duration = Duration::from_secs(120);

/// One server under test.
pub(crate) struct Target {
    kind: String,
    framing: Framing,
    pids: Vec<u32>,
    endpoint: Endpoint,
    next_document: std::sync::atomic::AtomicUsize,
    next_connection: std::sync::atomic::AtomicUsize,
}

enum Endpoint {
    /// CodeSync through one gateway or several (connections go round robin over `ws`).
    CodeSync {
        http: reqwest::Client,
        api: String,
        ws: Vec<String>,
        token: String,
        /// The room files are made in, and how many it holds: a new room before the rooms
        /// service's limit of files per room (the capacity steps make thousands of files).
        room: tokio::sync::Mutex<(String, usize)>,
    },
    Plain {
        ws: String,
    },
}

impl Target {
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    async fn new(spec: &str, pids: &HashMap<String, Vec<u32>>) -> anyhow::Result<Self> {
        let (kind, url) = spec.split_once('=').context("a --server is KIND=URL")?;
        let url = url.trim_end_matches('/').to_string();
        let (framing, endpoint) = match kind {
            "codesync" => (Framing::YWebsocket, codesync_endpoint(&url).await?),
            "y-websocket" => (Framing::YWebsocket, Endpoint::Plain { ws: url }),
            "hocuspocus" => (Framing::Hocuspocus, Endpoint::Plain { ws: url }),
            other => anyhow::bail!("unknown server kind '{other}': codesync, y-websocket or hocuspocus"),
        };
        Ok(Self {
            kind: kind.to_string(),
            framing,
            pids: pids.get(kind).cloned().unwrap_or_default(),
            endpoint,
            next_document: std::sync::atomic::AtomicUsize::new(0),
            next_connection: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A fresh document: a file on CodeSync, a new name elsewhere.
    async fn new_document(&self) -> anyhow::Result<String> {
        let index = self.next_document.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.endpoint {
            Endpoint::CodeSync { http, api, token, room, .. } => {
                let room_id = {
                    let mut room = room.lock().await;
                    if room.1 >= FILES_PER_ROOM {
                        *room = (new_room(http, api, token).await?, 0);
                    }
                    room.1 += 1;
                    room.0.clone()
                };
                let file = post(
                    http,
                    &format!("{api}/api/rooms/{room_id}/files"),
                    Some(token),
                    json!({"filename": format!("bench-{index}.txt")}),
                )
                .await?;
                file["id"].as_str().map(str::to_string).context("no file id in the answer")
            }
            Endpoint::Plain { .. } => Ok(format!("bench-{}-{index}", std::process::id())),
        }
    }

    fn url(&self, document: &str) -> String {
        match &self.endpoint {
            Endpoint::CodeSync { ws, token, .. } => {
                let index = self.next_connection.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{}/ws/files/{document}?token={token}", ws[index % ws.len()])
            }
            Endpoint::Plain { ws } if self.framing == Framing::YWebsocket => format!("{ws}/{document}"),
            Endpoint::Plain { ws } => ws.clone(),
        }
    }

    async fn connect(&self, document: &str, doc: Doc) -> anyhow::Result<Client> {
        let mut client = Client::connect(&self.url(document), self.framing, document, doc).await?;
        client.synced(PATIENCE).await?;
        Ok(client)
    }

    /// The CPU time and memory of all the server's processes together.
    fn usage(&self) -> Option<ProcessUsage> {
        if self.pids.is_empty() {
            return None;
        }
        let mut total = ProcessUsage { cpu_seconds: 0.0, rss_bytes: 0 };
        for pid in &self.pids {
            let usage = ProcessUsage::read(*pid)?;
            total.cpu_seconds += usage.cpu_seconds;
            total.rss_bytes += usage.rss_bytes;
        }
        Some(total)
    }
}

/// CodeSync at one gateway's URL, or several comma-separated (one cluster's gateways): the user,
/// room and files are made through the first.
async fn codesync_endpoint(urls: &str) -> anyhow::Result<Endpoint> {
    let gateways: Vec<&str> = urls.split(',').map(|url| url.trim().trim_end_matches('/')).collect();
    let api = gateways[0];
    let http = reqwest::Client::new();
    let name = format!("bench{}", std::process::id());
    let registered = post(
        &http,
        &format!("{api}/api/auth/register"),
        None,
        json!({"username": name, "email": format!("{name}@bench.invalid"), "password": "benchmark password"}),
    )
    .await?;
    let token = registered["access_token"].as_str().context("no access token")?.to_string();
    let room_id = new_room(&http, api, &token).await?;
    let ws = gateways.iter().map(|gateway| gateway.replacen("http://", "ws://", 1)).collect();
    Ok(Endpoint::CodeSync { http, api: api.to_string(), ws, token, room: tokio::sync::Mutex::new((room_id, 0)) })
}

/// Files made in one room before the next: under the rooms service's limit (1,000).
const FILES_PER_ROOM: usize = 900;

async fn new_room(http: &reqwest::Client, api: &str, token: &str) -> anyhow::Result<String> {
    let room =
        post(http, &format!("{api}/api/rooms"), Some(token), json!({"name": "bench", "is_public": false})).await?;
    room["id"].as_str().map(str::to_string).context("no room id")
}

pub(crate) async fn post(http: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {body}");
    Ok(body)
}

pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options { offset_kind: OffsetKind::Utf16, ..Options::default() })
}

/// CPU time and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
struct ProcessUsage {
    cpu_seconds: f64,
    rss_bytes: u64,
}

impl ProcessUsage {
    fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which may hold spaces, start after ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib: u64 =
            status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
        // USER_HZ is 100 on Linux.
        Some(Self { cpu_seconds: ticks as f64 / 100.0, rss_bytes: rss_kib * 1024 })
    }
}

/// Latencies in microseconds, and their percentiles.
struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile_ms(&mut self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let index = ((self.0.len() as f64 * quantile) as usize).min(self.0.len() - 1);
        self.0[index] as f64 / 1000.0
    }
}

/// The load of the fan-out phase.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FanoutLoad {
    /// Fan-out: clients, spread evenly over the documents (and over the gateways).
    #[arg(long = "fanout-clients", default_value_t = 500)]
    pub clients: usize,
    #[arg(long = "fanout-documents", default_value_t = 100)]
    pub documents: usize,
    /// Fan-out: edits per second per client.
    #[arg(long = "fanout-rate", default_value_t = 5.0)]
    pub rate: f64,
    #[arg(long = "fanout-seconds", default_value_t = 20)]
    pub seconds: u64,
}

/// The fan-out phase against a CodeSync already running (the cluster bench): `spec` as
/// `--server` takes it, `pids` the processes whose CPU and memory to sum.
pub(crate) async fn fanout_on(spec: &str, pids: Vec<u32>, load: FanoutLoad) -> anyhow::Result<Value> {
    let pids = HashMap::from([("codesync".to_string(), pids)]);
    let target = Target::new(spec, &pids).await?;
    fanout(&target, load).await
}

/// The capacity steps against a CodeSync already running (the cluster bench).
pub(crate) async fn capacity_on(
    spec: &str,
    pids: Vec<u32>,
    rate: f64,
    args: &CapacityArgs,
) -> anyhow::Result<crate::capacity::Capacity> {
    let pids = HashMap::from([("codesync".to_string(), pids)]);
    let target = Target::new(spec, &pids).await?;
    crate::capacity::find(&target, rate, args).await
}

pub async fn run(args: CollabArgs) -> anyhow::Result<()> {
    let mut phases: Vec<Phase> = args.only.clone();
    if args.capacity.capacity {
        phases.push(Phase::Capacity);
    }
    if phases.is_empty() {
        phases = vec![Phase::Replay, Phase::Fanout, Phase::Memory];
    }
    let pids: HashMap<String, Vec<u32>> = args
        .pids
        .iter()
        .map(|spec| {
            let (kind, pids) = spec.split_once('=').context("a --pid is KIND=PID[,PID...]")?;
            let pids =
                pids.split(',').map(|pid| pid.trim().parse().context("a process id")).collect::<anyhow::Result<_>>()?;
            Ok((kind.to_string(), pids))
        })
        .collect::<anyhow::Result<_>>()?;
    // The trace only for the phases that replay it (the smoke test of `make test` runs without it).
    let trace = if phases.iter().any(|phase| matches!(phase, Phase::Replay | Phase::Memory)) {
        let mut trace = Trace::load(&args.trace)?;
        if let Some(edits) = args.replay_edits {
            trace.truncate(edits);
        }
        println!(
            "trace {}: {} edits, final length {} characters",
            args.trace.display(),
            trace.edits(),
            trace.end_content.chars().count()
        );
        Some(trace)
    } else {
        None
    };
    let mut rows = Vec::new();
    let mut capacities = Vec::new();
    for spec in &args.servers {
        let target = Target::new(spec, &pids).await?;
        println!("\n== {} ({spec})", target.kind);
        let mut row = json!({"server": target.kind});
        if phases.contains(&Phase::Replay) {
            row["replay"] = replay(&target, trace.as_ref().context("the trace")?).await?;
        }
        if phases.contains(&Phase::Fanout) {
            row["fanout"] = fanout(&target, args.fanout).await?;
        }
        if phases.contains(&Phase::Memory) {
            row["memory"] = memory(&target, trace.as_ref().context("the trace")?, args.memory_documents).await?;
        }
        if phases.contains(&Phase::Capacity) {
            let capacity = crate::capacity::find(&target, args.fanout.rate, &args.capacity).await?;
            row["capacity"] = capacity.to_json();
            capacities.push(capacity);
        }
        rows.push(row);
    }
    if !capacities.is_empty() {
        println!("\n{}", crate::capacity::table(&capacities));
    }
    println!("\n{}", serde_json::to_string_pretty(&rows)?);
    if args.require_every_delivery {
        let mut lost = Vec::new();
        for row in &rows {
            let fanouts = row["fanout"].as_object().map(|_| &row["fanout"]).into_iter();
            let steps = row["capacity"]["steps"].as_array().into_iter().flatten();
            for figures in fanouts.chain(steps) {
                let expected = figures["deliveries_expected"].as_u64();
                if expected.is_none() || expected != figures["deliveries_measured"].as_u64() {
                    lost.push(format!("{}: {figures}", row["server"]));
                }
            }
        }
        anyhow::ensure!(lost.is_empty(), "deliveries were lost:\n{}", lost.join("\n"));
    }
    Ok(())
}

/// One writer replays the trace as fast as the server takes it; a second
/// client measures when it sees each inserting edit.
async fn replay(target: &Target, trace: &Trace) -> anyhow::Result<Value> {
    let document = target.new_document().await?;
    let mut reader = target.connect(&document, new_doc()).await?;
    let writer_doc = new_doc();
    let writer = target.connect(&document, writer_doc.clone()).await?;
    let writer_id = writer_doc.client_id();
    let text = writer_doc.get_or_insert_text("content");

    // (clock after the edit, when it was sent), for the reader to match.
    let sent: Arc<Mutex<std::collections::VecDeque<(u32, Instant)>>> = Arc::default();
    let final_clock = Arc::new(std::sync::atomic::AtomicU32::new(u32::MAX));
    let reader_sent = sent.clone();
    let reader_final = final_clock.clone();
    let measuring = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(200_000);
        let mut seen_clock = 0;
        let mut last_seen = Instant::now();
        loop {
            let heard = match tokio::time::timeout(PATIENCE, reader.heard.recv()).await {
                Ok(Some(heard)) => heard,
                Ok(None) => {
                    eprintln!("replay: the reading client's connection ended");
                    break;
                }
                Err(_) => {
                    eprintln!("replay: the reading client heard nothing for {PATIENCE:?}");
                    break;
                }
            };
            let Heard::Update(state_vector) = heard else { continue };
            let clock = state_vector.get(&writer_id);
            if clock <= seen_clock {
                continue;
            }
            seen_clock = clock;
            let now = Instant::now();
            last_seen = now;
            let mut sent = reader_sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while sent.front().is_some_and(|(edit_clock, _)| *edit_clock <= clock) {
                if let Some((_, at)) = sent.pop_front() {
                    latencies.push(now.duration_since(at).as_micros() as u64);
                }
            }
            if clock >= reader_final.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
        }
        (latencies, last_seen)
    });

    // Every update is encoded before the clock starts, so that the figure is the
    // server's, not the speed at which this process runs the CRDT.
    let mut updates = Vec::with_capacity(trace.txns.len());
    for txn in &trace.txns {
        let mut transaction = writer_doc.transact_mut();
        txn.apply(&text, &mut transaction);
        let clock = txn.inserts().then(|| transaction.state_vector().get(&writer_id));
        updates.push((transaction.encode_update_v1(), clock));
    }
    let started = Instant::now();
    for (index, (update, clock)) in updates.iter().enumerate() {
        if let Some(clock) = clock {
            sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_back((*clock, Instant::now()));
        }
        writer.send_update(update);
        if index % 512 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let sending = started.elapsed();
    final_clock.store(writer_doc.transact().state_vector().get(&writer_id), std::sync::atomic::Ordering::Release);
    let text_ok = text.get_string(&writer_doc.transact()) == trace.end_content;
    anyhow::ensure!(text_ok, "the replayed document differs from the trace's final text");
    let (latencies, last_seen) = measuring.await?;
    let mut latencies = Latencies(latencies);
    let elapsed = last_seen.duration_since(started);
    let edits = trace.edits();
    let figures = json!({
        "edits": edits,
        "seconds": elapsed.as_secs_f64(),
        "updates_per_second": (edits as f64 / elapsed.as_secs_f64()).round(),
        "send_seconds": sending.as_secs_f64(),
        "inserts_measured": latencies.0.len(),
        "latency_p50_ms": latencies.percentile_ms(0.50),
        "latency_p99_ms": latencies.percentile_ms(0.99),
    });
    println!("replay: {figures}");
    drop(writer);
    Ok(figures)
}

/// Many clients on many documents, each typing at a steady rate; every edit
/// is timed until each other client of its document sees it.
async fn fanout(target: &Target, load: FanoutLoad) -> anyhow::Result<Value> {
    let figures = measure_fanout(target, load).await?.to_json();
    println!("fanout: {figures}");
    Ok(figures)
}

/// What one run of the fan-out load measured.
#[derive(Debug, Clone)]
pub(crate) struct FanoutFigures {
    pub load: FanoutLoad,
    pub edits_sent: usize,
    /// Each edit once to every other client of its document.
    pub deliveries_expected: usize,
    pub deliveries_measured: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// CPU seconds over the run, of the server's processes and of this load generator.
    pub server_cpu_seconds: Option<f64>,
    pub bench_cpu_seconds: Option<f64>,
    pub server_rss_bytes: Option<u64>,
}

impl FanoutFigures {
    pub fn lost(&self) -> usize {
        self.deliveries_expected.saturating_sub(self.deliveries_measured)
    }

    /// CPU seconds per 1,000 edits sent.
    fn per_thousand_edits(&self, cpu_seconds: Option<f64>) -> Option<f64> {
        let edits = self.edits_sent.max(1) as f64;
        cpu_seconds.map(|seconds| (seconds * 1000.0 / edits * 1000.0).round() / 1000.0)
    }

    pub fn server_cpu_per_thousand_edits(&self) -> Option<f64> {
        self.per_thousand_edits(self.server_cpu_seconds)
    }

    pub fn bench_cpu_per_thousand_edits(&self) -> Option<f64> {
        self.per_thousand_edits(self.bench_cpu_seconds)
    }

    pub fn to_json(&self) -> Value {
        let percent =
            |seconds: Option<f64>| seconds.map(|seconds| (seconds / self.load.seconds as f64 * 100.0).round());
        json!({
            "clients": self.load.clients,
            "documents": self.load.documents,
            "edits_per_second": self.load.clients as f64 * self.load.rate,
            "edits_sent": self.edits_sent,
            "deliveries_expected": self.deliveries_expected,
            "deliveries_measured": self.deliveries_measured,
            "latency_p50_ms": self.p50_ms,
            "latency_p99_ms": self.p99_ms,
            "latency_p999_ms": self.p999_ms,
            "server_cpu_percent": percent(self.server_cpu_seconds),
            "server_cpu_seconds_per_1000_edits": self.server_cpu_per_thousand_edits(),
            "server_rss_mib": self.server_rss_bytes.map(|bytes| bytes / (1024 * 1024)),
            "bench_cpu_percent": percent(self.bench_cpu_seconds),
            "bench_cpu_seconds_per_1000_edits": self.bench_cpu_per_thousand_edits(),
        })
    }
}

pub(crate) async fn measure_fanout(target: &Target, load: FanoutLoad) -> anyhow::Result<FanoutFigures> {
    let documents_count = load.documents.max(1);
    let mut documents = Vec::with_capacity(documents_count);
    for _ in 0..documents_count {
        documents.push(target.new_document().await?);
    }
    // Per sending client: when each of its clocks was sent.
    let mut sent_times: HashMap<u64, Arc<Mutex<Vec<Instant>>>> = HashMap::new();
    let mut client_ids = Vec::with_capacity(load.clients);
    let mut clients = Vec::with_capacity(load.clients);
    // How many clients each document has: an edit is delivered to all but its sender.
    let mut clients_of_document = vec![0_usize; documents_count];
    for index in 0..load.clients {
        clients_of_document[index % documents_count] += 1;
    }
    for index in 0..load.clients {
        let doc = new_doc();
        sent_times.insert(doc.client_id().get(), Arc::default());
        client_ids.push(doc.client_id().get());
        clients.push(target.connect(&documents[index % documents_count], doc).await?);
    }
    let sent_times = Arc::new(sent_times);
    let before = target.usage();
    let bench_before = ProcessUsage::read(std::process::id());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let interval = Duration::from_secs_f64(1.0 / load.rate.max(0.001));
    let mut tasks = Vec::new();
    for (index, mut client) in clients.into_iter().enumerate() {
        let sent_times = sent_times.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let own_id = client.doc.client_id().get();
            let own_sent = sent_times[&own_id].clone();
            let text = client.doc.get_or_insert_text("content");
            let mut seen: HashMap<u64, u32> = HashMap::new();
            let mut latencies = Vec::new();
            // Spread the first edits over one interval so the clients do not type in lockstep.
            let offset = interval.mul_f64((index % 97) as f64 / 97.0);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick(), if !stop.load(std::sync::atomic::Ordering::Relaxed) => {
                        let update = {
                            let mut transaction = client.doc.transact_mut();
                            let end = text.len(&transaction);
                            text.insert(&mut transaction, end, "x");
                            transaction.encode_update_v1()
                        };
                        own_sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
                        client.send_update(&update);
                    }
                    heard = client.heard.recv() => {
                        let Some(Heard::Update(state_vector)) = heard else {
                            if heard.is_none() { break } else { continue }
                        };
                        let now = Instant::now();
                        for (client_id, clock) in state_vector.iter() {
                            let client_id = client_id.get();
                            if client_id == own_id {
                                continue;
                            }
                            let Some(times) = sent_times.get(&client_id) else { continue };
                            let from = seen.entry(client_id).or_insert(0);
                            if *clock <= *from {
                                continue;
                            }
                            let times = times.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            for sent_at in times.iter().take(*clock as usize).skip(*from as usize) {
                                latencies.push(now.duration_since(*sent_at).as_micros() as u64);
                            }
                            *from = *clock;
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(3)), if stop.load(std::sync::atomic::Ordering::Relaxed) => break,
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let after = target.usage();
    let bench_after = ProcessUsage::read(std::process::id());
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    let mut edits_sent = 0;
    let mut deliveries_expected = 0;
    for (index, client_id) in client_ids.iter().enumerate() {
        let sent = sent_times[client_id].lock().map(|times| times.len()).unwrap_or(0);
        edits_sent += sent;
        deliveries_expected += sent * clients_of_document[index % documents_count].saturating_sub(1);
    }
    let mut latencies = Latencies(all);
    let cpu = |before: Option<ProcessUsage>, after: Option<ProcessUsage>| match (before, after) {
        (Some(before), Some(after)) => Some(after.cpu_seconds - before.cpu_seconds),
        _ => None,
    };
    Ok(FanoutFigures {
        load: FanoutLoad { documents: documents_count, ..load },
        edits_sent,
        deliveries_expected,
        deliveries_measured: latencies.0.len(),
        p50_ms: latencies.percentile_ms(0.50),
        p99_ms: latencies.percentile_ms(0.99),
        p999_ms: latencies.percentile_ms(0.999),
        server_cpu_seconds: cpu(before, after),
        bench_cpu_seconds: cpu(bench_before, bench_after),
        server_rss_bytes: after.map(|usage| usage.rss_bytes),
    })
}

/// Loads documents holding the trace's whole history and reports the
/// server's resident memory per document.
async fn memory(target: &Target, trace: &Trace, count: usize) -> anyhow::Result<Value> {
    let (history, author, history_clock) = {
        let doc = new_doc();
        let text = doc.get_or_insert_text("content");
        for txn in &trace.txns {
            txn.apply(&text, &mut doc.transact_mut());
        }
        let transaction = doc.transact();
        let clock = transaction.state_vector().get(&doc.client_id());
        (transaction.encode_state_as_update_v1(&StateVector::default()), doc.client_id(), clock)
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = target.usage();
    let mut writers = Vec::with_capacity(count);
    for _ in 0..count {
        let document = target.new_document().await?;
        let writer = target.connect(&document, new_doc()).await?;
        writer.send_update(&history);
        // A second client seeing the whole history proves the server holds it.
        let mut reader = Client::connect(&target.url(&document), target.framing, &document, new_doc()).await?;
        tokio::time::timeout(PATIENCE, async {
            while let Some(heard) = reader.heard.recv().await {
                if let Heard::Update(state_vector) = heard
                    && state_vector.get(&author) >= history_clock
                {
                    return Ok(());
                }
            }
            anyhow::bail!("the server closed the reader's connection")
        })
        .await
        .context("a second client did not receive the loaded document in time")??;
        writers.push(writer);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.usage();
    let figures = json!({
        "documents": count,
        "history_update_bytes": history.len(),
        "characters_per_document": trace.end_content.chars().count(),
        "server_rss_mib_before": before.map(|usage| usage.rss_bytes / (1024 * 1024)),
        "server_rss_mib_after": after.map(|usage| usage.rss_bytes / (1024 * 1024)),
        "rss_per_document_mib": match (before, after) {
            (Some(before), Some(after)) => json!(((after.rss_bytes as f64 - before.rss_bytes as f64) / count as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0),
            _ => Value::Null,
        },
    });
    println!("memory: {figures}");
    Ok(figures)
}
