//! Starts the real `codesync` binary on 127.0.0.1 with ephemeral ports and a
//! fresh data directory, in either topology, and talks to it over HTTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub use codesync_common::grpc::SERVICE_NAMES as SERVICES;

/// A port that was free a moment ago. The OS hands out ephemeral ports in
/// sequence, so a port just released is not handed to the next caller at once.
/// A request carrying `session`'s access token, as any gRPC tool would send it.
pub fn signed<T>(session: &Session, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer =
        tonic::metadata::MetadataValue::try_from(format!("Bearer {}", session.access_token)).expect("ascii token");
    request.metadata_mut().insert("authorization", bearer);
    request
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Settings that keep tests from tripping limits they do not test.
pub fn relaxed_limits() -> Vec<(String, String)> {
    vec![
        ("CODESYNC_RATE_LIMIT_PER_MINUTE".into(), "1000000".into()),
        ("CODESYNC_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE".into(), "1000000".into()),
        ("CODESYNC_LOGIN_FAILURES_PER_ACCOUNT".into(), "1000000".into()),
        ("CODESYNC_REGISTRATIONS_PER_IP_PER_HOUR".into(), "1000000".into()),
        ("CODESYNC_MAX_CONNECTIONS_PER_ADDRESS".into(), "100000".into()),
        ("CODESYNC_MAX_STREAMS_PER_USER".into(), "100000".into()),
    ]
}

/// A Redis server of the test's own on a free port (for tests that stop or freeze Redis: the
/// machine's is never touched), stopped on drop.
pub struct RedisServer {
    child: Child,
    pub url: String,
    _directory: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .current_dir(directory.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian's redis-server; `make test` installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, url: format!("redis://127.0.0.1:{port}"), _directory: directory };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not listen on port {port}");
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A key prefix of the test's own on the machine's Redis (127.0.0.1:6379).
pub fn redis_prefix() -> String {
    format!("codesync-test-{}-{}:", std::process::id(), free_port())
}

/// A PostgreSQL database of its own for one test, dropped afterwards.
pub struct PostgresDatabase {
    pub name: String,
}

impl PostgresDatabase {
    pub fn create() -> Self {
        let name = format!("codesync_test_{}_{}", std::process::id(), free_port());
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

impl PostgresDatabase {
    /// The first column of the first row of a query against this database, as text.
    pub fn query_one(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &self.name, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

fn psql(sql: &str) {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql (PostgreSQL must be running on 127.0.0.1:5432; `make test` starts it)");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// One or more `codesync` processes, killed when dropped.
pub struct Cluster {
    children: Vec<(String, Child)>,
    /// How the one process was started, to start it again on the same data.
    one_process_env: Option<Vec<(String, String)>>,
    /// How each process of a topology was started, by name, to start it again.
    commands: Vec<StartCommand>,
    pub data_dir: tempfile::TempDir,
    pub base_url: String,
    pub grpc_addr: String,
    /// Every gateway's URL (the first is `base_url`).
    pub gateway_urls: Vec<String>,
    /// Each process's gRPC address, by name.
    pub grpc_addrs: Vec<(String, String)>,
    pub http: reqwest::Client,
}

/// How a process was started: its name, arguments and environment.
type StartCommand = (String, Vec<String>, Vec<(String, String)>);

/// One process of a topology: its name and the components it runs (`gateway` among them for
/// a gateway).
pub struct Process<'a> {
    pub name: &'a str,
    pub components: &'a [&'a str],
}

impl<'a> Process<'a> {
    pub const fn new(name: &'a str, components: &'a [&'a str]) -> Self {
        Self { name, components }
    }
}

impl Cluster {
    /// `codesync run`: everything in one process.
    pub async fn one_process(extra_env: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_one_process(extra_env).await {
                return cluster;
            }
        }
        panic!("codesync did not start in three attempts");
    }

    async fn try_one_process(extra_env: &[(&str, &str)]) -> Option<Self> {
        Self::start_one_process(Command::new(binary()), extra_env).await
    }

    /// One process whose open-file limit is `open_files` (set with util-linux's `prlimit`), for
    /// the tests of what happens at the descriptor ceiling.
    pub async fn one_process_with_open_files(open_files: u32, extra_env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={open_files}:{open_files}")).arg("--").arg(binary());
        let started = Self::start_one_process(command, extra_env).await;
        started.unwrap_or_else(|| panic!("codesync with {open_files} open files did not become ready"))
    }

    /// `command run` (the binary, or something that runs it) on ephemeral ports, once ready.
    async fn start_one_process(command: Command, extra_env: &[(&str, &str)]) -> Option<Self> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let http_port = free_port();
        let grpc_port = free_port();
        let mut env = base_env(data_dir.path(), extra_env);
        env.push(("CODESYNC_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")));
        env.push(("CODESYNC_GRPC_ADDR".into(), format!("127.0.0.1:{grpc_port}")));
        let child = spawn_command(command, &["run"], &env, data_dir.path(), "all");
        let mut cluster = Self::new(vec![("all".into(), child)], data_dir, http_port, grpc_port);
        cluster.one_process_env = Some(env);
        cluster.wait_until_ready().await.then_some(cluster)
    }

    /// `codesync run` started by the user `uid` (not root): a copy of the binary in a data
    /// directory of that user's, as someone trying it on their own machine would.
    pub async fn one_process_as_user(uid: u32, extra_env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let binary_copy = data_dir.path().join("codesync");
        std::fs::copy(binary(), &binary_copy).expect("copy the binary where the user can run it");
        std::os::unix::fs::chown(data_dir.path(), Some(uid), Some(uid)).expect("give the data directory to the user");
        let http_port = free_port();
        let grpc_port = free_port();
        let mut env = base_env(data_dir.path(), extra_env);
        env.push(("CODESYNC_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")));
        env.push(("CODESYNC_GRPC_ADDR".into(), format!("127.0.0.1:{grpc_port}")));
        env.push(("HOME".into(), data_dir.path().display().to_string()));
        let mut command = Command::new(&binary_copy);
        std::os::unix::process::CommandExt::uid(&mut command, uid);
        std::os::unix::process::CommandExt::gid(&mut command, uid);
        let child = spawn_command(command, &["run"], &env, data_dir.path(), "all");
        let mut cluster = Self::new(vec![("all".into(), child)], data_dir, http_port, grpc_port);
        assert!(cluster.wait_until_ready().await, "codesync started by uid {uid} did not become ready");
        cluster
    }

    /// Ten processes: each service with `--service NAME`, plus the gateway,
    /// with real gRPC between them.
    pub async fn ten_processes(extra_env: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_ten_processes(extra_env).await {
                return cluster;
            }
        }
        panic!("codesync did not start in three attempts");
    }

    async fn try_ten_processes(extra_env: &[(&str, &str)]) -> Option<Self> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let http_port = free_port();
        let ports: Vec<(&str, u16)> = SERVICES.iter().map(|service| (*service, free_port())).collect();
        let mut env = base_env(data_dir.path(), extra_env);
        for (service, port) in &ports {
            env.push((format!("CODESYNC_{}_ENDPOINT", service.to_uppercase()), format!("http://127.0.0.1:{port}")));
        }
        // Migrate once up front, as a deployment would, so that service start-ups do not race.
        let status = Command::new(binary())
            .arg("migrate")
            .envs(env.clone())
            .current_dir(data_dir.path())
            .status()
            .expect("run migrate");
        assert!(status.success(), "codesync migrate failed");
        let mut children = Vec::new();
        for (service, port) in &ports {
            let mut service_env = env.clone();
            service_env.push(("CODESYNC_GRPC_ADDR".into(), format!("127.0.0.1:{port}")));
            children.push((
                service.to_string(),
                spawn(&["run", "--service", service], &service_env, data_dir.path(), service),
            ));
        }
        let mut gateway_env = env.clone();
        gateway_env.push(("CODESYNC_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")));
        children.push((
            "gateway".into(),
            spawn(&["run", "--service", "gateway"], &gateway_env, data_dir.path(), "gateway"),
        ));
        let mut cluster = Self::new(children, data_dir, http_port, ports[0].1);
        cluster.grpc_addrs =
            ports.iter().map(|(service, port)| (service.to_string(), format!("127.0.0.1:{port}"))).collect();
        (cluster.wait_until_ready().await && cluster.every_process_runs()).then_some(cluster)
    }

    /// Any topology: each process runs its components with `codesync run --service ...`; every
    /// service's endpoint variable lists all the processes that run it, and each gateway gets
    /// an HTTP port of its own. The database is migrated once first.
    pub async fn topology(processes: &[Process<'_>], extra_env: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_topology(processes, extra_env).await {
                return cluster;
            }
        }
        panic!("codesync did not start in three attempts");
    }

    async fn try_topology(processes: &[Process<'_>], extra_env: &[(&str, &str)]) -> Option<Self> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let grpc_ports: Vec<u16> = processes.iter().map(|_| free_port()).collect();
        let http_ports: Vec<Option<u16>> =
            processes.iter().map(|process| process.components.contains(&"gateway").then(free_port)).collect();
        let mut env = base_env(data_dir.path(), extra_env);
        for service in SERVICES {
            let endpoints: Vec<String> = processes
                .iter()
                .zip(&grpc_ports)
                .filter(|(process, _)| process.components.contains(&service))
                .map(|(_, port)| format!("http://127.0.0.1:{port}"))
                .collect();
            env.push((format!("CODESYNC_{}_ENDPOINT", service.to_uppercase()), endpoints.join(",")));
        }
        let status = Command::new(binary())
            .arg("migrate")
            .envs(env.clone())
            .current_dir(data_dir.path())
            .status()
            .expect("run migrate");
        assert!(status.success(), "codesync migrate failed");
        let mut children = Vec::new();
        let mut commands = Vec::new();
        for ((process, grpc_port), http_port) in processes.iter().zip(&grpc_ports).zip(&http_ports) {
            let mut process_env = env.clone();
            process_env.push(("CODESYNC_GRPC_ADDR".into(), format!("127.0.0.1:{grpc_port}")));
            if let Some(http_port) = http_port {
                process_env.push(("CODESYNC_HTTP_ADDR".into(), format!("127.0.0.1:{http_port}")));
            }
            let args: Vec<String> = std::iter::once("run".to_string())
                .chain(process.components.iter().flat_map(|component| ["--service".to_string(), component.to_string()]))
                .collect();
            let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
            children.push((process.name.to_string(), spawn(&arg_refs, &process_env, data_dir.path(), process.name)));
            commands.push((process.name.to_string(), args, process_env));
        }
        let gateway_urls: Vec<String> =
            http_ports.iter().flatten().map(|port| format!("http://127.0.0.1:{port}")).collect();
        let first_http = http_ports.iter().flatten().next().copied().expect("a topology has a gateway");
        let mut cluster = Self::new(children, data_dir, first_http, grpc_ports[0]);
        cluster.commands = commands;
        cluster.gateway_urls = gateway_urls;
        cluster.grpc_addrs = processes
            .iter()
            .zip(&grpc_ports)
            .map(|(process, port)| (process.name.to_string(), format!("127.0.0.1:{port}")))
            .collect();
        for url in cluster.gateway_urls.clone() {
            if !cluster.wait_until_ready_at(&url).await {
                return None;
            }
        }
        // A gateway is ready once one replica of each service answers: wait for every process,
        // so that a test may talk to any replica straight away.
        for (process, grpc_port) in processes.iter().zip(&grpc_ports) {
            let serves_grpc = process.components.iter().any(|component| *component != "gateway");
            if serves_grpc && !cluster.wait_until_serving(&format!("127.0.0.1:{grpc_port}")).await {
                return None;
            }
        }
        cluster.every_process_runs().then_some(cluster)
    }

    /// False (saying which) when a process of the cluster has exited: one that lost its port to
    /// another test between `free_port` and its bind, while that other test's process answers
    /// the health checks on the port in its place.
    fn every_process_runs(&mut self) -> bool {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("codesync ({name}) exited at start with {status}; starting the cluster again");
                return false;
            }
        }
        true
    }

    /// Starts the process `name` of a topology again, as it was started first.
    pub fn restart(&mut self, name: &str) {
        self.kill(name);
        self.children.retain(|(child_name, _)| child_name != name);
        let (_, args, env) =
            self.commands.iter().find(|(command_name, _, _)| command_name == name).expect("a process of the topology");
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn(&arg_refs, env, self.data_dir.path(), name);
        self.children.push((name.to_string(), child));
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to the process `name`.
    pub fn signal(&self, name: &str, signal: &str) {
        let pid = self.pid(name).expect("a running process");
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Waits until the process `name` has exited; its exit status.
    pub async fn wait_for_exit(&mut self, name: &str, timeout: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            for (child_name, child) in &mut self.children {
                if child_name == name
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return status;
                }
            }
            assert!(started.elapsed() < timeout, "{name} did not exit within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The gRPC address of the process `name` of a topology.
    pub fn grpc_addr_of(&self, name: &str) -> &str {
        &self.grpc_addrs.iter().find(|(process, _)| process == name).expect("a process of the topology").1
    }

    /// Where a gRPC client reaches `service`: its own process in the split topology, the one
    /// process otherwise.
    pub fn grpc_addr_for(&self, service: &str) -> &str {
        self.grpc_addrs.iter().find(|(process, _)| process == service).map_or(self.grpc_addr.as_str(), |(_, addr)| addr)
    }

    /// A gRPC channel to `service` (see [`Self::grpc_addr_for`]), as any gRPC tool would open one.
    pub async fn grpc_channel(&self, service: &str) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.grpc_addr_for(service)))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// The log of the process `name` so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// CodeSync started by something else (podman, from the Helm chart), reached at
    /// 127.0.0.1: the same helpers, nothing to stop.
    pub fn external(http_port: u16, grpc_port: u16) -> Self {
        Self::new(Vec::new(), tempfile::tempdir().expect("temp dir"), http_port, grpc_port)
    }

    fn new(children: Vec<(String, Child)>, data_dir: tempfile::TempDir, http_port: u16, grpc_port: u16) -> Self {
        let base_url = format!("http://127.0.0.1:{http_port}");
        Self {
            children,
            one_process_env: None,
            commands: Vec::new(),
            data_dir,
            gateway_urls: vec![base_url.clone()],
            base_url,
            grpc_addr: format!("127.0.0.1:{grpc_port}"),
            grpc_addrs: Vec::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
        }
    }

    /// Waits until the gateway reports every service SERVING; false if a
    /// process exited first (an ephemeral port was taken meanwhile: try again).
    async fn wait_until_ready(&mut self) -> bool {
        let url = self.base_url.clone();
        self.wait_until_ready_at(&url).await
    }

    /// Waits until the process at `grpc_addr` answers its gRPC health check with SERVING;
    /// false if a process exited first.
    async fn wait_until_serving(&mut self, grpc_addr: &str) -> bool {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let started = Instant::now();
        loop {
            if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
                .expect("an endpoint")
                .connect()
                .await
            {
                let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
                if answer.is_ok_and(|answer| answer.get_ref().status == ServingStatus::Serving as i32) {
                    return true;
                }
            }
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("codesync ({name}) exited at start with {status}");
                    return false;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("{grpc_addr} did not serve within 30 s; logs are in {}", self.data_dir.path().display());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_until_ready_at(&mut self, base_url: &str) -> bool {
        let started = Instant::now();
        loop {
            let readiness = self.http.get(format!("{base_url}/readyz")).send().await;
            if readiness.is_ok_and(|response| response.status() == StatusCode::OK) {
                eprintln!("cluster ready after {} ms", started.elapsed().as_millis());
                return true;
            }
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(self.data_dir.path().join(format!("{name}.log"))).unwrap_or_default();
                    eprintln!("codesync ({name}) exited at start with {status}:\n{log}");
                    return false;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("codesync did not become ready within 30 s; logs are in {}", self.data_dir.path().display());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        read(response).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    /// Sends `body` as it is, with the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("send request")
    }

    /// Registers `name` (with `name@example.com`) and returns the session.
    pub async fn register(&self, name: &str) -> Session {
        let (status, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {name}: {body}");
        Session::from_body(&body)
    }

    /// SIGKILL (`kill -9`) the one process and start it again on the same data and ports.
    pub async fn kill_and_restart(&mut self) {
        let env = self.one_process_env.clone().expect("only a one-process cluster restarts");
        self.kill("all");
        self.children.clear();
        for _ in 0..100 {
            let child = spawn(&["run"], &env, self.data_dir.path(), "all");
            self.children.push(("all".into(), child));
            if self.wait_until_ready().await {
                return;
            }
            // The old listener's port may linger for a moment.
            self.children.clear();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("codesync did not restart");
    }

    /// The process id of the process `name` ("all" for the one process).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.iter().find(|(child_name, _)| child_name == name).map(|(_, child)| child.id())
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.replacen("http://", "ws://", 1))
    }

    /// A WebSocket URL on the `gateway`th gateway of a topology.
    pub fn ws_url_at(&self, gateway: usize, path: &str) -> String {
        format!("{}{path}", self.gateway_urls[gateway].replacen("http://", "ws://", 1))
    }

    pub fn kill(&mut self, name: &str) {
        for (child_name, child) in &mut self.children {
            if child_name == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows what the servers said; their data directory goes with the test.
        if std::thread::panicking() {
            for (name, _) in &self.children {
                let log = std::fs::read_to_string(self.data_dir.path().join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- last lines of the {name} log ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    pub fn from_body(body: &Value) -> Self {
        Self {
            user_id: body["user"]["id"].as_str().expect("user.id").to_string(),
            access_token: body["access_token"].as_str().expect("access_token").to_string(),
            refresh_token: body["refresh_token"].as_str().expect("refresh_token").to_string(),
        }
    }

    pub fn token(&self) -> Option<&str> {
        Some(&self.access_token)
    }
}

/// Status and JSON body; asserts that every error uses the REST error shape.
pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("read body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("non-JSON body with {status}: {}", String::from_utf8_lossy(&bytes)))
    };
    if status.is_client_error() || status.is_server_error() {
        assert_error_shape(&body);
    }
    (status, body)
}

pub fn assert_error_shape(body: &Value) {
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}"));
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "code not snake_case: {code}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error.message in {body}"));
    assert!(!message.is_empty());
}

/// The binary under test: the one `make release` ships (`CODESYNC_TEST_BINARY`, which
/// `make test` sets to target/release/codesync), or this build's own.
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| match std::env::var("CODESYNC_TEST_BINARY") {
        Ok(path) if !path.is_empty() => {
            assert!(Path::new(&path).exists(), "CODESYNC_TEST_BINARY={path} does not exist (make release builds it)");
            path
        }
        _ => env!("CARGO_BIN_EXE_codesync").to_string(),
    })
}

fn base_env(data_dir: &Path, extra_env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("CODESYNC_DATA_DIR".into(), data_dir.join("data").display().to_string()),
        ("CODESYNC_LOG".into(), "info".into()),
    ];
    env.extend(relaxed_limits());
    // Later entries win when the process reads its environment.
    env.extend(extra_env.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    env
}

fn spawn(args: &[&str], env: &[(String, String)], data_dir: &Path, log_name: &str) -> Child {
    spawn_command(Command::new(binary()), args, env, data_dir, log_name)
}

fn spawn_command(
    mut command: Command,
    args: &[&str],
    env: &[(String, String)],
    data_dir: &Path,
    log_name: &str,
) -> Child {
    let log_path: PathBuf = data_dir.join(format!("{log_name}.log"));
    // Appended to, so that a restarted process's log follows the killed one's.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("open log file");
    let log_err = log.try_clone().expect("clone log file");
    command.args(args).current_dir(data_dir).stdin(Stdio::null()).stdout(log).stderr(log_err);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CODESYNC_")) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("spawn codesync")
}
