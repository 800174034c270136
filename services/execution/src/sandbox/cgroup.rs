//! One control group per run phase, on cgroup v1 (memory, pids and cpu hierarchies) or v2 (the
//! unified tree): the limits the kernel enforces on every process of the run, the peak memory it
//! used, whether it was killed for memory, and a way to kill every process it still has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SandboxError;

/// The directory under each hierarchy that holds the runs' groups.
const PARENT: &str = "codesync";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Separate hierarchies per controller at `/sys/fs/cgroup/<controller>` (what this machine has).
    V1 { root: PathBuf },
    /// One tree at `/sys/fs/cgroup` with `cgroup.controllers` at its top.
    V2 { root: PathBuf },
}

impl Layout {
    /// The layout of this host, if its cgroups can hold our limits.
    pub fn detect() -> Result<Self, SandboxError> {
        let root = PathBuf::from("/sys/fs/cgroup");
        if root.join("cgroup.controllers").is_file() {
            return Ok(Self::V2 { root });
        }
        if ["memory", "pids", "cpu"].iter().all(|controller| root.join(controller).join("cgroup.procs").is_file()) {
            return Ok(Self::V1 { root });
        }
        Err(SandboxError::Setup("no usable cgroups: neither a v2 tree nor v1 memory, pids and cpu hierarchies".into()))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU time per wall second, in percent of one CPU.
    pub cpu_percent: u32,
}

/// The group of one run phase; removed on drop (after its processes are killed).
#[derive(Debug)]
pub struct RunGroup {
    layout: Layout,
    /// The group's directory in each hierarchy it lives in (one on v2, three on v1).
    directories: Vec<PathBuf>,
}

impl RunGroup {
    pub fn create(layout: &Layout, name: &str, limits: CgroupLimits) -> Result<Self, SandboxError> {
        let directories: Vec<PathBuf> = match layout {
            Layout::V1 { root } => ["memory", "pids", "cpu"]
                .iter()
                .map(|controller| root.join(controller).join(PARENT).join(name))
                .collect(),
            Layout::V2 { root } => vec![root.join(PARENT).join(name)],
        };
        if let Layout::V2 { root } = layout {
            let parent = root.join(PARENT);
            std::fs::create_dir_all(&parent).map_err(|error| setup("create the cgroup parent", &parent, error))?;
            // The parent hands the controllers down to the runs' groups.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
            std::fs::write(parent.join("cgroup.subtree_control"), "+memory +pids +cpu")
                .map_err(|error| setup("enable controllers", &parent, error))?;
        }
        for directory in &directories {
            std::fs::create_dir_all(directory).map_err(|error| setup("create a cgroup", directory, error))?;
        }
        let group = Self { layout: layout.clone(), directories };
        group.apply(limits)?;
        Ok(group)
    }

    fn apply(&self, limits: CgroupLimits) -> Result<(), SandboxError> {
        let period: u64 = 100_000;
        let quota = period * u64::from(limits.cpu_percent.max(1)) / 100;
        match &self.layout {
            Layout::V1 { .. } => {
                let [memory, pids, cpu] = [&self.directories[0], &self.directories[1], &self.directories[2]];
                write(memory, "memory.limit_in_bytes", &limits.memory_bytes.to_string())?;
                // Swap counts too where the kernel accounts for it; otherwise swap is simply not limited here.
                let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), limits.memory_bytes.to_string());
                write(pids, "pids.max", &limits.pids.to_string())?;
                write(cpu, "cpu.cfs_period_us", &period.to_string())?;
                write(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
            }
            Layout::V2 { .. } => {
                let group = &self.directories[0];
                write(group, "memory.max", &limits.memory_bytes.to_string())?;
                let _ = std::fs::write(group.join("memory.swap.max"), "0");
                write(group, "pids.max", &limits.pids.to_string())?;
                write(group, "cpu.max", &format!("{quota} {period}"))?;
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes its pid into to join the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.directories.iter().map(|directory| directory.join("cgroup.procs")).collect()
    }

    /// The most memory the group used, in bytes.
    pub fn peak_memory_bytes(&self) -> u64 {
        let (directory, file) = match &self.layout {
            Layout::V1 { .. } => (&self.directories[0], "memory.max_usage_in_bytes"),
            Layout::V2 { .. } => (&self.directories[0], "memory.peak"),
        };
        read_number(&directory.join(file)).unwrap_or(0)
    }

    /// Whether the kernel killed a process of the group for memory (or refused it memory).
    pub fn hit_memory_limit(&self) -> bool {
        match &self.layout {
            Layout::V1 { .. } => {
                let memory = &self.directories[0];
                // With swap accounted, the memory+swap limit is the one reached first: its own counter.
                let control = std::fs::read_to_string(memory.join("memory.oom_control")).unwrap_or_default();
                let oom_kills = control.lines().find_map(|line| line.strip_prefix("oom_kill "));
                match oom_kills {
                    Some(count) => count.trim() != "0",
                    // Kernels before 4.13 do not count kills; reaching the limit is the best sign
                    // left (it also counts reclaim, e.g. of a full tmpfs, hence only as a fallback).
                    None => ["memory.failcnt", "memory.memsw.failcnt"]
                        .iter()
                        .any(|counter| read_number(&memory.join(counter)).is_some_and(|count| count > 0)),
                }
            }
            Layout::V2 { .. } => {
                std::fs::read_to_string(self.directories[0].join("memory.events")).is_ok_and(|events| {
                    events.lines().any(|line| {
                        let mut fields = line.split_whitespace();
                        matches!(fields.next(), Some("oom_kill" | "oom"))
                            && fields.next().is_some_and(|count| count != "0")
                    })
                })
            }
        }
    }

    /// Kills every process still in the group and waits until it is empty.
    pub fn kill_all(&self) {
        if let Layout::V2 { .. } = self.layout {
            let _ = std::fs::write(self.directories[0].join("cgroup.kill"), "1");
        }
        // v1 (and v2 kernels without cgroup.kill): kill what is listed until nothing is; pids.max
        // bounds how many there can be, and a frozen fork cannot outrun repeated kills.
        for attempt in 0..200_u64 {
            let procs = self
                .directories
                .iter()
                .flat_map(|directory| pids_in(&directory.join("cgroup.procs")))
                .collect::<Vec<_>>();
            if procs.is_empty() {
                return;
            }
            for pid in procs.into_iter().filter_map(|pid| rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            // Exiting processes leave the list within a millisecond or so; a fork loop needs more.
            std::thread::sleep(Duration::from_millis(attempt.clamp(1, 5)));
        }
        tracing::warn!(group = ?self.directories, "processes of a run survived repeated kills");
    }
}

impl Drop for RunGroup {
    /// Killing may take a while (a fork loop) and sleeps between rounds: off the async threads
    /// when there are any.
    fn drop(&mut self) {
        // Already cleaned up (the group below drops with nothing left in it, ending here).
        if self.directories.is_empty() {
            return;
        }
        let group = RunGroup { layout: self.layout.clone(), directories: std::mem::take(&mut self.directories) };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || group.kill_and_remove());
            }
            Err(_) => group.kill_and_remove(),
        }
    }
}

impl RunGroup {
    fn kill_and_remove(mut self) {
        self.kill_all();
        let directories = std::mem::take(&mut self.directories);
        for directory in &directories {
            // rmdir on a cgroup directory removes the group (its files are virtual).
            if let Err(error) = std::fs::remove_dir(directory) {
                tracing::warn!(directory = %directory.display(), %error, "cannot remove a run's cgroup");
            }
        }
    }
}

fn pids_in(procs: &Path) -> Vec<u32> {
    std::fs::read_to_string(procs)
        .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write(directory: &Path, file: &str, value: &str) -> Result<(), SandboxError> {
    let path = directory.join(file);
    std::fs::write(&path, value).map_err(|error| setup("set a cgroup limit", &path, error))
}

fn setup(what: &str, path: &Path, error: std::io::Error) -> SandboxError {
    SandboxError::Setup(format!("cannot {what} ({}): {error}", path.display()))
}
