//! The `kubernetes` backend against a stand-in for a cluster on 127.0.0.1: an API server that
//! records what it is sent and answers like the real one (objects back with 201, pod lists with
//! container states, container logs that can be followed, 400 for a container not started yet,
//! 404 after a deletion), and a kubelet that really runs each pod: the ConfigMap's items and the
//! `emptyDir`s become directories, and every container runs its command from the Job in
//! bubblewrap with its volumes at their mount paths, init containers first and the others side
//! by side, each container's stdout and stderr into one log as Kubernetes keeps them. The stand-in
//! does not enforce resources, users or seccomp (the objects sent are checked for them field by
//! field, and validated offline with `kubernetes-validate --strict`,
//! `CODESYNC_TEST_KUBERNETES_VALIDATE`, set by `make test`); an OOMKilled container is the unit
//! tests' (`sandbox::kubernetes::tests`).

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use codesync_execution::languages::LanguageTable;
use codesync_execution::run::{self, Program};
use codesync_execution::sandbox::kubernetes::{JobOutcome, JobRequest, KubernetesConfig, KubernetesSandbox};
use codesync_execution::sandbox::{Ending, Limits, Sandbox, Stream};
use codesync_proto::execution::v1 as pb;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

const NAMESPACE: &str = "codesync-runs";
const IMAGE: &str = "registry.example/codesync-runner:1";

/// One container of a pod: its state as the API reports it, and its log.
struct ContainerRun {
    name: String,
    init: bool,
    state: Value,
    log: Vec<u8>,
    ended: bool,
}

struct PodRun {
    job: String,
    phase: &'static str,
    containers: Vec<ContainerRun>,
    kubelet: Option<JoinHandle<()>>,
}

impl PodRun {
    fn container(&mut self, name: &str) -> Option<&mut ContainerRun> {
        self.containers.iter_mut().find(|container| container.name == name)
    }
}

#[derive(Default)]
struct Cluster {
    config_maps: HashMap<String, Value>,
    jobs: HashMap<String, Value>,
    pods: HashMap<String, PodRun>,
    created_jobs: Vec<Value>,
    created_config_maps: Vec<Value>,
    /// `kind/name` and the grace period asked for.
    deleted: Vec<(String, Option<i64>)>,
}

type Shared = Arc<Mutex<Cluster>>;

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "message": message, "code": code.as_u16()});
    (code, Json(body)).into_response()
}

fn created(mut object: Value) -> Response {
    object["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    object["metadata"]["resourceVersion"] = json!("1");
    (StatusCode::CREATED, Json(object)).into_response()
}

async fn create_config_map(State(cluster): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut cluster = cluster.lock().unwrap();
    let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
    cluster.config_maps.insert(name, body.clone());
    cluster.created_config_maps.push(body.clone());
    created(body)
}

async fn create_job(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let pod_name = format!("{name}-x7k2p");
    let spec = &body["spec"]["template"]["spec"];
    let containers = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| (container, true))
        .chain(spec["containers"].as_array().into_iter().flatten().map(|container| (container, false)))
        .map(|(container, init)| ContainerRun {
            name: container["name"].as_str().unwrap_or_default().to_string(),
            init,
            state: json!({"waiting": {"reason": "PodInitializing"}}),
            log: Vec::new(),
            ended: false,
        })
        .collect();
    let mut cluster = shared.lock().unwrap();
    cluster.jobs.insert(name.clone(), body.clone());
    cluster.created_jobs.push(body.clone());
    cluster.pods.insert(pod_name.clone(), PodRun { job: name, phase: "Pending", containers, kubelet: None });
    let kubelet = tokio::spawn(kubelet(shared.clone(), pod_name.clone(), body.clone()));
    if let Some(pod) = cluster.pods.get_mut(&pod_name) {
        pod.kubelet = Some(kubelet);
    }
    created(body)
}

/// Runs a pod as a node would: volumes, init containers in order, then the containers together.
async fn kubelet(shared: Shared, pod: String, job: Value) {
    let spec = &job["spec"]["template"]["spec"];
    let volumes = tempfile::tempdir().unwrap();
    for volume in spec["volumes"].as_array().unwrap() {
        let directory = volumes.path().join(volume["name"].as_str().unwrap());
        std::fs::create_dir(&directory).unwrap();
        if let Some(name) = volume["configMap"]["name"].as_str() {
            let config_map = shared.lock().unwrap().config_maps.get(name).cloned().expect("the ConfigMap exists");
            for item in volume["configMap"]["items"].as_array().unwrap() {
                let content = config_map["data"][item["key"].as_str().unwrap()].as_str().unwrap();
                std::fs::write(directory.join(item["path"].as_str().unwrap()), content).unwrap();
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
    }
    let set_phase = |phase| {
        if let Some(pod) = shared.lock().unwrap().pods.get_mut(&pod) {
            pod.phase = phase;
        }
    };
    set_phase("Running");
    for container in spec["initContainers"].as_array().into_iter().flatten() {
        if run_container(&shared, &pod, container, volumes.path()).await != 0 {
            set_phase("Failed");
            return;
        }
    }
    let containers = spec["containers"].as_array().unwrap();
    let codes = futures::future::join_all(
        containers.iter().map(|container| run_container(&shared, &pod, container, volumes.path())),
    )
    .await;
    set_phase(if codes.iter().all(|code| *code == 0) { "Succeeded" } else { "Failed" });
}

/// One container in bubblewrap, its stdout and stderr into its log; answers its exit code.
async fn run_container(shared: &Shared, pod: &str, container: &Value, volumes: &FsPath) -> i32 {
    let name = container["name"].as_str().unwrap().to_string();
    assert_eq!(container["image"], IMAGE, "the node has only the runner image");
    let mut bwrap = tokio::process::Command::new("bwrap");
    bwrap.args(["--unshare-pid", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]);
    for (link, target) in [("usr/bin", "/bin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/sbin", "/sbin")] {
        bwrap.args(["--symlink", link, target]);
    }
    bwrap.args(["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]);
    for mount in container["volumeMounts"].as_array().unwrap() {
        let bind = if mount["readOnly"] == true { "--ro-bind" } else { "--bind" };
        let source = volumes.join(mount["name"].as_str().unwrap());
        bwrap.arg(bind).arg(source).arg(mount["mountPath"].as_str().unwrap());
    }
    bwrap.args(["--chdir", container["workingDir"].as_str().unwrap(), "--clearenv"]);
    for variable in container["env"].as_array().unwrap() {
        bwrap.args(["--setenv", variable["name"].as_str().unwrap(), variable["value"].as_str().unwrap()]);
    }
    bwrap.arg("--");
    bwrap.args(container["command"].as_array().unwrap().iter().map(|part| part.as_str().unwrap()));
    // Kubernetes keeps a container's stdout and stderr in one log.
    let (reader, writer) = std::io::pipe().unwrap();
    bwrap.stdin(std::process::Stdio::null()).stdout(writer.try_clone().unwrap()).stderr(writer).kill_on_drop(true);
    let mut child = bwrap.spawn().unwrap();
    drop(bwrap);
    let update = |change: &mut dyn FnMut(&mut ContainerRun)| {
        if let Some(container) = shared.lock().unwrap().pods.get_mut(pod).and_then(|pod| pod.container(&name)) {
            change(container);
        }
    };
    update(&mut |container| container.state = json!({"running": {"startedAt": "2026-12-02T10:00:00Z"}}));
    let mut log = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).unwrap();
    let mut buffer = vec![0; 4096];
    loop {
        match log.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => update(&mut |container| container.log.extend_from_slice(&buffer[..read])),
        }
    }
    let code = child.wait().await.unwrap().code().unwrap_or(137);
    update(&mut |container| {
        container.state =
            json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}});
        container.ended = true;
    });
    code
}

async fn read_job(State(cluster): State<Shared>, Path((_, name)): Path<(String, String)>) -> Response {
    let cluster = cluster.lock().unwrap();
    if !cluster.jobs.contains_key(&name) {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("jobs.batch \"{name}\" not found"));
    }
    Json(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NAMESPACE},
        "status": {"conditions": []}}))
    .into_response()
}

async fn list_pods(State(cluster): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let cluster = cluster.lock().unwrap();
    let job = query.get("labelSelector").and_then(|selector| selector.strip_prefix("job-name=")).unwrap_or_default();
    let items: Vec<Value> = cluster
        .pods
        .iter()
        .filter(|(_, pod)| pod.job == job)
        .map(|(name, pod)| {
            let statuses = |init: bool| -> Vec<Value> {
                pod.containers
                    .iter()
                    .filter(|container| container.init == init)
                    .map(|container| json!({"name": container.name, "image": IMAGE, "imageID": "", "ready": false,
                        "restartCount": 0, "state": container.state}))
                    .collect()
            };
            json!({
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"job-name": pod.job}},
                "status": {"phase": pod.phase, "initContainerStatuses": statuses(true), "containerStatuses": statuses(false)},
            })
        })
        .collect();
    Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}))
        .into_response()
}

/// A container's log; with `follow`, streamed as it is written until the container ends.
async fn pod_log(
    State(shared): State<Shared>,
    Path((_, pod)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let container = query.get("container").cloned().unwrap_or_default();
    let limit = query.get("limitBytes").and_then(|limit| limit.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let follow = query.get("follow").map(String::as_str) == Some("true");
    {
        let mut cluster = shared.lock().unwrap();
        let Some(run) = cluster.pods.get_mut(&pod) else {
            return status(StatusCode::NOT_FOUND, "NotFound", format!("pods \"{pod}\" not found"));
        };
        let Some(found) = run.container(&container) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", format!("container {container} is not valid"));
        };
        if found.state.get("waiting").is_some() {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: PodInitializing"),
            );
        }
        if !follow {
            let end = found.log.len().min(limit);
            return found.log[..end].to_vec().into_response();
        }
    }
    let chunks = futures::stream::unfold(0usize, move |sent| {
        let (shared, pod, container) = (shared.clone(), pod.clone(), container.clone());
        async move {
            loop {
                {
                    let mut cluster = shared.lock().unwrap();
                    let found = cluster.pods.get_mut(&pod).and_then(|run| run.container(&container))?;
                    let end = found.log.len().min(limit);
                    if end > sent {
                        return Some((Ok::<_, std::io::Error>(found.log[sent..end].to_vec()), end));
                    }
                    if found.ended || sent >= limit {
                        return None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    Body::from_stream(chunks).into_response()
}

fn grace_period(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<Value>(body).ok().and_then(|options| options["gracePeriodSeconds"].as_i64())
}

/// Removes a pod as the node would: its containers are killed.
fn remove_pod(cluster: &mut Cluster, pod: &str) {
    if let Some(run) = cluster.pods.remove(pod)
        && let Some(kubelet) = run.kubelet
    {
        kubelet.abort();
    }
}

async fn delete_pod(
    State(cluster): State<Shared>,
    Path((_, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut cluster = cluster.lock().unwrap();
    cluster.deleted.push((format!("pods/{name}"), grace_period(&body)));
    if !cluster.pods.contains_key(&name) {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("pods \"{name}\" not found"));
    }
    remove_pod(&mut cluster, &name);
    Json(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}})).into_response()
}

async fn delete_job(
    State(cluster): State<Shared>,
    Path((_, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut cluster = cluster.lock().unwrap();
    cluster.deleted.push((format!("jobs/{name}"), grace_period(&body)));
    if cluster.jobs.remove(&name).is_none() {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("jobs.batch \"{name}\" not found"));
    }
    // Background propagation: the Job's pods go too.
    let pods: Vec<String> =
        cluster.pods.iter().filter(|(_, pod)| pod.job == name).map(|(pod, _)| pod.clone()).collect();
    for pod in pods {
        remove_pod(&mut cluster, &pod);
    }
    Json(json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"})).into_response()
}

async fn delete_config_map(State(cluster): State<Shared>, Path((_, name)): Path<(String, String)>) -> Response {
    let mut cluster = cluster.lock().unwrap();
    cluster.deleted.push((format!("configmaps/{name}"), None));
    cluster.config_maps.remove(&name);
    Json(json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"})).into_response()
}

/// The stand-in cluster, or `None` (the test is skipped) where bubblewrap is missing and
/// `make test` did not ask for it.
async fn stand_in_cluster() -> Option<(Sandbox, Shared)> {
    if std::process::Command::new("bwrap").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CODESYNC_TEST_REQUIRE_SANDBOX").is_none(),
            "bwrap is missing, and make test needs it for the stand-in kubelet"
        );
        eprintln!("skipping: bwrap is missing (the stand-in kubelet runs containers in it)");
        return None;
    }
    let cluster = Shared::default();
    let app = axum::Router::new()
        .route("/api/v1/namespaces/{namespace}/configmaps", post(create_config_map))
        .route("/api/v1/namespaces/{namespace}/configmaps/{name}", axum::routing::delete(delete_config_map))
        .route("/apis/batch/v1/namespaces/{namespace}/jobs", post(create_job))
        .route("/apis/batch/v1/namespaces/{namespace}/jobs/{name}", get(read_job).delete(delete_job))
        .route("/api/v1/namespaces/{namespace}/pods", get(list_pods))
        .route("/api/v1/namespaces/{namespace}/pods/{name}", axum::routing::delete(delete_pod))
        .route("/api/v1/namespaces/{namespace}/pods/{pod}/log", get(pod_log))
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sandbox = KubernetesSandbox::connect(KubernetesConfig {
        api_url: Some(format!("http://{address}")),
        namespace: NAMESPACE.into(),
        image: IMAGE.into(),
    })
    .await
    .unwrap();
    Some((Sandbox::Kubernetes(sandbox), cluster))
}

fn kubernetes(sandbox: &Sandbox) -> &KubernetesSandbox {
    match sandbox {
        Sandbox::Kubernetes(kubernetes) => kubernetes,
        _ => unreachable!("the stand-in cluster's sandbox"),
    }
}

async fn run_program(sandbox: &Sandbox, language: &str, files: &[(&str, &str)], stdin: &str) -> pb::ExecutionResult {
    let table = LanguageTable::embedded();
    let files: Vec<pb::SourceFile> = files
        .iter()
        .map(|(name, content)| pb::SourceFile { name: name.to_string(), content: content.to_string() })
        .collect();
    let program = Program { language, files: &files, entry: "", stdin };
    let (language, entry) = run::resolve(&table, &program).unwrap();
    run::run(sandbox, language, &entry, &program, &Limits::default(), None).await.unwrap()
}

/// Runs shell commands as the two phases of a Job, with the given limits.
async fn run_job(
    sandbox: &Sandbox,
    compile: Option<(&str, Limits)>,
    run: (&str, Limits),
    live: Option<&codesync_execution::sandbox::LiveOutput>,
) -> JobOutcome {
    let shell = |script: &str| vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
    let files = [("main.sh".to_string(), b"echo unused".to_vec())];
    let request = JobRequest {
        files: &files,
        stdin: b"",
        compile: compile.map(|(script, limits)| (shell(script), limits)),
        run: (shell(run.0), run.1),
    };
    kubernetes(sandbox).run(request, live).await.unwrap()
}

/// Every Job, pod and ConfigMap made so far is gone (they are deleted before a run answers).
fn assert_nothing_left(cluster: &Shared) {
    let cluster = cluster.lock().unwrap();
    assert!(cluster.jobs.is_empty(), "Jobs left: {:?}", cluster.jobs.keys());
    assert!(cluster.pods.is_empty(), "pods left: {:?}", cluster.pods.keys());
    assert!(cluster.config_maps.is_empty(), "ConfigMaps left: {:?}", cluster.config_maps.keys());
}

fn validate_offline(object: &Value) {
    let tool = match std::env::var("CODESYNC_TEST_KUBERNETES_VALIDATE") {
        Ok(tool) if std::path::Path::new(&tool).exists() => tool,
        _ => {
            eprintln!("skipping kubernetes-validate: CODESYNC_TEST_KUBERNETES_VALIDATE is unset (make test sets it)");
            return;
        }
    };
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), serde_json::to_vec_pretty(object).unwrap()).unwrap();
    let output = std::process::Command::new(tool).args(["--strict", "-k", "1.33.0"]).arg(file.path()).output().unwrap();
    assert!(
        output.status.success(),
        "kubernetes-validate --strict refused {}:\n{}{}",
        object["kind"],
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_run_is_one_hardened_job_with_stdout_and_stderr_apart_and_nothing_left_afterwards() {
    let Some((sandbox, cluster)) = stand_in_cluster().await else { return };
    let result = run_program(
        &sandbox,
        "python",
        &[
            (
                "main.py",
                "import sys, util\nprint('hello', sys.stdin.read(), util.X)\nprint('a warning', file=sys.stderr)",
            ),
            ("util.py", "X = 1"),
        ],
        "from stdin",
    )
    .await;
    assert_eq!(result.status, pb::ExecutionStatus::Ok as i32, "{result:?}");
    assert_eq!(result.stdout, "hello from stdin 1\n");
    assert_eq!(result.stderr, "a warning\n");
    assert_nothing_left(&cluster);

    let (job, config_map, deleted) = {
        let cluster = cluster.lock().unwrap();
        (cluster.created_jobs[0].clone(), cluster.created_config_maps[0].clone(), cluster.deleted.clone())
    };
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(deleted.contains(&(format!("jobs/{name}"), None)), "{deleted:?}");
    assert!(deleted.contains(&(format!("pods/{name}-x7k2p"), Some(0))), "the pod without a grace period: {deleted:?}");
    assert!(deleted.contains(&(format!("configmaps/{name}"), None)), "{deleted:?}");

    // The Job, as the issue asks for it.
    let spec = &job["spec"];
    assert_eq!(job["kind"], "Job");
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["ttlSecondsAfterFinished"], 300);
    assert_eq!(spec["activeDeadlineSeconds"], 120 + 20 + 30, "a backstop past the phases' own deadlines");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["terminationGracePeriodSeconds"], 1);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let containers: Vec<&Value> =
        pod["initContainers"].as_array().unwrap().iter().chain(pod["containers"].as_array().unwrap()).collect();
    let names: Vec<&str> = containers.iter().map(|container| container["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "run", "stderr"]);
    for container in containers {
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{container}");
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
        assert!(container["resources"]["limits"]["memory"].is_string());
        assert_eq!(container["image"], IMAGE);
    }
    let run = &pod["containers"][0];
    assert_eq!(run["resources"]["limits"]["memory"], "134217728");
    assert_eq!(run["resources"]["limits"]["cpu"], "1000m");
    // The run container reads the stdin file and writes stderr into the FIFO; the files are
    // mounted by numbered keys.
    assert_eq!(
        run["command"],
        json!([
            "/bin/sh",
            "-c",
            "exec \"$@\" < /input/stdin 2> /streams/stderr",
            "sh",
            "/usr/bin/python3",
            "-E",
            "-s",
            "-B",
            "main.py"
        ])
    );
    assert_eq!(pod["containers"][1]["command"], json!(["/bin/cat", "/streams/stderr"]));
    assert_eq!(config_map["data"]["stdin"], "from stdin");
    assert_eq!(config_map["data"]["file-1"], "X = 1");
    assert_eq!(pod["volumes"][0]["configMap"]["items"][1], json!({"key": "file-1", "path": "util.py"}));
    validate_offline(&job);
    validate_offline(&config_map);

    // A runtime error keeps its exit code and its traceback on stderr.
    let result =
        run_program(&sandbox, "python", &[("main.py", "print('before')\nraise SystemExit('gone wrong')")], "").await;
    assert_eq!((result.status, result.exit_code), (pb::ExecutionStatus::RuntimeError as i32, 1), "{result:?}");
    assert_eq!((result.stdout.as_str(), result.stderr.as_str()), ("before\n", "gone wrong\n"));
    assert_nothing_left(&cluster);
}

#[tokio::test]
async fn a_compiled_language_compiles_in_the_prepare_container_and_its_errors_are_the_compilers() {
    let Some((sandbox, cluster)) = stand_in_cluster().await else { return };
    let result = run_program(&sandbox, "cpp", &[("main.cpp", "int main() { return oops; }")], "").await;
    assert_eq!(result.status, pb::ExecutionStatus::CompileError as i32, "{result:?}");
    assert!(result.stderr.contains("oops") && result.stderr.contains("was not declared"), "{}", result.stderr);
    let result = run_program(
        &sandbox,
        "cpp",
        &[("main.cpp", "#include <iostream>\nint main() { std::cout << \"compiled\\n\"; std::cerr << \"e\\n\"; }")],
        "",
    )
    .await;
    assert_eq!(result.status, pb::ExecutionStatus::Ok as i32, "{result:?}");
    assert_eq!((result.stdout.as_str(), result.stderr.as_str()), ("compiled\n", "e\n"));
    assert_nothing_left(&cluster);
}

#[tokio::test]
async fn output_arrives_while_the_program_runs_and_the_time_limit_stops_it() {
    let Some((sandbox, cluster)) = stand_in_cluster().await else { return };
    let (live, mut chunks) = codesync_execution::sandbox::LiveOutput::channel();
    let limits = Limits { wall_time: Duration::from_secs(4), ..Limits::default() };
    let run = run_job(&sandbox, None, ("echo first; echo on stderr >&2; exec sleep 600", limits), Some(&live));
    tokio::pin!(run);
    // The first line reaches the caller while the program is still running (it never ends by itself).
    let (stream, chunk) = tokio::select! {
        chunk = chunks.recv() => chunk.unwrap(),
        outcome = &mut run => panic!("the run ended before any output arrived: {outcome:?}"),
    };
    assert_eq!((stream, chunk.as_slice()), (Stream::Stdout, b"first\n".as_slice()));
    let running = {
        let mut cluster = cluster.lock().unwrap();
        let pod = cluster.pods.values_mut().next().expect("the run's pod");
        pod.container("run").unwrap().state.get("running").is_some()
    };
    assert!(running, "the output came while the run container ran");
    let outcome = run.await;
    let ran = outcome.run.unwrap();
    assert_eq!(ran.ending, Ending::TimeLimit);
    assert!(ran.wall_time >= Duration::from_secs(4) && ran.wall_time < Duration::from_secs(60), "{:?}", ran.wall_time);
    assert_eq!((ran.stdout.as_slice(), ran.stderr.as_slice()), (b"first\n".as_slice(), b"on stderr\n".as_slice()));
    let mut stderr_live = Vec::new();
    while let Some((stream, chunk)) = chunks.try_recv() {
        if stream == Stream::Stderr {
            stderr_live.extend(chunk);
        }
    }
    assert_eq!(stderr_live, b"on stderr\n", "stderr is passed on live too");
    assert_nothing_left(&cluster);
}

#[tokio::test]
async fn the_output_limit_stops_a_program_mid_run() {
    let Some((sandbox, cluster)) = stand_in_cluster().await else { return };
    let limits = Limits { wall_time: Duration::from_secs(120), output_bytes: 64 * 1024, ..Limits::default() };
    // It would print forever: only the output limit can end it before its two minutes.
    let outcome =
        run_job(&sandbox, None, ("while :; do echo 0123456789abcdef0123456789abcdef; done", limits), None).await;
    let ran = outcome.run.unwrap();
    assert_eq!(ran.ending, Ending::OutputLimit);
    assert!(ran.stdout_truncated && ran.stdout.len() == 64 * 1024, "{}", ran.stdout.len());
    assert!(ran.wall_time < Duration::from_secs(120));
    assert_nothing_left(&cluster);
}

#[tokio::test]
async fn compile_and_run_keep_deadlines_of_their_own() {
    let Some((sandbox, cluster)) = stand_in_cluster().await else { return };
    let within = |seconds| Limits { wall_time: Duration::from_secs(seconds), ..Limits::default() };
    // Each phase takes 2 s of its own 3 s, 4 s together: no phase is charged the other's time.
    let outcome = run_job(&sandbox, Some(("sleep 2", within(3))), ("sleep 2; echo ran", within(3)), None).await;
    let compiled = outcome.compile.unwrap();
    assert_eq!(compiled.ending, Ending::Exited { code: Some(0), signal: None });
    let ran = outcome.run.unwrap();
    assert_eq!(ran.ending, Ending::Exited { code: Some(0), signal: None }, "{ran:?}");
    assert_eq!(ran.stdout, b"ran\n");
    // A compile past its deadline stops there: the program never runs.
    let outcome = run_job(&sandbox, Some(("sleep 600", within(1))), ("echo never", within(30)), None).await;
    assert_eq!(outcome.compile.unwrap().ending, Ending::TimeLimit);
    assert!(outcome.run.is_none());
    assert_nothing_left(&cluster);
}
