//! The `kubernetes` backend: one Job per run, through the Kubernetes API (`kube`).
//!
//! The program's files and stdin go in a ConfigMap. The Job's pod has three containers, all from
//! the runner image:
//! - `prepare` (init) copies the files into an `emptyDir` work directory, makes the FIFO the
//!   program's stderr goes through, and compiles when the language compiles;
//! - `run` runs the program with the stdin file as its input, stdout to its own log and stderr
//!   into the FIFO;
//! - `stderr` copies the FIFO to its own log.
//!
//! Kubernetes keeps a container's stdout and stderr in one log, and the log API cannot tell them
//! apart; the FIFO is how the program's two streams reach the service apart, as two logs. (A
//! compiler's output stays one stream, reported as stderr.)
//!
//! The service follows the logs while the containers run, so output reaches the caller live. It
//! keeps each phase's deadline itself, compile and run apart, from the moment the phase's
//! container starts, and stops a phase at its time or output limit by deleting the pod at once;
//! the Job's `activeDeadlineSeconds` is only a backstop over both phases, scheduling and the image
//! pull. The memory limit is the container's: `OOMKilled` in its termination. Every container
//! runs as the sandbox uid, non-root, with a read-only root, no capabilities, no privilege
//! escalation, the runtime's default seccomp profile, memory, CPU and storage limits, and no
//! service-account token. The Job, its pod and the ConfigMap are deleted when the run ends,
//! however it ends; a Job that a crash left behind is removed by its time to live. Peak memory is
//! not reported (it would need the metrics API).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::AsyncReadExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerState, ContainerStateTerminated,
    ContainerStatus, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod, PodSecurityContext, PodSpec, PodStatus,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::local::SANDBOX_UID;
use super::{CappedOutput, Ending, Limits, LiveOutput, PhaseOutcome, SandboxError, Stream};

/// The label every object of a run carries, for operators (`kubectl get jobs -l ...`).
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "codesync");
/// Finished Jobs the deletion missed (the server went away) are removed by Kubernetes after this.
const TIME_TO_LIVE_SECS: i32 = 300;
/// How often the run's pod is looked at while the service waits for a container.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Scheduling the pod and pulling the image, before a container starts: not the program's time.
const START_ALLOWANCE: Duration = Duration::from_secs(60);
/// How long a container's end may take to show in the pod's status once its log has ended.
const STATUS_ALLOWANCE: Duration = Duration::from_secs(10);
/// Copying the files, for a language that does not compile.
const PREPARE_TIME: Duration = Duration::from_secs(20);
/// The FIFO between the program's stderr and the `stderr` container.
const STDERR_FIFO: &str = "/streams/stderr";

#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The API server (`https://...`), or `None` for the in-cluster service account or kubeconfig.
    pub api_url: Option<String>,
    pub namespace: String,
    /// The image runs start from; it must hold the runtimes at the paths `languages.toml` names.
    pub image: String,
}

pub struct KubernetesSandbox {
    client: Client,
    config: KubernetesConfig,
}

/// What one Job runs.
pub struct JobRequest<'a> {
    pub files: &'a [(String, Vec<u8>)],
    pub stdin: &'a [u8],
    /// The compile command and its limits, when the language compiles.
    pub compile: Option<(Vec<String>, Limits)>,
    pub run: (Vec<String>, Limits),
}

/// How the Job went: the compile phase (if any) and the run phase (if it got that far).
#[derive(Debug)]
pub struct JobOutcome {
    pub compile: Option<PhaseOutcome>,
    pub run: Option<PhaseOutcome>,
}

fn api_error(what: &str) -> impl FnOnce(kube::Error) -> SandboxError + '_ {
    move |error| SandboxError::Setup(format!("the Kubernetes API refused to {what}: {error}"))
}

/// A run's Job (with its pod) and ConfigMap, deleted when the run ends: awaited on the way out,
/// or in the background if the run is dropped half-way (its caller went away).
struct RunObjects {
    jobs: Api<Job>,
    pods: Api<Pod>,
    config_maps: Api<ConfigMap>,
    name: String,
    pod: Option<String>,
    deleted: bool,
}

impl RunObjects {
    async fn delete(jobs: Api<Job>, pods: Api<Pod>, config_maps: Api<ConfigMap>, name: String, pod: Option<String>) {
        let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        if let Err(error) = jobs.delete(&name, &background).await {
            tracing::warn!(job = %name, %error, "cannot delete a run's Job; its time to live removes it");
        }
        // The Job's deletion removes its pod in the background; the pod goes now, without the
        // grace period a program has no use for.
        if let Some(pod) = pod
            && let Err(error) =
                pods.delete(&pod, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await
            && !is_not_found(&error)
        {
            tracing::warn!(%pod, %error, "cannot delete a run's pod; the Job's deletion removes it");
        }
        if let Err(error) = config_maps.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(config_map = %name, %error, "cannot delete a run's ConfigMap");
        }
    }

    async fn delete_now(mut self) {
        self.deleted = true;
        let pod = self.pod.take();
        Self::delete(self.jobs.clone(), self.pods.clone(), self.config_maps.clone(), self.name.clone(), pod).await;
    }
}

impl Drop for RunObjects {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (jobs, pods, config_maps) = (self.jobs.clone(), self.pods.clone(), self.config_maps.clone());
        runtime.spawn(Self::delete(jobs, pods, config_maps, std::mem::take(&mut self.name), self.pod.take()));
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl KubernetesSandbox {
    pub async fn connect(config: KubernetesConfig) -> Result<Self, SandboxError> {
        let client_config = match &config.api_url {
            Some(url) => {
                let url = url.parse().map_err(|error| {
                    SandboxError::Setup(format!("the Kubernetes API URL {url:?} is not valid: {error}"))
                })?;
                kube::Config::new(url)
            }
            None => kube::Config::infer()
                .await
                .map_err(|error| SandboxError::Setup(format!("no Kubernetes API to talk to: {error}")))?,
        };
        let client = Client::try_from(client_config)
            .map_err(|error| SandboxError::Setup(format!("cannot make a Kubernetes client: {error}")))?;
        Ok(Self { client, config })
    }

    /// The Job and ConfigMap of one run, named `name` (as sent to the API).
    pub fn objects(&self, name: &str, request: &JobRequest<'_>) -> (Job, ConfigMap) {
        let labels = BTreeMap::from([
            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            ("codesync.dev/run".to_string(), name.to_string()),
        ]);
        let metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.config.namespace.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        // ConfigMap keys allow only [-._a-zA-Z0-9]: files get numbered keys and their names as paths.
        let mut data = BTreeMap::new();
        let mut items = Vec::new();
        for (index, (file_name, content)) in request.files.iter().enumerate() {
            let key = format!("file-{index}");
            data.insert(key.clone(), String::from_utf8_lossy(content).into_owned());
            items.push(KeyToPath { key, path: file_name.clone(), mode: None });
        }
        data.insert("stdin".into(), String::from_utf8_lossy(request.stdin).into_owned());
        let config_map = ConfigMap { metadata: metadata.clone(), data: Some(data), ..Default::default() };

        let (run_command, run_limits) = &request.run;
        let compile_limits = request.compile.as_ref().map(|(_, limits)| *limits);
        // The service keeps each phase's deadline; this backstop stops a Job the service lost.
        let deadline =
            START_ALLOWANCE * 2 + run_limits.wall_time + compile_limits.map_or(PREPARE_TIME, |limits| limits.wall_time);
        let file_names: Vec<String> = request.files.iter().map(|(name, _)| name.clone()).collect();
        // sh: make the stderr FIFO, copy the files (ConfigMap volumes hold symlinks; -L copies what
        // they point at), then compile; then, in the run container, the program with its stdin and
        // its stderr into the FIFO, which the stderr container copies to its log.
        let mut prepare = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                r#"mkfifo -m 600 {STDERR_FIFO} || exit 125; while [ "$1" != -- ]; do mkdir -p "/work/$(dirname "$1")" && cp -L "/sources/$1" "/work/$1" || exit 125; shift; done; shift; [ $# -eq 0 ] || exec "$@""#
            ),
            "sh".to_string(),
        ];
        prepare.extend(file_names);
        prepare.push("--".into());
        if let Some((compile, _)) = &request.compile {
            prepare.extend(compile.iter().cloned());
        }
        let mut run = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(r#"exec "$@" < /input/stdin 2> {STDERR_FIFO}"#),
            "sh".to_string(),
        ];
        run.extend(run_command.iter().cloned());
        let copy_stderr = vec!["/bin/cat".to_string(), STDERR_FIFO.to_string()];
        // The copier needs little, whatever the program's limits.
        let copier_limits = Limits {
            memory_bytes: 32 << 20,
            cpu_percent: 20,
            file_size_bytes: 1 << 20,
            tmp_bytes: 1 << 20,
            ..*run_limits
        };

        let container = |name: &str, command: Vec<String>, limits: &Limits| Container {
            name: name.into(),
            image: Some(self.config.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(command),
            working_dir: Some("/work".into()),
            env: Some(
                [("PATH", "/usr/bin:/bin"), ("HOME", "/work"), ("LANG", "C.UTF-8"), ("TMPDIR", "/tmp")]
                    .iter()
                    .map(|(name, value)| EnvVar {
                        name: name.to_string(),
                        value: Some(value.to_string()),
                        value_from: None,
                    })
                    .collect(),
            ),
            resources: Some(resources(limits)),
            security_context: Some(SecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(i64::from(SANDBOX_UID)),
                run_as_group: Some(i64::from(SANDBOX_UID)),
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                privileged: Some(false),
                capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
                ..Default::default()
            }),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "sources".into(),
                    mount_path: "/sources".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "input".into(),
                    mount_path: "/input".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount { name: "work".into(), mount_path: "/work".into(), ..Default::default() },
                VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
                VolumeMount { name: "streams".into(), mount_path: "/streams".into(), ..Default::default() },
            ]),
            ..Default::default()
        };
        let config_map_volume = |volume: &str, items: Vec<KeyToPath>| Volume {
            name: volume.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.into(),
                items: Some(items),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Default::default()
        };
        let pod = PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(i64::from(SANDBOX_UID)),
                run_as_group: Some(i64::from(SANDBOX_UID)),
                fs_group: Some(i64::from(SANDBOX_UID)),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
                ..Default::default()
            }),
            // A program has no use for a graceful stop; a stopped pod goes at once.
            termination_grace_period_seconds: Some(1),
            init_containers: Some(vec![container("prepare", prepare, &compile_limits.unwrap_or(*run_limits))]),
            containers: vec![container("run", run, run_limits), container("stderr", copy_stderr, &copier_limits)],
            volumes: Some(vec![
                config_map_volume("sources", items),
                config_map_volume("input", vec![KeyToPath { key: "stdin".into(), path: "stdin".into(), mode: None }]),
                Volume {
                    name: "work".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: None,
                        size_limit: Some(Quantity(run_limits.file_size_bytes.max(64 << 20).to_string())),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        size_limit: Some(Quantity(run_limits.tmp_bytes.to_string())),
                    }),
                    ..Default::default()
                },
                // Holds only the FIFO.
                Volume {
                    name: "streams".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        size_limit: Some(Quantity("64Ki".into())),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let job = Job {
            metadata,
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                active_deadline_seconds: Some(i64::try_from(deadline.as_secs().max(1)).unwrap_or(i64::MAX)),
                ttl_seconds_after_finished: Some(TIME_TO_LIVE_SECS),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: Some(pod),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        (job, config_map)
    }

    /// Runs one Job to its end, following each phase as it runs, and deletes its objects.
    pub async fn run(&self, request: JobRequest<'_>, live: Option<&LiveOutput>) -> Result<JobOutcome, SandboxError> {
        let name = format!("codesync-run-{}", codesync_common::new_id().to_ascii_lowercase());
        let (job, config_map) = self.objects(&name, &request);
        let namespace = self.config.namespace.as_str();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        config_maps.create(&PostParams::default(), &config_map).await.map_err(api_error("create a ConfigMap"))?;
        let mut objects = RunObjects {
            jobs: jobs.clone(),
            pods: pods.clone(),
            config_maps,
            name: name.clone(),
            pod: None,
            deleted: false,
        };
        jobs.create(&PostParams::default(), &job).await.map_err(api_error("create a Job"))?;
        let run = RunPod { jobs, pods, selector: ListParams::default().labels(&format!("job-name={name}")), name };
        let outcome = run.follow(&request, live, &mut objects.pod).await;
        objects.delete_now().await;
        outcome
    }
}

/// One run's Job and pod, as the service follows them.
struct RunPod {
    jobs: Api<Job>,
    pods: Api<Pod>,
    selector: ListParams,
    name: String,
}

/// A phase that went well.
const EXITED_CLEANLY: Ending = Ending::Exited { code: Some(0), signal: None };

impl RunPod {
    /// The compile phase (with the copying of the files), then the run phase.
    async fn follow(
        &self,
        request: &JobRequest<'_>,
        live: Option<&LiveOutput>,
        pod_name: &mut Option<String>,
    ) -> Result<JobOutcome, SandboxError> {
        let pod = self.wait_for_start("prepare").await?;
        *pod_name = Some(pod.clone());
        let prepare_limits = match &request.compile {
            Some((_, limits)) => *limits,
            None => Limits { wall_time: PREPARE_TIME, ..request.run.1 },
        };
        let prepared = self.phase(&pod, &[("prepare", Stream::Stderr)], "prepare", &prepare_limits, live).await?;
        if prepared.ending != EXITED_CLEANLY {
            if request.compile.is_some() {
                return Ok(JobOutcome { compile: Some(prepared), run: None });
            }
            // Copying the files failed: the backend's problem, not the program's.
            return Err(SandboxError::Setup(format!(
                "the Job {} could not prepare the work directory ({:?}): {}",
                self.name,
                prepared.ending,
                String::from_utf8_lossy(&prepared.stderr).trim()
            )));
        }
        let compile = request.compile.is_some().then_some(prepared);
        let pod = self.wait_for_start("run").await?;
        let ran = self
            .phase(&pod, &[("run", Stream::Stdout), ("stderr", Stream::Stderr)], "run", &request.run.1, live)
            .await?;
        Ok(JobOutcome { compile, run: Some(ran) })
    }

    async fn pod(&self) -> Result<Option<Pod>, SandboxError> {
        Ok(self.pods.list(&self.selector).await.map_err(api_error("list a Job's pods"))?.items.into_iter().next())
    }

    /// Whether Kubernetes stopped the Job at its backstop deadline.
    async fn deadline_exceeded(&self) -> Result<bool, SandboxError> {
        let job = match self.jobs.get(&self.name).await {
            Ok(job) => job,
            Err(error) if is_not_found(&error) => return Ok(false),
            Err(error) => return Err(api_error("read a Job")(error)),
        };
        Ok(job.status.unwrap_or_default().conditions.iter().flatten().any(|condition| {
            condition.type_ == "Failed"
                && condition.status == "True"
                && condition.reason.as_deref() == Some("DeadlineExceeded")
        }))
    }

    /// Waits until `container` has started (or already ended) and answers its pod's name; says
    /// why it did not start (an image that cannot be pulled, no node) if it does not in time.
    async fn wait_for_start(&self, container: &str) -> Result<String, SandboxError> {
        let give_up_at = Instant::now() + START_ALLOWANCE;
        let mut waiting = String::from("the pod is not scheduled yet");
        loop {
            if let Some(pod) = self.pod().await? {
                let status = pod.status.unwrap_or_default();
                let state = container_state(&status, container);
                if state.is_some_and(|state| state.running.is_some() || state.terminated.is_some()) {
                    return Ok(pod.metadata.name.unwrap_or_default());
                }
                if let Some(reason) = state.and_then(|state| state.waiting.as_ref()) {
                    waiting = format!(
                        "{container} is waiting: {} {}",
                        reason.reason.as_deref().unwrap_or_default(),
                        reason.message.as_deref().unwrap_or_default()
                    );
                }
                if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
                    return Err(SandboxError::Setup(format!(
                        "the pod of Job {} ended before {container} started ({waiting})",
                        self.name
                    )));
                }
            }
            if Instant::now() > give_up_at {
                return Err(SandboxError::Setup(format!(
                    "the Job {} did not start {container} in {} s: {}",
                    self.name,
                    START_ALLOWANCE.as_secs(),
                    waiting.trim()
                )));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Follows the logs of one phase's containers from its start to its end or a limit; `main`
    /// is the container whose end is the phase's end.
    async fn phase(
        &self,
        pod: &str,
        logs: &[(&'static str, Stream)],
        main: &str,
        limits: &Limits,
        live: Option<&LiveOutput>,
    ) -> Result<PhaseOutcome, SandboxError> {
        let started = Instant::now();
        let deadline = started + limits.wall_time;
        let mut output = CappedOutput::new(limits.output_bytes, live);
        let (sender, mut chunks) = mpsc::channel(16);
        let mut followers = tokio::task::JoinSet::new();
        for (container, stream) in logs {
            followers.spawn(follow_log(
                self.pods.clone(),
                pod.to_string(),
                container,
                *stream,
                limits.output_bytes,
                deadline,
                sender.clone(),
            ));
        }
        drop(sender);
        let stopped = loop {
            tokio::select! {
                chunk = chunks.recv() => match chunk {
                    Some((stream, bytes)) => if !output.push(stream, &bytes) {
                        break Some(Ending::OutputLimit);
                    },
                    None => break None,
                },
                () = tokio::time::sleep_until(deadline.into()) => break Some(Ending::TimeLimit),
            }
        };
        followers.abort_all();
        let ending = match stopped {
            Some(ending) => {
                self.stop(pod).await;
                ending
            }
            // The logs end with the containers; their ends show in the pod's status soon after.
            None => self.wait_for_end(pod, main, deadline.max(Instant::now() + STATUS_ALLOWANCE)).await?,
        };
        Ok(PhaseOutcome {
            ending,
            stdout: output.stdout,
            stderr: output.stderr,
            stdout_truncated: output.stdout_truncated,
            stderr_truncated: output.stderr_truncated,
            wall_time: started.elapsed(),
            peak_memory_bytes: 0,
        })
    }

    async fn wait_for_end(&self, pod: &str, container: &str, give_up_at: Instant) -> Result<Ending, SandboxError> {
        loop {
            let Some(found) = self.pod().await? else {
                if self.deadline_exceeded().await? {
                    return Ok(Ending::TimeLimit);
                }
                return Err(SandboxError::Setup(format!("the pod of Job {} was deleted while it ran", self.name)));
            };
            let status = found.status.unwrap_or_default();
            if let Some(terminated) = container_state(&status, container).and_then(|state| state.terminated.as_ref()) {
                return Ok(ending_of(terminated, self.deadline_exceeded().await?));
            }
            if Instant::now() > give_up_at {
                self.stop(pod).await;
                return Ok(Ending::TimeLimit);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Kills the pod's containers now (a limit was reached).
    async fn stop(&self, pod: &str) {
        let now = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        if let Err(error) = self.pods.delete(pod, &now).await
            && !is_not_found(&error)
        {
            tracing::warn!(%pod, %error, "cannot stop a run's pod; the Job's deadline stops it");
        }
    }
}

/// Passes a container's log on as it is written, from the container's start to its end; at most
/// one byte past the cap is read, which tells the output limit.
async fn follow_log(
    pods: Api<Pod>,
    pod: String,
    container: &'static str,
    stream: Stream,
    cap: usize,
    until: Instant,
    chunks: mpsc::Sender<(Stream, Vec<u8>)>,
) {
    let params = LogParams {
        container: Some(container.into()),
        follow: true,
        limit_bytes: Some(i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    // A container that has not started yet has no log to follow (400): ask again until it has.
    let mut log = loop {
        match pods.log_stream(&pod, &params).await {
            Ok(log) => break log,
            Err(kube::Error::Api(status)) if status.code == 400 && Instant::now() < until => {
                tokio::time::sleep(POLL_EVERY).await;
            }
            Err(error) => {
                tracing::warn!(%pod, container, %error, "cannot follow a run's log");
                return;
            }
        }
    };
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match log.read(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => {
                if chunks.send((stream, buffer[..read].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%pod, container, %error, "a run's log stream broke off");
                return;
            }
        }
    }
}

fn container_state<'a>(status: &'a PodStatus, name: &str) -> Option<&'a ContainerState> {
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    statuses
        .filter(|container: &&ContainerStatus| container.name == name)
        .find_map(|container| container.state.as_ref())
}

fn resources(limits: &Limits) -> ResourceRequirements {
    let cpu = format!("{}m", u64::from(limits.cpu_percent) * 10);
    let memory = limits.memory_bytes.to_string();
    ResourceRequirements {
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu)),
            ("memory".to_string(), Quantity(memory.clone())),
            ("ephemeral-storage".to_string(), Quantity((limits.file_size_bytes + limits.tmp_bytes).to_string())),
        ])),
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity(memory)),
        ])),
        ..Default::default()
    }
}

/// How a container ended, from its terminated state: OOMKilled is the memory limit, the Job's
/// backstop deadline the time limit, anything else the program's own exit.
fn ending_of(terminated: &ContainerStateTerminated, deadline_exceeded: bool) -> Ending {
    if terminated.reason.as_deref() == Some("OOMKilled") {
        return Ending::MemoryLimit;
    }
    if deadline_exceeded && terminated.exit_code != 0 {
        return Ending::TimeLimit;
    }
    Ending::Exited { code: Some(terminated.exit_code), signal: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminated(exit_code: i32, reason: &str) -> ContainerStateTerminated {
        ContainerStateTerminated { exit_code, reason: Some(reason.into()), ..Default::default() }
    }

    #[test]
    fn a_containers_end_tells_the_memory_limit_and_the_backstop_deadline_from_an_exit() {
        assert_eq!(ending_of(&terminated(137, "OOMKilled"), false), Ending::MemoryLimit);
        assert_eq!(ending_of(&terminated(137, "Error"), true), Ending::TimeLimit);
        assert_eq!(ending_of(&terminated(0, "Completed"), true), EXITED_CLEANLY);
        assert_eq!(ending_of(&terminated(3, "Error"), false), Ending::Exited { code: Some(3), signal: None });
    }
}
