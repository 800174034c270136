//! File ownership between replicas on a real PostgreSQL (127.0.0.1:5432, `make test` starts
//! it): one owner at a time, takeover only from a dead owner, and the fence that keeps a stale
//! owner's writes out of the log.

use std::time::Duration;

use bytes::Bytes;
use codesync_common::db::Database;
use codesync_documents::ownership::{Owner, Ownership};
use codesync_documents::store::{AppendedUpdate, DocumentsStore, Snapshot};

/// A database of its own, dropped afterwards.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    fn create() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let name = format!("codesync_ownership_{}_{port}", std::process::id());
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(sql: &str) {
    let output = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql (PostgreSQL must run on 127.0.0.1:5432; `make test` starts it)");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn update(file_id: &str, epoch: i64, seq: i64) -> AppendedUpdate {
    AppendedUpdate { file_id: file_id.into(), epoch, seq, update_v1: Bytes::from_static(b"\x00\x00") }
}

const FILE: &str = "0190a000-0000-7000-8000-000000000001";

#[tokio::test]
async fn one_owner_at_a_time_and_a_stale_owner_is_fenced() {
    let database = TestDatabase::create();
    let connected = Database::connect(&database.url()).await.unwrap();
    let store = DocumentsStore::new(connected.clone());
    store.migrate().await.unwrap();
    let ttl = Duration::from_secs(30);
    let a = Ownership::start(&connected, "replica-a:1".into(), ttl).await.unwrap();
    let b = Ownership::start(&connected, "replica-b:1".into(), ttl).await.unwrap();

    assert_eq!(a.claim(FILE).await.unwrap(), Owner::Here { epoch: 1 });
    assert_eq!(a.claim(FILE).await.unwrap(), Owner::Here { epoch: 1 }, "claiming again keeps the epoch");
    assert_eq!(b.claim(FILE).await.unwrap(), Owner::Elsewhere { address: "replica-a:1".into() });
    let fence_a = a.fence().await.unwrap();
    let fence_b = b.fence().await.unwrap();
    let fenced = store.write_batch(&[update(FILE, 1, 0)], &[], 0, Some(&fence_a)).await.unwrap();
    assert!(fenced.is_empty(), "the owner appends");
    let fenced = store.write_batch(&[update(FILE, 1, 1)], &[], 0, Some(&fence_b)).await.unwrap();
    assert!(fenced.contains(FILE), "another replica cannot append to a file it does not own");

    // A's lease runs out (as if it were paused): B takes over under a higher epoch.
    psql_in(&database, &format!("UPDATE document_nodes SET expires_at_ms = 0 WHERE node_id = '{fence_a}'"));
    assert_eq!(b.claim(FILE).await.unwrap(), Owner::Here { epoch: 2 });
    let snapshot = Snapshot { file_id: FILE.into(), epoch: 1, covers_seq: 5, state_v1: vec![0, 0] };
    let fenced = store.write_batch(&[update(FILE, 1, 1)], &[snapshot], 0, Some(&fence_a)).await.unwrap();
    assert!(fenced.contains(FILE), "the stale owner's appends and snapshots are refused");
    let fenced = store.write_batch(&[update(FILE, 2, 1)], &[], 0, Some(&fence_b)).await.unwrap();
    assert!(fenced.is_empty(), "the new owner appends");
    let stored = store.load(FILE).await.unwrap();
    assert_eq!(stored.updates.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [0, 1]);
    assert!(stored.snapshot.is_none());

    // A graceful stop hands the file back: the other replica takes it at once.
    b.release_all().await;
    let c = Ownership::start(&connected, "replica-c:1".into(), ttl).await.unwrap();
    assert_eq!(c.claim(FILE).await.unwrap(), Owner::Here { epoch: 3 });
}

#[tokio::test]
async fn replicas_racing_for_a_file_agree_on_one_owner() {
    let database = TestDatabase::create();
    let connected = Database::connect(&database.url()).await.unwrap();
    DocumentsStore::new(connected.clone()).migrate().await.unwrap();
    let mut replicas = Vec::new();
    for index in 0..6 {
        replicas
            .push(Ownership::start(&connected, format!("replica-{index}:1"), Duration::from_secs(30)).await.unwrap());
    }
    for round in 0..20 {
        let file_id = format!("0190a000-0000-7000-8000-{round:012}");
        let claims = futures::future::join_all(replicas.iter().map(|replica| replica.claim(&file_id))).await;
        let owners: Vec<&Owner> = claims.iter().map(|claim| claim.as_ref().unwrap()).collect();
        let here = owners.iter().filter(|owner| matches!(owner, Owner::Here { .. })).count();
        assert_eq!(here, 1, "round {round}: {owners:?}");
        let addresses: std::collections::BTreeSet<&String> = owners
            .iter()
            .filter_map(|owner| match owner {
                Owner::Elsewhere { address } => Some(address),
                Owner::Here { .. } => None,
            })
            .collect();
        assert_eq!(addresses.len(), 1, "everyone else is sent to the same owner: {owners:?}");
    }
}

#[tokio::test]
async fn a_second_documents_process_on_one_sqlite_file_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("codesync.db").display());
    let first = Database::connect(&url).await.unwrap();
    let _held = Ownership::start(&first, "a:1".into(), Duration::from_secs(4)).await.unwrap();
    let second = Database::connect(&url).await.unwrap();
    let refused = Ownership::start(&second, "b:1".into(), Duration::from_secs(4)).await.err().expect("refused");
    assert!(refused.to_string().contains("need PostgreSQL"), "{refused}");
}

fn psql_in(database: &TestDatabase, sql: &str) {
    let output = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &database.name, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
}
