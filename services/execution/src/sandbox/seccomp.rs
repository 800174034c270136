//! The seccomp filter of the `local` sandbox: the system calls in `seccomp.json` (host
//! administration, mounts, namespaces, tracing, kernel attack surface, sockets other than local
//! and IP) fail with EPERM; everything else is allowed. bwrap installs it (`--seccomp FD`) right
//! before it starts the program, after its own set-up needed some of those calls.

use std::path::{Path, PathBuf};

use super::SandboxError;

const POLICY: &str = include_str!("../../seccomp.json");

/// Compiles the policy for this machine's architecture into the raw BPF program bwrap reads:
/// `struct sock_filter` entries (u16 code, u8 jt, u8 jf, u32 k) in native byte order.
pub fn compile() -> Result<Vec<u8>, SandboxError> {
    let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|error| SandboxError::Setup(format!("no seccomp filter for {}: {error}", std::env::consts::ARCH)))?;
    let mut programs = seccompiler::compile_from_json(POLICY.as_bytes(), arch)
        .map_err(|error| SandboxError::Setup(format!("the seccomp policy does not compile: {error}")))?;
    let program = programs
        .remove("sandbox")
        .ok_or_else(|| SandboxError::Setup("the seccomp policy has no \"sandbox\" filter".into()))?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

/// Writes the program where the root shell at the start of each run opens it (root only: the
/// sandbox uid never needs to read it, bwrap gets it as an open descriptor).
pub fn install(runs_dir: &Path) -> Result<PathBuf, SandboxError> {
    let path = runs_dir.join(".seccomp.bpf");
    let program = compile()?;
    // Unique per call: sandboxes set up at once (tests, or processes sharing the directory) must
    // not write the same temporary file.
    static INSTALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let install = INSTALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = runs_dir.join(format!(".seccomp.bpf.{}.{install}", std::process::id()));
    std::fs::write(&temporary, &program)?;
    std::fs::set_permissions(&temporary, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // A rename replaces whatever is there (even a planted symlink) without following it.
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_compiles_to_whole_bpf_instructions() {
        let program = super::compile().unwrap();
        assert!(!program.is_empty() && program.len().is_multiple_of(8), "{} bytes", program.len());
    }
}
