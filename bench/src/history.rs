//! `codesync-bench history`: what versions cost to store. Each editing trace is replayed and a
//! version is stored every N edits, the way the history service stores them (a delta against
//! the version before, in full every few versions), into a fresh SQLite database; then the
//! bytes per version are compared with a full copy per version, and reading versions back is
//! timed and checked against the replay.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use codesync_common::db::Database;
use codesync_history::store::{self, HistoryStore, Inserted, NewVersion};
use codesync_proto::history::v1 as pb;
use yrs::{GetString, Transact};

use crate::trace::Trace;

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Sequential editing traces (gzip'd JSON). Repeatable or comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = vec![
            "../shared/data/editing-traces/automerge-paper.json.gz".to_string(),
            "../shared/data/editing-traces/rustcode.json.gz".to_string(),
        ]
    )]
    trace: Vec<String>,
    /// Edits between two versions.
    #[arg(long, default_value_t = 1000)]
    every: usize,
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.every > 0, "--every must be at least 1");
    println!("history storage: a version every {} edits, stored as the history service stores them", args.every);
    println!(
        "{:<22} {:>8} {:>10} {:>14} {:>14} {:>8} {:>12} {:>12}",
        "trace", "versions", "final KiB", "full B/version", "stored B/ver", "ratio", "read newest", "read oldest"
    );
    for path in &args.trace {
        let path = PathBuf::from(path);
        let trace = Trace::load(&path)?;
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("trace").trim_end_matches(".json.gz");
        measure(name, &trace, args.every).await?;
    }
    Ok(())
}

async fn measure(name: &str, trace: &Trace, every: usize) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let url = format!("sqlite://{}", directory.path().join("history.db").display());
    let history = HistoryStore::new(Database::connect(&url).await?);
    // The bench stores versions only: nothing is announced.
    let bus = codesync_common::bus::InProcessBus::default();
    history.migrate().await?;
    let file_id = codesync_common::new_id();
    // Trace positions count UTF-16 units (the trace loader refuses astral characters).
    let document =
        yrs::Doc::with_options(yrs::Options { offset_kind: yrs::OffsetKind::Utf16, ..yrs::Options::default() });
    let text = document.get_or_insert_text("content");
    let mut previous = String::new();
    let mut contents: Vec<String> = Vec::new();
    let mut edits_since_version = 0;
    let transactions = trace.txns.len();
    for (index, transaction) in trace.txns.iter().enumerate() {
        {
            let mut writing = document.transact_mut();
            transaction.apply(&text, &mut writing);
        }
        edits_since_version += transaction.patches.len();
        if edits_since_version < every && index + 1 < transactions {
            continue;
        }
        edits_since_version = 0;
        let content = text.get_string(&document.transact());
        let number = i64::try_from(contents.len()).unwrap_or(i64::MAX) + 1;
        let encoded = store::encode(number, &previous, &content);
        let version = pb::Version {
            id: codesync_common::new_id(),
            file_id: file_id.clone(),
            room_id: "bench".into(),
            number,
            kind: pb::VersionKind::Checkpoint.into(),
            lines_added: encoded.lines_added,
            lines_removed: encoded.lines_removed,
            size_bytes: i64::try_from(content.len()).unwrap_or(i64::MAX),
            created_at_ms: codesync_common::now_ms(),
            ..pb::Version::default()
        };
        let mut announces_nothing = codesync_common::bus::Staged::new(&bus, Vec::new());
        let new_version = NewVersion { version: &version, encoding: encoded.encoding, body: encoded.body };
        let inserted = history.insert(new_version, &mut announces_nothing).await?;
        anyhow::ensure!(inserted == Inserted::Done, "version {number} was not stored");
        previous = content.clone();
        contents.push(content);
    }
    anyhow::ensure!(previous == trace.end_content, "{name}: the replay did not end with the trace's final text");
    let figures = history.storage(&file_id).await?;
    let versions = figures.versions.max(1);
    // Reading back: the newest (up to FULL_EVERY - 1 deltas) and the first; and every version
    // must come back as it was.
    let started = Instant::now();
    let newest = history.content(&file_id, figures.versions).await?;
    let read_newest = started.elapsed();
    let started = Instant::now();
    let oldest = history.content(&file_id, 1).await?;
    let read_oldest = started.elapsed();
    anyhow::ensure!(newest == previous && oldest == contents[0], "{name}: a version came back different");
    for (index, expected) in contents.iter().enumerate() {
        let number = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        let stored = history.content(&file_id, number).await.with_context(|| format!("reading version {number}"))?;
        anyhow::ensure!(stored == *expected, "{name}: version {number} came back different");
    }
    println!(
        "{:<22} {:>8} {:>10.1} {:>14} {:>14} {:>7.1}% {:>9.2} ms {:>9.2} ms",
        name,
        figures.versions,
        trace.end_content.len() as f64 / 1024.0,
        figures.content_bytes / versions,
        figures.stored_bytes / versions,
        100.0 * figures.stored_bytes as f64 / figures.content_bytes.max(1) as f64,
        read_newest.as_secs_f64() * 1000.0,
        read_oldest.as_secs_f64() * 1000.0,
    );
    Ok(())
}
