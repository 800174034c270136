//! Where code runs. The `local` backend: bubblewrap namespaces, cgroups (v1 or v2), rlimits,
//! an unprivileged uid, no network, a read-only root, a fresh size-capped /tmp and a per-run
//! work directory that the host never reads back, and a seccomp filter.

pub mod cgroup;
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

/// Where a phase's output goes as it is produced, besides the result. Unbounded, because the
/// output cap already bounds what one run can put in it.
pub type LiveOutput = tokio::sync::mpsc::UnboundedSender<(Stream, Vec<u8>)>;

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
    /// The size of the fresh /tmp.
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
