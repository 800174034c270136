//! Where code runs. The `local` backend: bubblewrap namespaces, cgroups (v1 or v2), rlimits,
//! an unprivileged uid, no network, a read-only root, a fresh size-capped /tmp and a per-run
//! work directory that the host never reads back, and a seccomp filter.

pub mod cgroup;
pub mod docker;
pub mod kubernetes;
pub mod local;
pub mod seccomp;

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host cannot run sandboxes (no bwrap, no cgroups, not root): an operator's problem.
    #[error("the sandbox cannot be set up: {0}")]
    Setup(String),
    /// What the user sent cannot be run as given (a bad file name).
    #[error("{0}")]
    Invalid(String),
    #[error("the sandbox failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Which of the program's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a phase's output goes as it is produced, besides the result. It never makes the run
/// wait (a slow client must not hold up its time limit) and holds at most what the output cap
/// lets one run produce: chunks of one stream written back to back are merged into one (up to
/// [`LIVE_CHUNK_BYTES`]), so a program writing a byte at a time costs bytes, not a chunk each.
#[derive(Clone, Default)]
pub struct LiveOutput {
    shared: std::sync::Arc<LiveShared>,
}

impl std::fmt::Debug for LiveOutput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LiveOutput")
    }
}

/// The reading end of a [`LiveOutput`].
pub struct LiveChunks {
    shared: std::sync::Arc<LiveShared>,
}

#[derive(Default)]
struct LiveShared {
    chunks: std::sync::Mutex<std::collections::VecDeque<(Stream, Vec<u8>)>>,
    arrived: tokio::sync::Notify,
}

/// The largest merged chunk of live output.
pub const LIVE_CHUNK_BYTES: usize = 64 * 1024;

impl LiveOutput {
    /// A live output and its reading end.
    pub fn channel() -> (Self, LiveChunks) {
        let shared = std::sync::Arc::new(LiveShared::default());
        (Self { shared: shared.clone() }, LiveChunks { shared })
    }

    /// Passes `bytes` of `stream` on, merged with the chunk before when it is of the same stream.
    pub fn send(&self, (stream, bytes): (Stream, Vec<u8>)) {
        let mut chunks = self.shared.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match chunks.back_mut() {
            Some((last, kept)) if *last == stream && kept.len() + bytes.len() <= LIVE_CHUNK_BYTES => {
                kept.extend_from_slice(&bytes);
            }
            _ => chunks.push_back((stream, bytes)),
        }
        drop(chunks);
        self.shared.arrived.notify_one();
    }
}

impl LiveChunks {
    /// The next chunk, waiting for one. (The output ends with its run: the caller stops reading
    /// when the run's result arrives, and takes what is left with [`Self::try_recv`].)
    pub async fn recv(&mut self) -> Option<(Stream, Vec<u8>)> {
        let shared = self.shared.clone();
        loop {
            let arrived = shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(chunk) = self.try_recv() {
                return Some(chunk);
            }
            arrived.await;
        }
    }

    /// The next chunk, if one is there.
    pub fn try_recv(&mut self) -> Option<(Stream, Vec<u8>)> {
        self.shared.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front()
    }
}

/// The hard limits of one phase (compile or run) of a run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub wall_time: Duration,
    pub memory_bytes: u64,
    /// Processes and threads together.
    pub pids: u64,
    /// CPU time per wall second, in percent of one CPU.
    pub cpu_percent: u32,
    /// Per stream (stdout, stderr); past it the run is killed and marked `output_limit`.
    pub output_bytes: usize,
    /// The largest file the program may write (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// The size of the fresh /tmp, and of the work directory where the backend can cap it.
    pub tmp_bytes: u64,
    pub open_files: u64,
}

impl Default for Limits {
    /// The spec's limits: 30 s wall, 128 MB memory.
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(30),
            memory_bytes: 128 * 1024 * 1024,
            pids: 64,
            cpu_percent: 100,
            output_bytes: 1024 * 1024,
            file_size_bytes: 16 * 1024 * 1024,
            tmp_bytes: 64 * 1024 * 1024,
            open_files: 256,
        }
    }
}

/// How a phase ended, as the kernel and the limits tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The program ended by itself: its exit code, or the signal that killed it.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    TimeLimit,
    MemoryLimit,
    OutputLimit,
}

#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub ending: Ending,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_time: Duration,
    pub peak_memory_bytes: u64,
}

/// A phase's stdout and stderr as they arrive in pieces (from a container's log stream): each
/// kept up to the cap and passed on to the live listener.
#[derive(Debug)]
pub struct CappedOutput {
    cap: usize,
    live: Option<LiveOutput>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl CappedOutput {
    pub fn new(cap: usize, live: Option<&LiveOutput>) -> Self {
        Self {
            cap,
            live: live.cloned(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    /// Keeps what fits; false once a stream went past the cap (the phase is then stopped).
    pub fn push(&mut self, stream: Stream, bytes: &[u8]) -> bool {
        let (kept, truncated) = match stream {
            Stream::Stdout => (&mut self.stdout, &mut self.stdout_truncated),
            Stream::Stderr => (&mut self.stderr, &mut self.stderr_truncated),
        };
        let room = self.cap.saturating_sub(kept.len());
        let keep = bytes.len().min(room);
        if keep > 0 {
            kept.extend_from_slice(&bytes[..keep]);
            if let Some(live) = &self.live {
                live.send((stream, bytes[..keep].to_vec()));
            }
        }
        if bytes.len() > room {
            *truncated = true;
            return false;
        }
        true
    }
}

/// Which backend runs the programs, and how to reach it.
#[derive(Debug, Clone, Default)]
pub enum BackendConfig {
    /// bubblewrap and cgroups on this host; work directories in the runs directory.
    #[default]
    Local,
    Docker(docker::DockerConfig),
    Kubernetes(kubernetes::KubernetesConfig),
}

/// The backend runs go to, behind one interface: a work directory, then phases in it.
pub enum Sandbox {
    Local(local::LocalSandbox),
    Docker {
        sandbox: docker::DockerSandbox,
        runs_dir: std::path::PathBuf,
    },
    /// One Job per run: no work directory on this host, so it never reaches the phase methods.
    Kubernetes(kubernetes::KubernetesSandbox),
}

impl Sandbox {
    /// Sets up the configured backend, or says why this host cannot run it.
    pub async fn connect(backend: &BackendConfig, runs_dir: std::path::PathBuf) -> Result<Self, SandboxError> {
        match backend {
            BackendConfig::Local => Ok(Self::Local(local::LocalSandbox::new(runs_dir)?)),
            BackendConfig::Docker(config) => {
                std::fs::create_dir_all(&runs_dir)?;
                let sandbox = docker::DockerSandbox::connect(config.clone()).await?;
                Ok(Self::Docker { sandbox, runs_dir })
            }
            BackendConfig::Kubernetes(config) => {
                Ok(Self::Kubernetes(kubernetes::KubernetesSandbox::connect(config.clone()).await?))
            }
        }
    }

    /// What confines a run on this backend, for the start-up log.
    pub fn confinement(&self) -> String {
        match self {
            Self::Local(sandbox) => format!(
                "bubblewrap namespaces (no network), uid 65534, read-only /usr, a seccomp filter, rlimits (file \
                 size, open files, no core dumps), cgroups {} (memory, processes, CPU), a size-capped /tmp and \
                 work directory",
                sandbox.cgroup_version()
            ),
            Self::Docker { .. } => "a container per phase: no network, read-only root, every capability dropped, \
                 memory, process and CPU limits"
                .into(),
            Self::Kubernetes(_) => "a Job per run: non-root, read-only root, every capability dropped, \
                 RuntimeDefault seccomp, memory, CPU and storage limits; no traffic by the runs' NetworkPolicy"
                .into(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Docker { .. } => "docker",
            Self::Kubernetes(_) => "kubernetes",
        }
    }

    /// [`Self::prepare`] on the blocking pool: making the directory, mounting its tmpfs and
    /// writing the files are file-system calls that would hold an async worker meanwhile.
    pub async fn prepare_off_workers(
        &self,
        files: Vec<(String, Vec<u8>)>,
        work_bytes: u64,
    ) -> Result<local::RunDirectory, SandboxError> {
        let (runs_dir, tmpfs_bytes) = match self {
            Self::Local(sandbox) => (sandbox.runs_dir().to_path_buf(), Some(work_bytes)),
            Self::Docker { runs_dir, .. } => (runs_dir.clone(), None),
            Self::Kubernetes(_) => {
                return Err(SandboxError::Setup("Kubernetes runs have no work directory here".into()));
            }
        };
        tokio::task::spawn_blocking(move || local::prepare_directory(&runs_dir, &files, tmpfs_bytes))
            .await
            .map_err(|error| SandboxError::Setup(format!("preparing a work directory failed: {error}")))?
    }

    /// A fresh work directory holding `files`; on the local backend it is a tmpfs of `work_bytes`.
    pub fn prepare(&self, files: &[(String, Vec<u8>)], work_bytes: u64) -> Result<local::RunDirectory, SandboxError> {
        match self {
            Self::Local(sandbox) => sandbox.prepare(files, work_bytes),
            Self::Docker { runs_dir, .. } => local::prepare_directory(runs_dir, files, None),
            Self::Kubernetes(_) => Err(SandboxError::Setup("Kubernetes runs have no work directory here".into())),
        }
    }

    /// Runs one phase (`compile` or `run`) of a run in its work directory.
    pub async fn run(
        &self,
        directory: &local::RunDirectory,
        phase: &str,
        command: &[String],
        stdin: &[u8],
        limits: &Limits,
        live: Option<&LiveOutput>,
    ) -> Result<PhaseOutcome, SandboxError> {
        match self {
            Self::Local(sandbox) => sandbox.run(directory, phase, command, stdin, limits, live).await,
            Self::Docker { sandbox, .. } => sandbox.run(directory, phase, command, stdin, limits, live).await,
            Self::Kubernetes(_) => Err(SandboxError::Setup("Kubernetes runs are whole Jobs, not phases".into())),
        }
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;

    #[tokio::test]
    async fn live_output_written_a_byte_at_a_time_is_held_as_a_few_chunks() {
        let (live, mut chunks) = LiveOutput::channel();
        for _ in 0..200_000 {
            live.send((Stream::Stdout, vec![b'x']));
        }
        live.send((Stream::Stderr, b"oops".to_vec()));
        let held = chunks.shared.chunks.lock().unwrap().len();
        assert_eq!(held, 200_000usize.div_ceil(LIVE_CHUNK_BYTES) + 1, "merged, not a chunk per byte");
        let (stream, first) = chunks.recv().await.unwrap();
        assert_eq!((stream, first.len()), (Stream::Stdout, LIVE_CHUNK_BYTES));
        let mut rest = Vec::new();
        while let Some(chunk) = chunks.try_recv() {
            rest.push(chunk);
        }
        assert_eq!(rest.last().unwrap(), &(Stream::Stderr, b"oops".to_vec()), "in order");
    }
}
