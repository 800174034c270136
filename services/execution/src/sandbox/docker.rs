//! The `docker` backend: each phase in a fresh container, through the Docker Engine API
//! (`bollard`; podman's compatible API works too): no network, every capability dropped,
//! no new privileges, a read-only root, memory (without swap), pids and CPU limits, a size-capped
//! /tmp, the run's work directory bound at /work, the sandbox uid, explicit removal.
//!
//! The work directory is a directory of this host bound into the container, so the engine must
//! see this host's filesystem (the usual case: the engine's socket on the same machine).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, StatsOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::local::{RunDirectory, SANDBOX_UID};
use super::{CappedOutput, Ending, Limits, LiveOutput, PhaseOutcome, SandboxError, Stream};

/// How to reach the engine and what the containers are made of.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The engine's Unix socket (`unix:///var/run/docker.sock`, or podman's).
    pub socket: String,
    /// The image the runs start from; it must hold the runtimes at the paths `languages.toml` names.
    pub image: String,
    /// The OCI runtime to ask for (`runc`), or the engine's default.
    pub runtime: Option<String>,
    /// Host paths bound read-only at the same place (`/usr` to lend the host's runtimes to an
    /// image that is only a skeleton, as the tests do).
    pub read_only_binds: Vec<String>,
}

pub struct DockerSandbox {
    docker: Docker,
    config: DockerConfig,
}

/// Removes the container when the phase ends, however it ends (also when the run is abandoned).
struct ContainerGuard {
    docker: Docker,
    name: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let (docker, name) = (self.docker.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                if let Err(error) = docker.remove_container(&name, Some(options)).await {
                    tracing::warn!(container = %name, %error, "cannot remove a run's container");
                }
            });
        }
    }
}

fn engine(what: &str) -> impl FnOnce(bollard::errors::Error) -> SandboxError + '_ {
    move |error| SandboxError::Setup(format!("the container engine failed to {what}: {error}"))
}

impl DockerSandbox {
    /// Connects to the engine and checks that it answers and has the image.
    pub async fn connect(config: DockerConfig) -> Result<Self, SandboxError> {
        let docker = Docker::connect_with_unix(&config.socket, 60, bollard::API_DEFAULT_VERSION)
            .map_err(engine("connect"))?
            // Older engines (podman's compatible API) speak older versions; newer ones refuse old ones.
            .negotiate_version()
            .await
            .map_err(engine("say which API version it speaks"))?;
        docker.inspect_image(&config.image).await.map_err(|error| {
            SandboxError::Setup(format!("the container image {} is not available: {error}", config.image))
        })?;
        Ok(Self { docker, config })
    }

    /// Runs `command` in a new container over `directory`, with `stdin`, under `limits`.
    pub async fn run(
        &self,
        directory: &RunDirectory,
        phase: &str,
        command: &[String],
        stdin: &[u8],
        limits: &Limits,
        live: Option<&LiveOutput>,
    ) -> Result<PhaseOutcome, SandboxError> {
        let name = format!("codesync-{}-{phase}", directory.name());
        let mut binds = vec![format!("{}:/work:rw", directory.path().display())];
        binds.extend(self.config.read_only_binds.iter().map(|path| format!("{path}:{path}:ro")));
        let ulimit = |name: &str, value: u64| ResourcesUlimits {
            name: Some(name.to_string()),
            soft: Some(i64::try_from(value).unwrap_or(i64::MAX)),
            hard: Some(i64::try_from(value).unwrap_or(i64::MAX)),
        };
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            network_mode: Some("none".into()),
            binds: Some(binds),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(memory),
            // Equal to the memory limit: no swap on top.
            memory_swap: Some(memory),
            pids_limit: Some(i64::try_from(limits.pids).unwrap_or(i64::MAX)),
            nano_cpus: Some(i64::from(limits.cpu_percent) * 10_000_000),
            tmpfs: Some(HashMap::from([("/tmp".to_string(), format!("rw,nosuid,nodev,size={}", limits.tmp_bytes))])),
            ulimits: Some(vec![
                ulimit("fsize", limits.file_size_bytes),
                ulimit("nofile", limits.open_files),
                ulimit("core", 0),
                // Per uid on the host, so generous: the pids limit is what holds a fork bomb.
                ulimit("nproc", 4096),
            ]),
            runtime: self.config.runtime.clone(),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(self.config.image.clone()),
            cmd: Some(command.to_vec()),
            user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
            working_dir: Some("/work".into()),
            env: Some(vec![
                "PATH=/usr/bin:/bin".into(),
                "HOME=/work".into(),
                "LANG=C.UTF-8".into(),
                "TMPDIR=/tmp".into(),
            ]),
            network_disabled: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(options), body).await.map_err(engine("create a container"))?;
        let _guard = ContainerGuard { docker: self.docker.clone(), name: name.clone() };

        let attach =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        let attached =
            self.docker.attach_container(&name, Some(attach)).await.map_err(engine("attach to a container"))?;
        let started = Instant::now();
        self.docker.start_container(&name, None).await.map_err(engine("start a container"))?;

        let mut input = attached.input;
        let stdin = stdin.to_vec();
        // A program that never reads its input must not block the run: write in the background,
        // then close its stdin.
        let feeding = tokio::spawn(async move {
            let _ = input.write_all(&stdin).await;
            let _ = input.shutdown().await;
        });
        let peak_memory = tokio::spawn(watch_memory(self.docker.clone(), name.clone()));

        let mut output = CappedOutput::new(limits.output_bytes, live);
        let mut messages = attached.output;
        let deadline = tokio::time::sleep(limits.wall_time);
        tokio::pin!(deadline);
        let stopped_at_a_limit = loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        if !output.push(Stream::Stdout, &message) {
                            break Some(Ending::OutputLimit);
                        }
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if !output.push(Stream::Stderr, &message) {
                            break Some(Ending::OutputLimit);
                        }
                    }
                    Some(Ok(_)) => {}
                    // The program closed its output (it ended, or will soon).
                    Some(Err(_)) | None => break None,
                },
                () = &mut deadline => break Some(Ending::TimeLimit),
            }
        };
        // Hang up on the output first: an engine relaying into a connection nobody reads would
        // block, and not even a kill gets through (podman's conmon does exactly that).
        drop(messages);
        if stopped_at_a_limit.is_some() {
            let kill = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            let _ = self.docker.kill_container(&name, Some(kill)).await;
        }
        let remaining = limits.wall_time.saturating_sub(started.elapsed()) + Duration::from_secs(2);
        let waited = tokio::time::timeout(remaining, self.docker.wait_container(&name, None).next()).await;
        let wall_time = started.elapsed();
        feeding.abort();
        let exit_code = match waited {
            // bollard reports a non-zero exit as an error carrying the code.
            Ok(Some(Ok(response))) => Some(response.status_code),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => Some(code),
            Ok(Some(Err(error))) => return Err(engine("wait for a container")(error)),
            Ok(None) => None,
            Err(_) => {
                let kill = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
                let _ = self.docker.kill_container(&name, Some(kill)).await;
                peak_memory.abort();
                return Ok(outcome(stopped_at_a_limit.unwrap_or(Ending::TimeLimit), output, wall_time, 0));
            }
        };
        let inspected = self.docker.inspect_container(&name, None).await.map_err(engine("inspect a container"))?;
        let oom_killed = inspected.state.as_ref().and_then(|state| state.oom_killed).unwrap_or(false);
        // The statistics stream ends with the container; a last sample may also be had after.
        let watched = tokio::time::timeout(Duration::from_millis(500), peak_memory).await;
        let peak = watched.ok().and_then(Result::ok).unwrap_or(0).max(peak_memory_seen(&self.docker, &name).await);
        let ending = match (stopped_at_a_limit, exit_code) {
            (Some(limit), _) => limit,
            (None, _) if oom_killed => Ending::MemoryLimit,
            // Killed by the kernel for memory. Some engines never set OOMKilled (podman), and the
            // sampled peak misses the last allocations: a SIGKILL nobody here sent counts as the
            // memory limit (a program that kills itself with SIGKILL is reported so too).
            (None, Some(137)) => Ending::MemoryLimit,
            (None, code) => Ending::Exited { code: code.and_then(|code| i32::try_from(code).ok()), signal: None },
        };
        Ok(outcome(ending, output, wall_time, peak))
    }
}

fn outcome(ending: Ending, output: CappedOutput, wall_time: Duration, peak_memory_bytes: u64) -> PhaseOutcome {
    PhaseOutcome {
        ending,
        stdout: output.stdout,
        stderr: output.stderr,
        stdout_truncated: output.stdout_truncated,
        stderr_truncated: output.stderr_truncated,
        wall_time,
        peak_memory_bytes,
    }
}

/// The engine's memory statistics while the container runs (the largest usage seen); engines
/// sample about once a second, so a short run may show only its start.
async fn watch_memory(docker: Docker, name: String) -> u64 {
    let mut peak = 0;
    let options = StatsOptionsBuilder::default().stream(true).build();
    let mut stats = docker.stats(&name, Some(options));
    while let Some(Ok(sample)) = stats.next().await {
        let memory = sample.memory_stats.as_ref();
        let used = memory.and_then(|memory| memory.max_usage.or(memory.usage)).unwrap_or(0);
        peak = peak.max(used);
    }
    peak
}

/// One last look at the container's memory statistics after it ended (v1 cgroups keep the peak).
async fn peak_memory_seen(docker: &Docker, name: &str) -> u64 {
    let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
    let sample = tokio::time::timeout(Duration::from_secs(1), docker.stats(name, Some(options)).next()).await;
    match sample {
        Ok(Some(Ok(sample))) => {
            let memory = sample.memory_stats.as_ref();
            memory.and_then(|memory| memory.max_usage.or(memory.usage)).unwrap_or(0)
        }
        _ => 0,
    }
}
