//! The `local` backend. Each phase runs as this chain of processes:
//!
//! 1. `/bin/bash`, still root, closes every descriptor but stdio, opens the seccomp filter, sets
//!    the file-size, core and open-file limits (`ulimit`; not RLIMIT_AS: it breaks Node and the
//!    JVM, memory is the cgroup's job), and writes its own pid into the phase's cgroups, so that
//!    everything it becomes is limited before any user code runs (an unprivileged process cannot
//!    move itself between v2 cgroups, and std offers no safe pre-exec hook);
//! 2. `setpriv` drops to the sandbox uid with no groups and no new privileges;
//! 3. `bwrap` makes new user, pid, network, ipc, uts, mount and cgroup namespaces with no
//!    capabilities, only `/usr` of the host (read-only), a fresh size-capped `/tmp` and the run's
//!    work directory at `/work`, installs the seccomp filter ([`super::seccomp`], opened by the
//!    shell as descriptor 3), then runs the command.
//!
//! The host writes the sources before the run and never reads or writes the work directory
//! after user code ran (a planted symlink must never be followed: Judge0's CVE-2024-28185 and
//! 28189); output comes through pipes, capped, and the directory is removed with
//! `remove_dir_all`, which does not follow symlinks.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::cgroup::{CgroupLimits, Layout, RunGroup};
use super::{Ending, Limits, LiveOutput, PhaseOutcome, SandboxError, Stream};

/// The uid and gid runs have on the host (nobody): they own nothing of the host's.
pub const SANDBOX_UID: u32 = 65534;
/// Host directories some runtimes read besides /usr (the JVM's configuration, alternatives).
const EXTRA_READ_ONLY: [&str; 3] = ["/etc/alternatives", "/etc/java-17-openjdk", "/etc/ld.so.cache"];

/// The root shell at the start of each run: bash, because dash cannot name descriptors above 9.
const ROOT_SHELL: &str = "/bin/bash";

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

pub struct LocalSandbox {
    runs_dir: PathBuf,
    cgroups: Layout,
    /// The compiled seccomp filter (root-only file), opened for bwrap at the start of each run.
    seccomp_program: PathBuf,
}

/// A run's work directory; removed (without following anything in it) when dropped.
pub struct RunDirectory {
    path: PathBuf,
    name: String,
    /// A tmpfs of its own is mounted on it (the local backend), to be unmounted before removal.
    mounted: bool,
}

impl RunDirectory {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unique among the runs of this host: names the run's cgroups and containers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the directory off the async threads; nothing runs in it any more.
    pub fn remove_in_background(self) {
        tokio::task::spawn_blocking(move || drop(self));
    }
}

impl Drop for RunDirectory {
    fn drop(&mut self) {
        // Detached: whatever still holds the mount (nothing should) cannot keep it alive; the
        // files go with it, so nothing in it is ever followed by the host.
        if self.mounted
            && let Err(error) = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH)
        {
            tracing::warn!(directory = %self.path.display(), %error, "cannot unmount a run's work directory");
        }
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(directory = %self.path.display(), %error, "cannot remove a run's work directory");
        }
    }
}

impl LocalSandbox {
    /// Checks that this host can run sandboxes: root (for cgroups and the uid drop), bwrap,
    /// bash and setpriv installed, usable cgroups, and a runs directory others can traverse.
    pub fn new(runs_dir: PathBuf) -> Result<Self, SandboxError> {
        if !rustix::process::geteuid().is_root() {
            return Err(SandboxError::Setup(unprivileged_refusal()));
        }
        for tool in [ROOT_SHELL, "/usr/bin/bwrap", "/usr/bin/setpriv"] {
            if !Path::new(tool).is_file() {
                return Err(SandboxError::Setup(format!("{tool} is missing (apt-get install bubblewrap util-linux)")));
            }
        }
        let cgroups = Layout::detect()?;
        std::fs::create_dir_all(&runs_dir)?;
        // Ours, and a directory (in a shared /tmp, someone may have planted a symlink there first).
        let metadata = std::fs::symlink_metadata(&runs_dir)?;
        if !metadata.is_dir() || std::os::unix::fs::MetadataExt::uid(&metadata) != 0 {
            return Err(SandboxError::Setup(format!("{} is not a directory owned by root", runs_dir.display())));
        }
        // Others may pass through (bwrap runs as the sandbox uid and must reach the work
        // directory to bind it) but not list the runs.
        std::fs::set_permissions(&runs_dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let runs_dir = std::fs::canonicalize(&runs_dir)?;
        for ancestor in runs_dir.ancestors().skip(1) {
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(ancestor)?.permissions());
            if mode & 0o001 == 0 {
                return Err(SandboxError::Setup(format!(
                    "the runs directory {} is inside {}, which the sandbox user cannot traverse",
                    runs_dir.display(),
                    ancestor.display()
                )));
            }
        }
        let seccomp_program = super::seccomp::install(&runs_dir)?;
        Ok(Self { runs_dir, cgroups, seccomp_program })
    }

    /// Which cgroup hierarchy holds the runs' memory, process and CPU limits.
    pub fn cgroup_version(&self) -> &'static str {
        match self.cgroups {
            Layout::V1 { .. } => "v1",
            Layout::V2 { .. } => "v2",
        }
    }

    /// A fresh work directory holding `files`, owned by the sandbox uid. File names are plain
    /// names (no directories), checked here.
    /// The directory is a tmpfs of `work_bytes` of its own: a program cannot fill the host's
    /// disk through it (its pages also count against the run's memory limit).
    pub fn prepare(&self, files: &[(String, Vec<u8>)], work_bytes: u64) -> Result<RunDirectory, SandboxError> {
        prepare_directory(&self.runs_dir, files, Some(work_bytes))
    }

    /// Where the runs' work directories are made.
    pub fn runs_dir(&self) -> &Path {
        &self.runs_dir
    }

    /// Runs `command` in the sandbox, in `directory`, with `stdin`, under `limits`; its output
    /// also goes to `live` as it comes.
    pub async fn run(
        &self,
        directory: &RunDirectory,
        phase: &str,
        command: &[String],
        stdin: &[u8],
        limits: &Limits,
        live: Option<&LiveOutput>,
    ) -> Result<PhaseOutcome, SandboxError> {
        // The cgroup's directories and limits, and bwrap's arguments (host paths, the command),
        // which go through a descriptor, not its command line (the sandbox's pid 1 is a copy of
        // bwrap, and a program reads its /proc/1/cmdline): file-system calls, made on the
        // blocking pool (cgroupfs takes a kernel-wide lock).
        let (cgroups, runs_dir, run_name, phase_name) =
            (self.cgroups.clone(), self.runs_dir.clone(), directory.name.clone(), phase.to_string());
        let cgroup_limits =
            CgroupLimits { memory_bytes: limits.memory_bytes, pids: limits.pids, cpu_percent: limits.cpu_percent };
        let options = bwrap_options(&directory.path, limits);
        let (group, arguments) = tokio::task::spawn_blocking(move || -> Result<_, SandboxError> {
            let group = RunGroup::create(&cgroups, &format!("{run_name}-{phase_name}"), cgroup_limits)?;
            let arguments = SandboxArguments::write(&runs_dir, &run_name, &phase_name, &options)?;
            Ok((group, arguments))
        })
        .await
        .map_err(|error| SandboxError::Setup(format!("preparing a run's cgroup failed: {error}")))??;
        let mut process = tokio::process::Command::new(ROOT_SHELL);
        process
            .arg("-c")
            .arg(concat!(
                // Descriptors this process inherited without close-on-exec (from whatever started
                // the server) must not reach the program: close all but stdio.
                r#"for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; "#,
                r#"exec 3< "$1" || exit 125; exec 4< "$2" || exit 125; shift 2; "#,
                // bash counts file sizes in KiB; limits are only lowered here, which root may do.
                r#"ulimit -f "$1" -c 0 -n "$2" || exit 125; shift 2; "#,
                // No environment at all from here: bwrap's (the sandbox's /proc/1/environ) is empty.
                r#"for procs do shift; [ "$procs" = -- ] && break; echo $$ > "$procs" || exit 125; done; exec /usr/bin/env -i "$@""#
            ))
            .arg("sh")
            .arg(&self.seccomp_program)
            .arg(arguments.path())
            .arg((limits.file_size_bytes / 1024).max(1).to_string())
            .arg(limits.open_files.to_string())
            .args(group.procs_files())
            .arg("--")
            .args(sandbox_chain())
            // bwrap takes the command from its own command line only (after the options it read).
            .arg("--")
            .args(command)
            .env_clear()
            // The server's working directory is nobody's business inside.
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = process.spawn()?;

        let mut input = child.stdin.take();
        let stdin = stdin.to_vec();
        // A program that never reads its input must not block the run: write in the background.
        let feeding = tokio::spawn(async move {
            if let Some(input) = input.as_mut() {
                let _ = input.write_all(&stdin).await;
            }
        });
        let too_much_output = Arc::new(Notify::new());
        let stdout = tokio::spawn(read_capped(
            child.stdout.take(),
            limits.output_bytes,
            too_much_output.clone(),
            live.map(|live| (live.clone(), Stream::Stdout)),
        ));
        let stderr = tokio::spawn(read_capped(
            child.stderr.take(),
            limits.output_bytes,
            too_much_output.clone(),
            live.map(|live| (live.clone(), Stream::Stderr)),
        ));

        let ending = tokio::select! {
            status = child.wait() => {
                let status = status?;
                Ending::Exited { code: status.code(), signal: status.signal() }
            }
            () = tokio::time::sleep(limits.wall_time) => Ending::TimeLimit,
            () = too_much_output.notified() => Ending::OutputLimit,
        };
        let wall_time = started.elapsed();
        // Whatever is left of the run goes: bwrap, its namespace's init, and (through the
        // cgroup) anything that slipped out of both.
        let _ = child.start_kill();
        let _ = child.wait().await;
        // Killing sleeps between rounds (a fork loop): off the async threads.
        let group = tokio::task::spawn_blocking(move || {
            group.kill_all();
            group
        })
        .await
        .map_err(|error| SandboxError::Setup(format!("killing the run's processes failed: {error}")))?;
        feeding.abort();
        let (stdout, stdout_truncated) = collect(stdout).await;
        let (stderr, stderr_truncated) = collect(stderr).await;
        // bwrap itself failed (it reports on stderr and exits 1 before the program starts): the
        // server's problem, not a runtime error of the user's.
        if ending == (Ending::Exited { code: Some(1), signal: None }) && stderr.starts_with(b"bwrap: ") {
            let line =
                String::from_utf8_lossy(stderr.split(|byte| *byte == b'\n').next().unwrap_or_default()).into_owned();
            return Err(SandboxError::Setup(line));
        }
        let ending = match ending {
            Ending::Exited { code, signal } if group.hit_memory_limit() && (signal == Some(9) || code != Some(0)) => {
                Ending::MemoryLimit
            }
            Ending::Exited { code: Some(125), .. } if wall_time < Duration::from_millis(5) => {
                return Err(SandboxError::Setup(
                    "the run could not open its seccomp filter or join its cgroups".into(),
                ));
            }
            other => other,
        };
        let peak_memory_bytes = group.peak_memory_bytes();
        // Every process is gone (kill_all above); removing the empty group can wait for the
        // answer to be on its way.
        drop(group);
        Ok(PhaseOutcome { ending, stdout, stderr, stdout_truncated, stderr_truncated, wall_time, peak_memory_bytes })
    }
}

/// Why the local sandbox refuses to run code for a user who is not root, limit by limit: what it
/// could enforce (rlimits and the service's own timers work for anyone; namespaces where the
/// kernel lets users make them) and what it could not. The memory, process and CPU limits, and a
/// bound on what a run writes to its work directory, need cgroups (and a tmpfs mount), which only
/// root can make here: a run without them could take the host's memory or disk, so none runs.
fn unprivileged_refusal() -> String {
    let uid = rustix::process::getuid().as_raw();
    let namespaces = if user_namespaces_work() {
        "bubblewrap's namespaces (no network) work for this user"
    } else {
        "this user cannot even make the namespaces bubblewrap needs (user namespaces are off or bwrap is missing)"
    };
    format!(
        "started as uid {uid}, not root. The time, output, file-size and open-file limits could be \
         enforced, and {namespaces}; but the memory limit, the process limit and the CPU limit cannot, \
         nor a bound on what a run writes to its work directory: they need cgroups and a tmpfs \
         mount, and {cgroups}. Rather than run code with those limits missing, runs are refused: \
         start codesync as root to run code",
        cgroups = cgroups_for_this_user(),
    )
}

/// Whether bubblewrap can make its namespaces as this user (a trivial program in them).
fn user_namespaces_work() -> bool {
    std::process::Command::new("/usr/bin/bwrap")
        .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"])
        .args(["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin"])
        .args(["--proc", "/proc", "--dev", "/dev", "/usr/bin/true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// What this host's cgroups offer a user who is not root, in words.
fn cgroups_for_this_user() -> String {
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").is_file() {
        return "this host's cgroups are v1, which only root can divide".into();
    }
    // On v2, a user may divide only a subtree delegated to it (systemd's `Delegate=yes`).
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| groups.lines().find_map(|line| line.strip_prefix("0::").map(str::to_string)))
        .unwrap_or_default();
    let directory = root.join(own.trim_start_matches('/'));
    // Opening for writing moves nothing (only a write of a pid would).
    let procs = directory.join("cgroup.procs");
    if std::fs::OpenOptions::new().write(true).open(&procs).is_err() {
        return format!("no cgroup is delegated to this user ({} is not writable)", procs.display());
    }
    "this version of the local sandbox does not yet divide a delegated cgroup".into()
}

/// `setpriv … bwrap --args 4`: bwrap reads the rest from the descriptor the root shell opened.
fn sandbox_chain() -> Vec<String> {
    let uid = SANDBOX_UID.to_string();
    [
        "/usr/bin/setpriv",
        "--reuid",
        &uid,
        "--regid",
        &uid,
        "--clear-groups",
        "--no-new-privs",
        "--",
        "/usr/bin/bwrap",
        "--args",
        "4",
    ]
    .iter()
    .map(|part| part.to_string())
    .collect()
}

/// bwrap's options for a run (they name host paths), written to a root-only file the root shell
/// opens as descriptor 4 (and removed when the run ends).
struct SandboxArguments {
    path: PathBuf,
}

impl SandboxArguments {
    fn write(runs_dir: &Path, run: &str, phase: &str, arguments: &[String]) -> Result<Self, SandboxError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = runs_dir.join(format!(".{run}-{phase}.args"));
        let mut bytes = Vec::new();
        for argument in arguments {
            if argument.as_bytes().contains(&0) {
                return Err(SandboxError::Setup("a sandbox argument holds a NUL byte".into()));
            }
            bytes.extend_from_slice(argument.as_bytes());
            bytes.push(0);
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        file.write_all(&bytes)?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SandboxArguments {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// bwrap's options for a run in `work`.
fn bwrap_options(work: &Path, limits: &Limits) -> Vec<String> {
    let uid = SANDBOX_UID.to_string();
    let mut chain: Vec<String> = Vec::new();
    chain.extend(
        [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid",
            &uid,
            "--gid",
            &uid,
            // Its own host name: the server's is not the program's to know.
            "--hostname",
            "sandbox",
            "--cap-drop",
            "ALL",
            // The filter the root shell opened as descriptor 3; bwrap reads and closes it.
            "--seccomp",
            "3",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
        ]
        .iter()
        .map(|part| part.to_string()),
    );
    for extra in EXTRA_READ_ONLY {
        if Path::new(extra).exists() {
            chain.extend(["--ro-bind".to_string(), extra.to_string(), extra.to_string()]);
        }
    }
    chain.extend(["--proc", "/proc", "--dev", "/dev", "--size"].iter().map(|part| part.to_string()));
    chain.push(limits.tmp_bytes.to_string());
    chain.extend(["--tmpfs", "/tmp", "--bind"].iter().map(|part| part.to_string()));
    chain.push(work.display().to_string());
    chain.extend(
        [
            "/work",
            "--chdir",
            "/work",
            "--remount-ro",
            "/",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/work",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "TMPDIR",
            "/tmp",
        ]
        .iter()
        .map(|part| part.to_string()),
    );
    chain
}

/// A fresh work directory in `runs_dir` holding `files`. As root, it and the files belong to the
/// sandbox uid (mode 0700); otherwise (a `docker` backend run by a member of the docker group)
/// the directory is open to the container's uid (mode 0777). File names are checked here.
pub fn prepare_directory(
    runs_dir: &Path,
    files: &[(String, Vec<u8>)],
    tmpfs_bytes: Option<u64>,
) -> Result<RunDirectory, SandboxError> {
    for (name, _) in files {
        check_file_name(name)?;
    }
    let as_root = rustix::process::geteuid().is_root();
    let name = format!("run-{}-{}", std::process::id(), NEXT_RUN.fetch_add(1, Ordering::Relaxed));
    let path = runs_dir.join(&name);
    std::fs::create_dir(&path)?;
    let mut directory = RunDirectory { path, name, mounted: false };
    if let Some(bytes) = tmpfs_bytes.filter(|_| as_root) {
        let options = std::ffi::CString::new(format!("size={bytes},mode=0700,uid={SANDBOX_UID},gid={SANDBOX_UID}"))
            .map_err(|error| SandboxError::Setup(error.to_string()))?;
        let flags = rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV;
        rustix::mount::mount("codesync-run", &directory.path, "tmpfs", flags, options.as_c_str())
            .map_err(|error| SandboxError::Setup(format!("cannot mount the run's work directory: {error}")))?;
        directory.mounted = true;
    }
    let mode = if as_root { 0o700 } else { 0o777 };
    std::fs::set_permissions(&directory.path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    for (file_name, content) in files {
        // Folders first (`src/app/` of `src/app/main.py`), each as the run's directory is.
        let mut folder = directory.path.clone();
        for part in file_name.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            folder.push(part);
            if std::fs::symlink_metadata(&folder).is_err() {
                std::fs::create_dir(&folder)?;
                std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                if as_root {
                    std::os::unix::fs::chown(&folder, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
                }
            }
        }
        let file = directory.path.join(file_name);
        std::fs::OpenOptions::new().write(true).create_new(true).open(&file)?.write_all_sync(content)?;
        if as_root {
            std::os::unix::fs::chown(&file, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
        } else {
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        }
    }
    if as_root {
        std::os::unix::fs::chown(&directory.path, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
    }
    Ok(directory)
}

/// A relative path of plain names (`src/app/main.py`): nothing that climbs, no empty parts, no
/// control characters, no part starting with a dash (an argument that looks like an option).
pub fn check_file_name(name: &str) -> Result<(), SandboxError> {
    use codesync_common::limits::{FILE_PATH_MAX_BYTES, FILE_PATH_MAX_DEPTH};
    let plain_part = |part: &str| {
        !part.is_empty()
            && part.len() <= 255
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && !part.chars().any(|character| character == '\\' || character.is_control())
    };
    let plain = name.len() <= FILE_PATH_MAX_BYTES
        && name.split('/').count() <= FILE_PATH_MAX_DEPTH
        && name.split('/').all(plain_part);
    if plain { Ok(()) } else { Err(SandboxError::Invalid(format!("{name:?} is not a plain relative path"))) }
}

/// Reads a stream up to `cap` bytes, passing each chunk on to `live`; past the cap, keeps the
/// first `cap` bytes and says so.
async fn read_capped<R: AsyncRead + Unpin>(
    stream: Option<R>,
    cap: usize,
    exceeded: Arc<Notify>,
    live: Option<(LiveOutput, Stream)>,
) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else { return (Vec::new(), false) };
    let mut kept = Vec::new();
    let mut chunk = vec![0_u8; 16 * 1024];
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return (kept, false),
            Ok(read) => read,
        };
        let over = kept.len() + read > cap;
        let keep = if over { cap - kept.len() } else { read };
        if let Some((live, stream)) = &live
            && keep > 0
        {
            // The listener may be gone (the client went away): the run goes on regardless.
            live.send((*stream, chunk[..keep].to_vec()));
        }
        kept.extend_from_slice(&chunk[..keep]);
        if over {
            exceeded.notify_one();
            return (kept, true);
        }
    }
}

async fn collect(reader: tokio::task::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    match tokio::time::timeout(Duration::from_secs(2), reader).await {
        Ok(Ok(collected)) => collected,
        _ => (Vec::new(), false),
    }
}

/// `write_all` for a std file, named apart from the async one in scope.
trait WriteAllSync {
    fn write_all_sync(self, content: &[u8]) -> std::io::Result<()>;
}

impl WriteAllSync for std::fs::File {
    fn write_all_sync(mut self, content: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self, content)
    }
}
