//! One run: the program's files checked, the language found, the compile phase (if any) and the
//! run phase in the sandbox, and the result the API reports.

use std::time::Duration;

use codesync_common::ErrorCode;
use codesync_common::ServiceError;
use codesync_proto::execution::v1 as pb;

use crate::languages::{CommandContext, Language, LanguageTable};
use crate::sandbox::kubernetes::JobRequest;
use crate::sandbox::{Ending, Limits, LiveOutput, PhaseOutcome, Sandbox, SandboxError};

/// At most this many files in one run, together at most `MAX_SOURCE_BYTES`.
pub use codesync_common::limits::{
    RUN_MAX_FILES as MAX_FILES, RUN_SOURCE_MAX_BYTES as MAX_SOURCE_BYTES, RUN_STDIN_MAX_BYTES as MAX_STDIN_BYTES,
};
/// A compile phase gets this long unless the language says otherwise.
const DEFAULT_COMPILE_TIME: Duration = Duration::from_secs(20);

pub struct Program<'a> {
    pub language: &'a str,
    pub files: &'a [pb::SourceFile],
    pub entry: &'a str,
    pub stdin: &'a str,
}

/// Checks `program` and picks its language: by name, else by the entry file's extension.
pub fn resolve<'t>(table: &'t LanguageTable, program: &Program<'_>) -> Result<(&'t Language, String), ServiceError> {
    if program.files.is_empty() {
        return Err(ServiceError::invalid(ErrorCode::NoFiles, "a run needs at least one file"));
    }
    if program.files.len() > MAX_FILES {
        return Err(ServiceError::invalid(
            ErrorCode::TooManyFiles,
            format!("a run may hold at most {MAX_FILES} files"),
        ));
    }
    for file in program.files {
        crate::sandbox::local::check_file_name(&file.name)
            .map_err(|error| ServiceError::invalid(ErrorCode::InvalidFilename, error.to_string()))?;
    }
    let total: usize = program.files.iter().map(|file| file.content.len()).sum();
    if total > MAX_SOURCE_BYTES {
        return Err(ServiceError::too_large(
            ErrorCode::ProgramTooLarge,
            "the program's files are larger than 1 MiB together",
        ));
    }
    if program.stdin.len() > MAX_STDIN_BYTES {
        return Err(ServiceError::too_large(ErrorCode::StdinTooLarge, "stdin is larger than 1 MiB"));
    }
    let entry = if program.entry.is_empty() { program.files[0].name.clone() } else { program.entry.to_string() };
    if !program.files.iter().any(|file| file.name == entry) {
        return Err(ServiceError::not_found(
            ErrorCode::UnknownEntry,
            format!("the entry {entry:?} is not one of the files"),
        ));
    }
    let language = if program.language.is_empty() {
        table.for_file(&entry).ok_or_else(|| {
            ServiceError::invalid(
                ErrorCode::UnknownLanguage,
                format!("no language runs {entry:?}; name one with \"language\""),
            )
        })?
    } else {
        table.by_name(program.language).ok_or_else(|| {
            let known: Vec<&str> = table.all().iter().map(|language| language.name.as_str()).collect();
            ServiceError::invalid(
                ErrorCode::UnknownLanguage,
                format!("unknown language {:?}; known: {}", program.language, known.join(", ")),
            )
        })?
    };
    if !language.available() {
        return Err(ServiceError::FailedPrecondition {
            code: ErrorCode::LanguageUnavailable,
            message: format!("{} is not installed on this server", language.display_name),
        });
    }
    Ok((language, entry))
}

/// Compiles (if the language needs it) and runs the program, passing the output of both phases
/// to `live` as it comes; the result without id, owner or time.
pub async fn run(
    sandbox: &Sandbox,
    language: &Language,
    entry: &str,
    program: &Program<'_>,
    limits: &Limits,
    live: Option<&LiveOutput>,
) -> Result<pb::ExecutionResult, SandboxError> {
    let files: Vec<(String, Vec<u8>)> =
        program.files.iter().map(|file| (file.name.clone(), file.content.as_bytes().to_vec())).collect();
    let sources: Vec<String> =
        program.files.iter().filter(|file| language.handles(&file.name)).map(|file| file.name.clone()).collect();
    let context = CommandContext { entry, sources: &sources };
    let mut run_limits = *limits;
    if let Some(memory) = language.memory_limit_bytes {
        run_limits.memory_bytes = memory;
    }
    let compile = language.compile_command(&context).map(|command| {
        let wall_time = language.compile_time_limit_ms.map_or(DEFAULT_COMPILE_TIME, Duration::from_millis);
        (command, Limits { wall_time, ..run_limits })
    });
    if let Some(run_time) = language.run_time_limit_ms {
        run_limits.wall_time = Duration::from_millis(run_time).min(run_limits.wall_time);
    }
    let run_command = language.run_command(&context);

    // One Job does both phases on Kubernetes; elsewhere each phase runs in the work directory.
    if let Sandbox::Kubernetes(kubernetes) = sandbox {
        let request = JobRequest {
            files: &files,
            stdin: program.stdin.as_bytes(),
            compile: compile.clone(),
            run: (run_command, run_limits),
        };
        let outcome = kubernetes.run(request, live).await?;
        if let (Some(compiled), Some((_, compile_limits))) = (outcome.compile, &compile)
            && compiled.ending != (Ending::Exited { code: Some(0), signal: None })
        {
            return Ok(compile_error(language, compiled, compile_limits));
        }
        let ran = outcome.run.ok_or_else(|| SandboxError::Setup("the Job ended without running the program".into()))?;
        return Ok(result(language, status_of(ran.ending), ran));
    }

    // Removed off the async workers however the run ends: done, failed, or cancelled (its
    // future dropped).
    let directory = RemovedInBackground(Some(sandbox.prepare_off_workers(files, limits.tmp_bytes).await?));
    let work = directory.0.as_ref().ok_or_else(|| SandboxError::Setup("the work directory is gone".into()))?;
    if let Some((command, compile_limits)) = &compile {
        let compiled = sandbox.run(work, "compile", command, b"", compile_limits, live).await?;
        if compiled.ending != (Ending::Exited { code: Some(0), signal: None }) {
            return Ok(compile_error(language, compiled, compile_limits));
        }
    }
    let ran = sandbox.run(work, "run", &run_command, program.stdin.as_bytes(), &run_limits, live).await?;
    Ok(result(language, status_of(ran.ending), ran))
}

fn status_of(ending: Ending) -> pb::ExecutionStatus {
    match ending {
        Ending::Exited { code: Some(0), .. } => pb::ExecutionStatus::Ok,
        Ending::Exited { .. } => pb::ExecutionStatus::RuntimeError,
        Ending::TimeLimit => pb::ExecutionStatus::TimeLimit,
        Ending::MemoryLimit => pb::ExecutionStatus::MemoryLimit,
        Ending::OutputLimit => pb::ExecutionStatus::OutputLimit,
    }
}

fn compile_error(language: &Language, compiled: PhaseOutcome, limits: &Limits) -> pb::ExecutionResult {
    let mut outcome = compiled;
    let note = match outcome.ending {
        Ending::TimeLimit => Some(format!("\ncompilation took longer than {} s", limits.wall_time.as_secs())),
        Ending::MemoryLimit => {
            Some(format!("\ncompilation used more than {} MiB", limits.memory_bytes / (1024 * 1024)))
        }
        _ => None,
    };
    if let Some(note) = note {
        outcome.stderr.extend_from_slice(note.as_bytes());
    }
    result(language, pb::ExecutionStatus::CompileError, outcome)
}

fn result(language: &Language, status: pb::ExecutionStatus, outcome: PhaseOutcome) -> pb::ExecutionResult {
    let (exit_code, signal) = exit_code_and_signal(outcome.ending);
    pb::ExecutionResult {
        id: String::new(),
        language: language.name.clone(),
        status: status.into(),
        stdout: String::from_utf8_lossy(&outcome.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&outcome.stderr).into_owned(),
        exit_code,
        wall_time_ms: i64::try_from(outcome.wall_time.as_millis()).unwrap_or(i64::MAX),
        peak_memory_bytes: i64::try_from(outcome.peak_memory_bytes).unwrap_or(i64::MAX),
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        created_at_ms: 0,
        signal,
        user_id: String::new(),
        room_id: String::new(),
        file_id: String::new(),
    }
}

/// SIGKILL: what ends a program stopped at a limit.
const KILLED: i32 = 9;

/// The exit code (-1 if the program did not exit by itself) and the signal that ended it (0 if
/// none). bwrap, the program's parent, turns a death by signal N into exit code 128 + N; a
/// program that exits with such a code itself reads the same.
fn exit_code_and_signal(ending: Ending) -> (i32, i32) {
    match ending {
        Ending::Exited { code: Some(code), .. } if (129..=128 + 64).contains(&code) => (code, code - 128),
        Ending::Exited { code: Some(code), .. } => (code, 0),
        Ending::Exited { code: None, signal } => (-1, signal.unwrap_or(KILLED)),
        Ending::TimeLimit | Ending::MemoryLimit | Ending::OutputLimit => (-1, KILLED),
    }
}

/// A run's work directory, removed on the blocking pool when dropped (on an async worker its
/// unmount and removal would hold the worker).
struct RemovedInBackground(Option<crate::sandbox::local::RunDirectory>);

impl Drop for RemovedInBackground {
    fn drop(&mut self) {
        if let Some(directory) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(_) => directory.remove_in_background(),
                Err(_) => drop(directory),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_by_signal_is_told_apart_from_an_exit() {
        assert_eq!(exit_code_and_signal(Ending::Exited { code: Some(0), signal: None }), (0, 0));
        assert_eq!(exit_code_and_signal(Ending::Exited { code: Some(3), signal: None }), (3, 0));
        // SIGSEGV inside bwrap.
        assert_eq!(exit_code_and_signal(Ending::Exited { code: Some(139), signal: None }), (139, 11));
        assert_eq!(exit_code_and_signal(Ending::Exited { code: None, signal: Some(15) }), (-1, 15));
        assert_eq!(exit_code_and_signal(Ending::TimeLimit), (-1, 9));
        assert_eq!(exit_code_and_signal(Ending::MemoryLimit), (-1, 9));
    }
}
