//! The local sandbox on this host: real bubblewrap, cgroups and runtimes. It needs root; where
//! the sandbox cannot be set up these tests say so and pass, unless
//! `CODESYNC_TEST_REQUIRE_SANDBOX=1` (set by `make test`) makes that a failure.

mod common;

use std::time::Duration;

use codesync_execution::sandbox::local::LocalSandbox;
use codesync_execution::sandbox::{Ending, Limits, SandboxError};

/// The size of a run's work directory (a tmpfs of its own).
const WORK_BYTES: u64 = 64 * 1024 * 1024;

/// Runs share the sandbox uid: one at a time, so "nothing of uid 65534 is left" means this run's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sandbox() -> Option<(LocalSandbox, ())> {
    match LocalSandbox::new(codesync_execution::default_runs_dir()) {
        Ok(sandbox) => Some((sandbox, ())),
        Err(SandboxError::Setup(reason)) if std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref() != Ok("1") => {
            eprintln!("skipping: {reason}");
            None
        }
        Err(error) => panic!("the sandbox cannot be set up: {error}"),
    }
}

/// Live processes of the sandbox uid (zombies hold nothing and wait for the host's init to reap them).
fn sandbox_processes_left() -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let of_sandbox =
            status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("65534"));
        let zombie = status.lines().any(|line| line.starts_with("State:") && line.contains('Z'));
        if of_sandbox && !zombie {
            left.push(status.lines().next().unwrap_or_default().to_string());
        }
    }
    left
}

/// Every process of the run is gone within a moment (the last ones are still dying when the run returns).
async fn assert_nothing_left(what: &[String]) {
    for _ in 0..100 {
        if sandbox_processes_left().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("processes left after {what:?}: {:?}", sandbox_processes_left());
}

async fn run(
    sandbox: &LocalSandbox,
    files: &[(&str, &str)],
    command: &[&str],
    stdin: &str,
    limits: Limits,
) -> codesync_execution::sandbox::PhaseOutcome {
    let files: Vec<(String, Vec<u8>)> =
        files.iter().map(|(name, content)| (name.to_string(), content.as_bytes().to_vec())).collect();
    let directory = sandbox.prepare(&files, WORK_BYTES).unwrap();
    let command: Vec<String> = command.iter().map(|part| part.to_string()).collect();
    let outcome = sandbox.run(&directory, "run", &command, stdin.as_bytes(), &limits, None).await.unwrap();
    assert_nothing_left(&command).await;
    outcome
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn python_runs_unprivileged_with_its_stdin() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let program = "import os, sys\nprint('hello', os.getuid(), sys.stdin.read().strip())\n";
    let outcome = run(
        &sandbox,
        &[("main.py", program)],
        &["/usr/bin/python3", "-I", "main.py"],
        "from stdin\n",
        Limits::default(),
    )
    .await;
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), signal: None }, "{}", text(&outcome.stderr));
    assert_eq!(text(&outcome.stdout), "hello 65534 from stdin\n");
    assert!(outcome.peak_memory_bytes > 0);
}

#[tokio::test]
async fn compiled_languages_compile_then_run_in_the_same_directory() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let files =
        vec![("main.cpp".to_string(), b"#include <iostream>\nint main(){std::cout<<\"hi from c++\\n\";}\n".to_vec())];
    let directory = sandbox.prepare(&files, WORK_BYTES).unwrap();
    let compile: Vec<String> =
        ["/usr/bin/g++", "-O2", "-o", "program", "main.cpp"].iter().map(|part| part.to_string()).collect();
    let limits = Limits { wall_time: Duration::from_secs(20), ..Limits::default() };
    let compiled = sandbox.run(&directory, "compile", &compile, b"", &limits, None).await.unwrap();
    assert_eq!(compiled.ending, Ending::Exited { code: Some(0), signal: None }, "{}", text(&compiled.stderr));
    let ran = sandbox.run(&directory, "run", &["./program".to_string()], b"", &Limits::default(), None).await.unwrap();
    assert_eq!(text(&ran.stdout), "hi from c++\n");
}

#[tokio::test]
async fn an_infinite_loop_ends_at_the_time_limit() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let limits = Limits { wall_time: Duration::from_secs(2), ..Limits::default() };
    let outcome = run(
        &sandbox,
        &[("main.py", "import os\nos.fork()\nwhile True: pass\n")],
        &["/usr/bin/python3", "main.py"],
        "",
        limits,
    )
    .await;
    assert_eq!(outcome.ending, Ending::TimeLimit);
    assert!(
        outcome.wall_time >= Duration::from_secs(2) && outcome.wall_time < Duration::from_secs(4),
        "{:?}",
        outcome.wall_time
    );
}

#[tokio::test]
async fn a_memory_bomb_is_killed_at_the_memory_limit() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let program = "blocks = []\nwhile True: blocks.append(bytearray(16 * 1024 * 1024))\n";
    let outcome = run(&sandbox, &[("main.py", program)], &["/usr/bin/python3", "main.py"], "", Limits::default()).await;
    assert_eq!(outcome.ending, Ending::MemoryLimit, "{}", text(&outcome.stderr));
    assert!(outcome.peak_memory_bytes <= 130 * 1024 * 1024, "{}", outcome.peak_memory_bytes);
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_leaves_nothing_behind() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let limits = Limits { wall_time: Duration::from_secs(3), ..Limits::default() };
    let outcome = run(
        &sandbox,
        &[("bomb.sh", "bomb() { bomb | bomb & }; bomb; sleep 10\n")],
        &["/usr/bin/bash", "bomb.sh"],
        "",
        limits,
    )
    .await;
    assert!(matches!(outcome.ending, Ending::TimeLimit | Ending::Exited { .. }), "{:?}", outcome.ending);
}

#[tokio::test]
async fn a_flood_of_output_stops_at_the_output_limit() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let outcome = run(
        &sandbox,
        &[("main.py", "while True: print('x' * 1000)\n")],
        &["/usr/bin/python3", "main.py"],
        "",
        Limits::default(),
    )
    .await;
    assert_eq!(outcome.ending, Ending::OutputLimit);
    assert!(outcome.stdout_truncated);
    assert_eq!(outcome.stdout.len(), Limits::default().output_bytes);
}

#[tokio::test]
async fn the_network_the_host_files_and_big_files_are_out_of_reach() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let program = format!(
        "{}{}",
        common::ATTEMPT,
        r#"
attempt("postgres", lambda: socket.create_connection(("127.0.0.1", 5432), timeout=2))
attempt("outside", lambda: socket.create_connection(("1.1.1.1", 80), timeout=2))
attempt("shadow", lambda: open("/etc/shadow").read())
attempt("write-usr", lambda: open("/usr/owned", "w").write("x"))
attempt("write-root", lambda: open("/owned", "w").write("x"))
attempt("signal-host", lambda: os.kill(HOST_PID, 9))
attempt("big-file", one_gigabyte)
attempt("fill-tmp", lambda: fill("/tmp"))
attempt("fill-work", lambda: fill("/work"))
"#
    );
    // The test's own pid: a process of the host the program tries to kill.
    let program = program.replace("HOST_PID", &std::process::id().to_string());
    let outcome =
        run(&sandbox, &[("main.py", &program)], &["/usr/bin/python3", "main.py"], "", Limits::default()).await;
    let report = text(&outcome.stdout);
    assert!(!report.contains("ALLOWED"), "{report}\n{}", text(&outcome.stderr));
    for name in
        ["postgres", "outside", "shadow", "write-usr", "write-root", "signal-host", "big-file", "fill-tmp", "fill-work"]
    {
        assert!(report.contains(&format!("{name} refused")), "{name}: {report}");
    }
}

#[test]
fn a_runs_directory_the_sandbox_user_cannot_reach_is_refused_at_start() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    match LocalSandbox::new(private.path().join("runs")) {
        Err(SandboxError::Setup(reason)) => assert!(reason.contains("cannot traverse"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a runs directory under a private directory was accepted"),
    }
}

#[tokio::test]
async fn file_names_that_could_leave_the_work_directory_are_refused() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    // Folders are fine (`src/app/main.py`, see the executions integration test); climbing is not.
    for name in
        ["../escape.py", "a/../../b.py", "/abs.py", "a//b.py", "a/", "a\\b.py", "..", "", "-rf", "a/-rf", "x\u{0}y"]
    {
        let files = vec![(name.to_string(), b"print(1)".to_vec())];
        assert!(matches!(sandbox.prepare(&files, WORK_BYTES), Err(SandboxError::Invalid(_))), "{name:?}");
    }
}

/// Each language of the table (`languages.toml`), with its own commands: hello world, then what
/// stdin held; and a compile error comes back from the compiler, with its message.
#[tokio::test]
async fn every_installed_language_runs_hello_world_and_echoes_stdin() {
    use codesync_execution::languages::{CommandContext, LanguageTable};
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let programs = common::HELLO_AND_ECHO;
    let table = LanguageTable::embedded();
    for (name, entry, source) in programs {
        let language = table.by_name(name).unwrap_or_else(|| panic!("{name} is in the table"));
        if !language.available() {
            // The four languages the product promises must run wherever the tests are required to.
            let required = ["python", "javascript", "java", "cpp"].contains(name);
            assert!(
                !required || std::env::var("CODESYNC_TEST_REQUIRE_SANDBOX").as_deref() != Ok("1"),
                "{name} is not installed here"
            );
            eprintln!("{name}: not installed here");
            continue;
        }
        let directory = sandbox.prepare(&[(entry.to_string(), source.as_bytes().to_vec())], WORK_BYTES).unwrap();
        let sources = vec![entry.to_string()];
        let context = CommandContext { entry, sources: &sources };
        let mut limits = Limits { wall_time: Duration::from_secs(20), ..Limits::default() };
        if let Some(memory) = language.memory_limit_bytes {
            limits.memory_bytes = memory;
        }
        if let Some(compile) = language.compile_command(&context) {
            let compiled = sandbox.run(&directory, "compile", &compile, b"", &limits, None).await.unwrap();
            assert_eq!(
                compiled.ending,
                Ending::Exited { code: Some(0), signal: None },
                "{name}: {}",
                text(&compiled.stderr)
            );
        }
        let ran = sandbox
            .run(&directory, "run", &language.run_command(&context), b"line one\nline two\n", &limits, None)
            .await
            .unwrap();
        assert_eq!(ran.ending, Ending::Exited { code: Some(0), signal: None }, "{name}: {}", text(&ran.stderr));
        assert_eq!(text(&ran.stdout), "hello\nline one\nline two\n", "{name}");
    }

    let cpp = table.by_name("cpp").unwrap();
    let directory = sandbox
        .prepare(&[("main.cpp".to_string(), b"int main() { return undefined_name; }\n".to_vec())], WORK_BYTES)
        .unwrap();
    let sources = vec!["main.cpp".to_string()];
    let compile = cpp.compile_command(&CommandContext { entry: "main.cpp", sources: &sources }).unwrap();
    let compiled = sandbox.run(&directory, "compile", &compile, b"", &Limits::default(), None).await.unwrap();
    assert!(matches!(compiled.ending, Ending::Exited { code: Some(code), .. } if code != 0), "{compiled:?}");
    assert!(text(&compiled.stderr).contains("undefined_name"), "{compiled:?}");
}

/// A program plants symlinks in its work directory pointing at host files; removing the
/// directory afterwards unlinks them and never follows them (Judge0's CVE-2024-28185/28189).
#[tokio::test]
async fn symlinks_planted_in_the_work_directory_are_never_followed_by_the_host() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let canary = tempfile::tempdir().unwrap();
    std::fs::write(canary.path().join("precious.txt"), "keep me").unwrap();
    let program = format!(
        "import os\nos.symlink('{canary}', 'link-to-dir')\nos.symlink('{canary}/precious.txt', 'link-to-file')\nos.mkdir('sub')\nos.symlink('/', 'sub/root')\nprint('planted')\n",
        canary = canary.path().display()
    );
    let files = vec![("main.py".to_string(), program.into_bytes())];
    let directory = sandbox.prepare(&files, WORK_BYTES).unwrap();
    let outcome = sandbox
        .run(&directory, "run", &["/usr/bin/python3".to_string(), "main.py".to_string()], b"", &Limits::default(), None)
        .await
        .unwrap();
    assert_eq!(text(&outcome.stdout), "planted\n", "{}", text(&outcome.stderr));
    drop(directory);
    assert_eq!(std::fs::read_to_string(canary.path().join("precious.txt")).unwrap(), "keep me");
    assert!(std::path::Path::new("/usr/bin/python3").exists());
}

/// The seccomp filter is installed on the program (not on bwrap's set-up), denies what the
/// policy names even where the kernel would allow it to an unprivileged process, and its
/// descriptor does not leak into the sandbox.
#[tokio::test]
async fn the_seccomp_filter_denies_what_the_policy_names() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let program = r#"
import os, socket
status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\t' in line)
print('seccomp mode', status['Seccomp'].strip())
def target(fd):
    try:
        return os.readlink('/proc/self/fd/' + fd)
    except OSError:
        return 'closed'
print('descriptors', {int(fd): target(fd) for fd in os.listdir('/proc/self/fd')})
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    print('netlink allowed')
except PermissionError:
    print('netlink denied')
local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
print('unix sockets work')
"#;
    let outcome = run(&sandbox, &[("main.py", program)], &["/usr/bin/python3", "main.py"], "", Limits::default()).await;
    let stdout = text(&outcome.stdout);
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), signal: None }, "{stdout}{}", text(&outcome.stderr));
    assert!(stdout.contains("seccomp mode 2"), "a filter is active: {stdout}");
    // A netlink socket needs no privilege; only the filter refuses it.
    assert!(stdout.contains("netlink denied"), "{stdout}");
    assert!(stdout.contains("unix sockets work"), "{stdout}");
    // Only stdio, and the listing's own descriptor (3, closed by the time it is looked at): not
    // the filter's descriptor, nor anything the server inherited (cargo's jobserver pipe, here).
    assert!(stdout.contains("descriptors {0: 'pipe:"), "{stdout}");
    let descriptors = stdout.lines().find(|line| line.starts_with("descriptors")).unwrap_or_default();
    assert_eq!(descriptors.matches(": '").count(), 4, "stdio and the closed listing only: {descriptors}");
    assert!(descriptors.contains("3: 'closed'"), "{descriptors}");
}

/// The hardening of issue 15: a program sees nothing of the host it runs on: not the
/// environment or command line of the processes that started it (`/proc/1`), not the host's
/// name, not the server's working directory, and no descriptor beyond stdio.
#[tokio::test]
async fn the_host_is_not_visible_from_inside() {
    let Some((sandbox, _runs)) = sandbox() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let program = r#"
import os, socket
def read(path):
    try:
        return open(path, "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
    except Exception as error:
        return "unreadable: " + type(error).__name__
print("ENVIRON1=" + read("/proc/1/environ"))
print("CMDLINE1=" + read("/proc/1/cmdline"))
print("ENVIRON=" + read("/proc/self/environ"))
print("HOSTNAME=" + socket.gethostname())
print("FDS=" + ",".join(sorted(os.listdir("/proc/self/fd"))))
print("MOUNTS=" + read("/proc/self/mountinfo"))
"#;
    let outcome = run(&sandbox, &[("main.py", program)], &["/usr/bin/python3", "main.py"], "", Limits::default()).await;
    let report = text(&outcome.stdout);
    let line = |key: &str| {
        report.lines().find_map(|line| line.strip_prefix(&format!("{key}="))).unwrap_or_default().to_string()
    };
    assert_eq!(line("ENVIRON1").trim(), "", "pid 1's environment is empty: {report}");
    let server_directory = std::env::current_dir().unwrap().display().to_string();
    let runs_directory = codesync_execution::default_runs_dir().display().to_string();
    for (what, text) in [("cmdline", line("CMDLINE1")), ("environ", line("ENVIRON")), ("mounts", line("MOUNTS"))] {
        assert!(!text.contains(&server_directory), "{what} shows the server's directory {server_directory}: {text}");
        assert!(!text.contains(&runs_directory), "{what} shows where runs live on the host {runs_directory}: {text}");
    }
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    assert_eq!(line("HOSTNAME"), "sandbox");
    assert_ne!(line("HOSTNAME"), host_name);
    // stdin, stdout, stderr, and the descriptor Python's listing itself opens.
    assert!(line("FDS").split(',').count() <= 4, "descriptors beyond stdio: {report}");
}
