//! Embeds the web app's build (`frontend/dist`, made by `make web`) into the binary, so
//! `codesync run` serves it with no Node.js at run time. Without a build, the binary still
//! compiles and its web page says how to build one (or where `CODESYNC_WEB_DIR` should point).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = manifest_dir.join("../frontend/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    // A new build replaces index.html (its asset names change), so watching it catches every rebuild.
    println!("cargo:rerun-if-changed={}", dist.join("index.html").display());

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();

    let mut generated = String::from(
        "/// The web app's files: (path under dist/, content, strong ETag).\npub static WEB_ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (relative, absolute) in &files {
        let content = std::fs::read(absolute).expect("a file listed in frontend/dist is readable");
        writeln!(
            generated,
            "    ({relative:?}, include_bytes!({absolute:?}), \"\\\"{:016x}\\\"\"),",
            fnv1a(&content),
            absolute = absolute.display().to_string(),
        )
        .expect("writing to a String cannot fail");
    }
    generated.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_assets.rs");
    std::fs::write(out, generated).expect("OUT_DIR is writable");
}

fn collect(root: &Path, directory: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(directory).expect("frontend/dist is readable");
    for entry in entries {
        let path = entry.expect("frontend/dist is readable").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let relative = path.strip_prefix(root).expect("inside dist").to_string_lossy().replace('\\', "/");
            files.push((relative, path));
        }
    }
}

/// A content hash for ETags (not a security boundary: the bytes are public).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}
