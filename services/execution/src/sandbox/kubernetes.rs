//! The `kubernetes` backend: one Job per run, through the Kubernetes API (`kube`).
//!
//! The program's files and stdin go in a ConfigMap. An init container copies the files into an
//! `emptyDir` work directory and compiles them (when the language compiles); the run container
//! runs the program with the stdin file as its input. Both run as the sandbox uid, non-root,
//! with a read-only root, no capabilities, no privilege escalation, the runtime's default
//! seccomp profile, memory, CPU and storage limits, and no service-account token; the Job has
//! no retries, a deadline, and a time to live. When the run ends its logs are read back and
//! the Job (with its pod) and the ConfigMap are deleted.
//!
//! Kubernetes keeps a container's stdout and stderr in one log, so runs on this backend report
//! both as stdout; the output limit is applied to the log when it is read back, and output
//! arrives when the phase ends rather than live. Peak memory is not reported (it would need the
//! metrics API).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerStatus, EmptyDirVolumeSource, EnvVar,
    KeyToPath, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::{Api, Client};

use super::local::SANDBOX_UID;
use super::{Ending, Limits, LiveOutput, PhaseOutcome, SandboxError, Stream};

/// The label every object of a run carries, for operators (`kubectl get jobs -l ...`).
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "codesync");
/// Finished Jobs the deletion missed (the server went away) are removed by Kubernetes after this.
const TIME_TO_LIVE_SECS: i32 = 300;
/// How often the run's pod is looked at while it runs.
const POLL_EVERY: Duration = Duration::from_millis(250);

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
pub struct JobOutcome {
    pub compile: Option<PhaseOutcome>,
    pub run: Option<PhaseOutcome>,
}

fn api_error(what: &str) -> impl FnOnce(kube::Error) -> SandboxError + '_ {
    move |error| SandboxError::Setup(format!("the Kubernetes API refused to {what}: {error}"))
}

/// Deletes the run's Job (with its pod) and ConfigMap, however the run ends.
struct RunObjects {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    name: String,
}

impl Drop for RunObjects {
    fn drop(&mut self) {
        let (jobs, config_maps, name) = (self.jobs.clone(), self.config_maps.clone(), std::mem::take(&mut self.name));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let background =
                DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
            if let Err(error) = jobs.delete(&name, &background).await {
                tracing::warn!(job = %name, %error, "cannot delete a run's Job; its time to live removes it");
            }
            if let Err(error) = config_maps.delete(&name, &DeleteParams::default()).await {
                tracing::warn!(config_map = %name, %error, "cannot delete a run's ConfigMap");
            }
        });
    }
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
        let deadline = run_limits.wall_time + compile_limits.map_or(Duration::ZERO, |limits| limits.wall_time);
        let file_names: Vec<String> = request.files.iter().map(|(name, _)| name.clone()).collect();
        // sh: copy the files (ConfigMap volumes hold symlinks; -L copies what they point at), then
        // compile; then, in the run container, the program with its stdin.
        let mut prepare = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            r#"while [ "$1" != -- ]; do cp -L "/sources/$1" "/work/$1" || exit 125; shift; done; shift; [ $# -eq 0 ] || exec "$@""#
                .to_string(),
            "sh".to_string(),
        ];
        prepare.extend(file_names);
        prepare.push("--".into());
        if let Some((compile, _)) = &request.compile {
            prepare.extend(compile.iter().cloned());
        }
        let mut run =
            vec!["/bin/sh".to_string(), "-c".to_string(), r#"exec "$@" < /input/stdin"#.to_string(), "sh".to_string()];
        run.extend(run_command.iter().cloned());

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
            init_containers: Some(vec![container("prepare", prepare, &compile_limits.unwrap_or(*run_limits))]),
            containers: vec![container("run", run, run_limits)],
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

    /// Runs one Job to its end and reads back how each phase went.
    pub async fn run(&self, request: JobRequest<'_>, live: Option<&LiveOutput>) -> Result<JobOutcome, SandboxError> {
        let name = format!("codesync-run-{}", codesync_common::new_id().to_ascii_lowercase());
        let (job, config_map) = self.objects(&name, &request);
        let namespace = self.config.namespace.as_str();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        config_maps.create(&PostParams::default(), &config_map).await.map_err(api_error("create a ConfigMap"))?;
        let _objects = RunObjects { jobs: jobs.clone(), config_maps: config_maps.clone(), name: name.clone() };
        jobs.create(&PostParams::default(), &job).await.map_err(api_error("create a Job"))?;
        let started = Instant::now();

        let deadline = job
            .spec
            .as_ref()
            .and_then(|spec| spec.active_deadline_seconds)
            .map_or(Duration::from_secs(60), |seconds| Duration::from_secs(u64::try_from(seconds).unwrap_or(60)));
        // Scheduling and pulling the image come on top of the Job's own deadline.
        let give_up_at = started + deadline + Duration::from_secs(60);
        let selector = ListParams::default().labels(&format!("job-name={name}"));
        let (pod, deadline_exceeded) = loop {
            let job_status = jobs.get(&name).await.map_err(api_error("read a Job"))?.status.unwrap_or_default();
            let deadline_exceeded = job_status.conditions.iter().flatten().any(|condition| {
                condition.type_ == "Failed"
                    && condition.status == "True"
                    && condition.reason.as_deref() == Some("DeadlineExceeded")
            });
            let pod = pods.list(&selector).await.map_err(api_error("list a Job's pods"))?.items.into_iter().next();
            let phase = pod.as_ref().and_then(|pod| pod.status.as_ref()).and_then(|status| status.phase.clone());
            let ended = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
            if ended || deadline_exceeded {
                break (pod, deadline_exceeded);
            }
            if Instant::now() > give_up_at {
                return Err(SandboxError::Setup(format!(
                    "the Job {name} did not finish in {} s",
                    (give_up_at - started).as_secs()
                )));
            }
            tokio::time::sleep(POLL_EVERY).await;
        };
        let pod_name = pod.as_ref().and_then(|pod| pod.metadata.name.clone()).unwrap_or_default();
        let status = pod.and_then(|pod| pod.status).unwrap_or_default();
        let prepare_status =
            status.init_container_statuses.iter().flatten().find(|container| container.name == "prepare").cloned();
        let run_status = status.container_statuses.iter().flatten().find(|container| container.name == "run").cloned();

        let read_logs = |container: &'static str, cap: usize| {
            let pods = pods.clone();
            let pod_name = pod_name.clone();
            async move {
                if pod_name.is_empty() {
                    return (Vec::new(), false);
                }
                let params = LogParams {
                    container: Some(container.into()),
                    limit_bytes: Some(i64::try_from(cap + 1).unwrap_or(i64::MAX)),
                    ..Default::default()
                };
                let text = pods.logs(&pod_name, &params).await.unwrap_or_default().into_bytes();
                let truncated = text.len() > cap;
                (text.into_iter().take(cap).collect::<Vec<u8>>(), truncated)
            }
        };

        let prepare_ending = ending_of(prepare_status.as_ref(), deadline_exceeded);
        let compiled = match &request.compile {
            Some((_, limits)) => {
                let (log, truncated) = read_logs("prepare", limits.output_bytes).await;
                if let Some(live) = live {
                    let _ = live.send((Stream::Stderr, log.clone()));
                }
                Some(PhaseOutcome {
                    ending: if truncated { Ending::OutputLimit } else { prepare_ending.unwrap_or(Ending::TimeLimit) },
                    stdout: Vec::new(),
                    stderr: log,
                    stdout_truncated: false,
                    stderr_truncated: truncated,
                    wall_time: prepare_status.as_ref().and_then(run_time).unwrap_or_else(|| started.elapsed()),
                    peak_memory_bytes: 0,
                })
            }
            None => None,
        };
        let prepared = prepare_ending == Some(Ending::Exited { code: Some(0), signal: None });
        if !prepared {
            if compiled.is_some() {
                return Ok(JobOutcome { compile: compiled, run: None });
            }
            // Copying the files failed: the backend's problem, not the program's.
            return Err(SandboxError::Setup(format!("the Job {name} could not prepare the work directory")));
        }
        let (log, truncated) = read_logs("run", run_limits_output(&request)).await;
        if let Some(live) = live {
            let _ = live.send((Stream::Stdout, log.clone()));
        }
        let ending = if truncated {
            Ending::OutputLimit
        } else {
            ending_of(run_status.as_ref(), deadline_exceeded).unwrap_or(Ending::TimeLimit)
        };
        let run = PhaseOutcome {
            ending,
            stdout: log,
            stderr: Vec::new(),
            stdout_truncated: truncated,
            stderr_truncated: false,
            wall_time: run_status.as_ref().and_then(run_time).unwrap_or_else(|| started.elapsed()),
            peak_memory_bytes: 0,
        };
        Ok(JobOutcome { compile: compiled, run: Some(run) })
    }
}

fn run_limits_output(request: &JobRequest<'_>) -> usize {
    request.run.1.output_bytes
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
/// deadline is the time limit, anything else the program's own exit.
fn ending_of(status: Option<&ContainerStatus>, deadline_exceeded: bool) -> Option<Ending> {
    let terminated = status.and_then(|status| status.state.as_ref()).and_then(|state| state.terminated.as_ref());
    let Some(terminated) = terminated else {
        return deadline_exceeded.then_some(Ending::TimeLimit);
    };
    if terminated.reason.as_deref() == Some("OOMKilled") {
        return Some(Ending::MemoryLimit);
    }
    if deadline_exceeded && terminated.exit_code != 0 {
        return Some(Ending::TimeLimit);
    }
    Some(Ending::Exited { code: Some(terminated.exit_code), signal: None })
}

/// A container's running time from its terminated state (the API gives whole seconds).
fn run_time(status: &ContainerStatus) -> Option<Duration> {
    let terminated = status.state.as_ref()?.terminated.as_ref()?;
    let (started, finished) = (terminated.started_at.as_ref()?, terminated.finished_at.as_ref()?);
    let milliseconds = finished.0.as_millisecond() - started.0.as_millisecond();
    Some(Duration::from_millis(u64::try_from(milliseconds).unwrap_or(0)))
}
