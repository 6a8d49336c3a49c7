//! The feed against a MongoDB-wire server of its own, which the tests restart, whose
//! change history they cut short, or which runs as a standalone server: SecantusDB with
//! a storage directory (so it reopens intact), started from the Python of
//! `SWITCHBOARD_TEST_PYTHON`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A SecantusDB server on a fixed port and directory, killed on drop.
struct OwnServer {
    python: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    extra: Vec<&'static str>,
    child: Option<Child>,
}

impl OwnServer {
    /// `None` (skip) without `SWITCHBOARD_TEST_PYTHON`, except in CI.
    #[allow(clippy::disallowed_methods)]
    fn start(extra: &[&'static str]) -> Option<OwnServer> {
        let python = std::env::var("SWITCHBOARD_TEST_PYTHON").unwrap_or_default();
        if python.is_empty() {
            let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
            assert!(
                !in_ci,
                "these tests must run in CI: set SWITCHBOARD_TEST_PYTHON"
            );
            eprintln!("note: SWITCHBOARD_TEST_PYTHON is not set; skipping a database restart test");
            return None;
        }
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut server = OwnServer {
            python,
            addr,
            dir: tempfile::tempdir().expect("a temporary directory"),
            extra: extra.to_vec(),
            child: None,
        };
        server.run();
        Some(server)
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("secantus.log"))
            .expect("a log file");
        let child = Command::new(&self.python)
            .args(["-m", "secantus", "--host", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .arg("--storage-path")
            .arg(self.dir.path().join("data"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("start SecantusDB");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "SecantusDB did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and data.
    fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn config(&self) -> StoreConfig {
        StoreConfig::Mongo {
            uri: crate::config::Secret::new(format!("mongodb://{}", self.addr)),
            database: "switchboard".into(),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_and_resuming_ids_outlive_a_database_restart() {
    // Durable commits, as MongoDB's journal gives: a server that acknowledged writes it
    // then lost in a crash has lost data no feed can bring back (SecantusDB without it
    // would even reuse the positions of the lost writes, and the resumed change streams
    // would skip that many new events).
    let Some(mut server) = OwnServer::start(&["--sync-on-commit"]) else {
        return;
    };
    let config = server.config();
    let a = replica(&config).await;
    let b = replica(&config).await;
    let mut on_b = b.watch(EventFilter::default(), "").await.unwrap();
    for seq in 1..=3 {
        a.publish(item_event("call", seq)).await;
    }
    let mut ids = Vec::new();
    for seq in 1..=3 {
        let event = next_event(&mut on_b).await;
        assert_eq!(seq_of(&event), seq);
        ids.push(event.id.clone());
    }

    server.restart();
    for seq in 4..=6 {
        a.publish(item_event("call", seq)).await;
    }
    // The live watcher carries on where it was: its replica reopened its change stream
    // after the last event it had read.
    for seq in 4..=6 {
        assert_eq!(seq_of(&*next_event(&mut on_b).await), seq);
    }
    assert!(is_idle(&mut on_b).await, "nothing repeated");

    // An id from before the restart resumes on a replica started after it.
    let c = replica(&config).await;
    let mut resumed = c.watch(EventFilter::default(), &ids[0]).await.unwrap();
    for seq in 2..=6 {
        assert_eq!(seq_of(&*next_event(&mut resumed).await), seq);
    }
    assert!(is_idle(&mut resumed).await, "nothing repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_the_change_history_no_longer_holds_is_out_of_range() {
    let Some(server) = OwnServer::start(&["--oplog-max-entries", "20"]) else {
        return;
    };
    let config = server.config();
    let a = replica(&config).await;
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    a.publish(item_event("call", 1)).await;
    let first = next_event(&mut on_a).await.id.clone();
    for seq in 2..=60 {
        a.publish(item_event("call", seq)).await;
    }
    let StoreConfig::Mongo { uri, .. } = &config else {
        unreachable!()
    };
    let client = mongodb::Client::with_uri_str(uri.expose()).await.unwrap();
    client
        .database("admin")
        .run_command(mongodb::bson::doc! { "secantusAdmin.pruneOplog": 1 })
        .await
        .expect("SecantusDB prunes its oplog on request");

    // A replica that never saw the event must ask the database, which no longer has it.
    let late = replica(&config).await;
    let err = late
        .watch(EventFilter::default(), &first)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WatchError::Gone(m) if m.contains("no longer reaches back")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_leaves_each_replica_its_own_events() {
    let Some(server) = OwnServer::start(&["--standalone"]) else {
        return;
    };
    let config = server.config();
    let metrics = Arc::new(Metrics::new());
    let a = EventBus::open(&config, RETENTION, metrics.clone())
        .await
        .expect("a standalone server is no reason to stop");
    assert!(!a.is_cluster_wide());
    assert!(metrics
        .encode()
        .unwrap()
        .contains("switchboard_control_plane_event_feed_cluster_wide 0"));
    // The replica's own events still reach its watchers, with local ids.
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    a.publish(item_event("call", 1)).await;
    let event = next_event(&mut on_a).await;
    assert!(matches!(
        EventId::decode(&event.id),
        Ok(EventId::Local { .. })
    ));
}
