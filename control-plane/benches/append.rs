//! Conversation-append throughput and latency through the real call channel.
//!
//! What it measures: the control plane runs in-process (`serve_with_store` on a
//! `127.0.0.1:0` listener) and is driven only through the generated gRPC clients. One
//! agent and `--calls` call sessions (default 100) are created; each call opens
//! `CallChannelService.Connect`, says `Hello`, receives its `CallConfig`, and then
//! streams conversation items the way a media sidecar does: batches of `--batch` items
//! (default 5) with contiguous seq numbers, at most `--window` unacknowledged batches
//! in flight (default 4), until it has sent `--items-per-call` items (default 2,000,
//! so 200,000 items per store). All calls stream at once, over one HTTP/2 connection
//! as a sidecar's calls share one. A batch's latency runs from handing it to the
//! stream to the `Ack` whose `stored_through_seq` covers its last item.
//!
//! Printed per store: calls, items, elapsed time of the streaming phase (set-up
//! excluded), items/s, batch-ack latency p50/p99/max, and for MongoDB the database
//! round trips spent by appends (from `MongoStore::append_round_trips`) and items per
//! round trip. At the end a few sessions are read back with `GetCallSession` and must
//! hold exactly seq 1..=items-per-call: nothing lost, nothing doubled. Timings are
//! reported, never asserted.
//!
//! The embedded store runs in a temporary directory. MongoDB runs when a URI is given
//! with `--mongodb URI` or `SWITCHBOARD_TEST_MONGODB_URI`, on a fresh database that is
//! dropped afterwards; otherwise a note says it was skipped.
//!
//! ```text
//! cargo bench -p switchboard-control-plane --bench append
//! cargo bench -p switchboard-control-plane --bench append -- --mongodb mongodb://127.0.0.1:PORT
//! cargo bench -p switchboard-control-plane --bench append -- --calls 20 --items-per-call 500 --batch 10 --window 2
//! ```
//!
//! # Figures
//!
//! Measured 2026-11-28 on the 2-core development machine, where the client, the
//! control plane and the store share both cores (and other builds ran beside them).
//! Targets: the embedded store sustains at least 20,000 items/s; appends to MongoDB
//! are batched, several items per round trip, so the database is the limit.
//!
//! Embedded store, defaults (100 calls x 2,000 items, batches of 5, window 4); runs
//! gave 51,000-75,000 items/s with p99 59-76 ms. A typical one:
//!
//! ```text
//! calls               100
//! items total         200000
//! elapsed             2.65 s
//! throughput          75434 items/s
//! batch ack latency   p50 18.7 ms, p99 58.9 ms, max 63.6 ms
//! commits             393 (508.91 items each)
//! verified            3 sessions hold exactly seq 1..=2000
//! ```
//!
//! The latency is mostly queueing by construction (100 calls x 4 batches in flight);
//! every commit carries the writes of all calls that were waiting (group commit).
//!
//! With 1,000 calls (`--calls 1000 --items-per-call 200`), later the same day:
//!
//! ```text
//! calls               1000
//! items total         200000
//! elapsed             1.42 s
//! throughput          140482 items/s
//! batch ack latency   p50 133.4 ms, p99 166.3 ms, max 305.2 ms
//! commits             1156 (173.01 items each)
//! verified            3 sessions hold exactly seq 1..=200
//! ```
//!
//! MongoDB through the SecantusDB test server (a single-threaded Python server that
//! keeps one core busy; fresh for each run). Items are documents of
//! `conversation_items`: a batch that continues the log is one `insertMany` of its
//! items and one `update_one` advancing the session's `lastSeq`, and the call stream
//! folds the batches already waiting into one append, so with a window of 4 each
//! append carries 20 items in two round trips. Measured 2026-12-07 against the
//! layout before it (the conversation as an array inside the session document, one
//! `$push` per append), both binaries built from their commits and run back to back
//! on the same shared 2-core machine, each on a fresh server:
//!
//! ```text
//! calls x items    conversation inside the session     conversation_items
//! 100 x 100        2.88 s    3468 items/s  p99  769 ms    6.35 s   1575 items/s  p99  1432 ms
//! 1000 x 20        5.64 s    3548 items/s  p99 5566 ms   15.12 s   1323 items/s  p99 14934 ms
//! 100 x 500       44.14 s    1133 items/s  p99 3396 ms   33.41 s   1497 items/s  p99  1652 ms
//! 20 x 2000      122.90 s     325 items/s  p99 2693 ms   23.14 s   1728 items/s  p99   336 ms
//! ```
//!
//! Every run read its sessions back whole. Per append, the old layout made one round
//! trip (20 items each) and the new one makes two (10 items each).
//!
//! What the figures say: the cost of an append no longer depends on the length of the
//! call. In the old layout every `$push` rewrote a document that grew with the
//! conversation, so throughput fell from 3,500 items/s at 100 items per call to 325 at
//! 2,000 (and a call stopped storing items at the 16 MB document limit); now it stays
//! at 1,300-1,700 items/s whatever the length, 5.3 times the old figure at 2,000 items
//! per call. Short calls pay for it on this server: 20 small documents under two
//! indexes cost it 6.8 ms to insert (2.6 ms without the `(callId, seq)` index; a `$push`
//! of 20 items into a short array costs 1.5 ms, and the `lastSeq` update 1.8 ms,
//! measured one at a time with pymongo), which halves throughput below ~300 items per
//! call. The index is what makes a re-sent item a no-op and a page read an index scan
//! (SecantusDB scans the whole collection for a range on `_id`), so it stays. These
//! figures measure the Python test server, whose index maintenance dominates, not
//! MongoDB: rerun against a real server for throughput.
//!
//! Before the call stream folded waiting batches together, the old layout took one
//! round trip per batch (5.00 items each) and reached 1056 and 250 items/s at 100 x
//! 100 and 100 x 500 (2026-11-28).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context as _};
use clap::Parser;
use switchboard_control_plane::config::Config;
use switchboard_control_plane::store::{EmbeddedStore, MongoStore, Store};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::call_channel_service_client::CallChannelServiceClient;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Barrier};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Sessions read back at the end to check nothing was lost.
const VERIFIED_SESSIONS: usize = 3;

#[derive(Debug, Clone, Parser)]
#[command(about = "Conversation-append throughput and latency of the control plane")]
struct Args {
    /// Concurrent calls.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Items each call streams.
    #[arg(long, default_value_t = 2_000)]
    items_per_call: u64,
    /// Items per `ConversationBatch`.
    #[arg(long, default_value_t = 5)]
    batch: u64,
    /// Unacknowledged batches a call keeps in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Also run against MongoDB at this URI [default: $SWITCHBOARD_TEST_MONGODB_URI].
    #[arg(long)]
    mongodb: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(
        args.items_per_call > 0,
        "--items-per-call must be at least 1"
    );
    ensure!(args.batch > 0, "--batch must be at least 1");
    ensure!(args.window > 0, "--window must be at least 1");
    if args.mongodb.is_none() {
        args.mongodb = mongodb_uri_from_env();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(run(args))
}

/// The test server's URI, read here because a benchmark has no `Config` of its own.
#[allow(clippy::disallowed_methods)]
fn mongodb_uri_from_env() -> Option<String> {
    std::env::var("SWITCHBOARD_TEST_MONGODB_URI")
        .ok()
        .filter(|uri| !uri.trim().is_empty())
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "append benchmark: {} calls x {} items, batches of {}, window {} ({} worker threads)",
        args.calls,
        args.items_per_call,
        args.batch,
        args.window,
        std::thread::available_parallelism().map_or(1, usize::from),
    );

    let dir = tempfile::tempdir().context("temporary directory")?;
    let embedded = Arc::new(EmbeddedStore::open(dir.path()).context("open the embedded store")?);
    let before = embedded.commits();
    let report = bench_store(&args, embedded.clone(), dir.path()).await?;
    let commits = embedded.commits() - before;
    report.print("embedded store (redb, group commit)", ("commits", commits));

    match &args.mongodb {
        None => println!(
            "\nnote: MongoDB skipped; pass `-- --mongodb URI` or set SWITCHBOARD_TEST_MONGODB_URI"
        ),
        Some(uri) => {
            let database = format!("sb_bench_{}", uuid::Uuid::now_v7().simple());
            let mongo = Arc::new(
                MongoStore::connect(uri, &database)
                    .await
                    .with_context(|| format!("connect to MongoDB database {database}"))?,
            );
            let before = mongo.append_round_trips();
            let result = bench_store(&args, mongo.clone(), dir.path()).await;
            let round_trips = mongo.append_round_trips() - before;
            drop(mongo);
            drop_database(uri, &database).await;
            result?.print(
                &format!("MongoDB ({database})"),
                ("append round trips", round_trips),
            );
        }
    }
    Ok(())
}

/// Removes the benchmark's database; a failure only earns a warning.
async fn drop_database(uri: &str, database: &str) {
    let dropped = async {
        let client = mongodb::Client::with_uri_str(uri).await?;
        client.database(database).drop().await
    }
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop MongoDB database {database}: {e}");
    }
}

/// What one store did.
#[derive(Debug)]
struct Report {
    calls: usize,
    items: u64,
    elapsed: Duration,
    /// Send-to-ack time of every batch, sorted.
    latencies: Vec<Duration>,
    verified: usize,
    items_per_call: u64,
}

impl Report {
    /// `writes` names what one database write is for this store, and how many there
    /// were during the run.
    fn print(&self, title: &str, writes: (&str, u64)) {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.items as f64 / secs;
        println!("\n{title}");
        println!("  calls               {}", self.calls);
        println!("  items total         {}", self.items);
        println!("  elapsed             {secs:.2} s");
        println!("  throughput          {rate:.0} items/s");
        println!(
            "  batch ack latency   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        );
        let (what, count) = writes;
        let per_write = self.items as f64 / count.max(1) as f64;
        println!("  {what:<19} {count} ({per_write:.2} items each)");
        println!(
            "  verified            {} sessions hold exactly seq 1..={}",
            self.verified, self.items_per_call
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Serves `store`, streams every call through it, checks the result, stops the server.
async fn bench_store(
    args: &Args,
    store: Arc<dyn Store>,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(switchboard_control_plane::serve_with_store(
        Config::for_test(dir.to_path_buf()),
        store,
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let result = drive(args, &format!("http://{addr}")).await;

    let _ = stop.send(());
    server
        .await
        .context("server task")?
        .context("control plane")?;
    result
}

/// The client side: set-up, the timed streaming phase, verification.
async fn drive(args: &Args, endpoint: &str) -> anyhow::Result<Report> {
    let channel = Channel::from_shared(endpoint.to_owned())?
        .connect()
        .await
        .context("connect to the control plane")?;

    let agent = AgentSettingsServiceClient::new(channel.clone())
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(pb::AgentSettings {
                name: "Append benchmark".into(),
                instructions: "You are a helpful receptionist. The caller is {{name}}.".into(),
                greeting: "Hello, how can I help?".into(),
                ..Default::default()
            }),
        })
        .await
        .context("create the agent")?
        .into_inner();

    let mut sessions = CallSessionServiceClient::new(channel.clone());
    let mut call_ids = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let session = sessions
            .create_call_session(pb::CreateCallSessionRequest {
                agent_id: agent.id.clone(),
                direction: pb::CallDirection::Outbound.into(),
                from_number: "+815011110000".into(),
                to_number: format!("+8190{i:08}"),
                ..Default::default()
            })
            .await
            .context("create a call session")?
            .into_inner();
        call_ids.push(session.id);
    }

    // Every call connects first; the clock starts once all are ready to stream.
    let ready = Arc::new(Barrier::new(args.calls + 1));
    let mut calls = Vec::with_capacity(args.calls);
    for call_id in &call_ids {
        calls.push(tokio::spawn(stream_call(
            channel.clone(),
            call_id.clone(),
            args.clone(),
            ready.clone(),
        )));
    }
    ready.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for call in calls {
        latencies.extend(call.await.context("call task")??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let verified = verify(&sessions, &call_ids, args.items_per_call).await?;
    Ok(Report {
        calls: args.calls,
        items: args.items_per_call * args.calls as u64,
        elapsed,
        latencies,
        verified,
        items_per_call: args.items_per_call,
    })
}

/// One call as a sidecar streams it; returns each batch's send-to-ack latency.
async fn stream_call(
    channel: Channel,
    call_id: String,
    args: Args,
    ready: Arc<Barrier>,
) -> anyhow::Result<Vec<Duration>> {
    // Waits at the barrier even on failure, so the others are not held forever.
    let opened = open_call(channel, &call_id, args.window).await;
    ready.wait().await;
    let (requests, mut responses) = opened?;

    let mut latencies = Vec::new();
    // (last seq of the batch, when it was sent), oldest first.
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(args.window);
    let mut next_seq = 1;
    loop {
        while in_flight.len() < args.window && next_seq <= args.items_per_call {
            let last_seq = (next_seq + args.batch - 1).min(args.items_per_call);
            let items = (next_seq..=last_seq).map(item).collect();
            let message = In::Items(pb::ConversationBatch { items });
            in_flight.push_back((last_seq, Instant::now()));
            requests
                .send(pb::ConnectRequest {
                    message: Some(message),
                })
                .await
                .with_context(|| format!("call {call_id}: request stream closed"))?;
            next_seq = last_seq + 1;
        }
        if in_flight.is_empty() {
            break;
        }
        let response = responses
            .message()
            .await
            .with_context(|| format!("call {call_id}: stream failed"))?;
        match response.and_then(|r| r.message) {
            Some(Out::Ack(ack)) => {
                let acked = Instant::now();
                while let Some(&(last_seq, sent)) = in_flight.front() {
                    if last_seq > ack.stored_through_seq {
                        break;
                    }
                    latencies.push(acked - sent);
                    in_flight.pop_front();
                }
            }
            Some(Out::Nack(nack)) => bail!(
                "call {call_id}: batch refused, expected seq {}: {}",
                nack.expected_seq,
                nack.reason
            ),
            Some(_) => {}
            None => bail!("call {call_id}: the control plane closed the stream"),
        }
    }
    // Closing the request stream ends the call's stream on both sides.
    drop(requests);
    Ok(latencies)
}

type Requests = mpsc::Sender<pb::ConnectRequest>;
type Responses = tonic::Streaming<pb::ConnectResponse>;

/// Opens the call's stream: `Hello`, then its `CallConfig`.
async fn open_call(
    channel: Channel,
    call_id: &str,
    window: usize,
) -> anyhow::Result<(Requests, Responses)> {
    let (requests, outgoing) = mpsc::channel(window + 1);
    let suffix = uuid::Uuid::now_v7().simple();
    requests
        .send(pb::ConnectRequest {
            message: Some(In::Hello(pb::Hello {
                call_id: call_id.to_owned(),
                stream_sid: format!("MZ{suffix}"),
                call_sid: format!("CA{suffix}"),
                sidecar_id: "append-bench".into(),
                resume: false,
            })),
        })
        .await?;
    let mut responses = CallChannelServiceClient::new(channel)
        .connect(ReceiverStream::new(outgoing))
        .await
        .with_context(|| format!("call {call_id}: connect"))?
        .into_inner();
    match responses.message().await?.and_then(|r| r.message) {
        Some(Out::Config(config)) if config.stored_through_seq == 0 => {}
        Some(Out::Config(config)) => bail!(
            "call {call_id}: a fresh call has items through seq {}",
            config.stored_through_seq
        ),
        other => bail!("call {call_id}: expected CallConfig, got {other:?}"),
    }
    Ok((requests, responses))
}

/// A transcript line as the sidecar would send it.
fn item(seq: u64) -> pb::ConversationItem {
    let (role, text) = if seq % 2 == 1 {
        (
            pb::ConversationRole::User,
            "I'd like to move my appointment on Thursday to the following week, if possible.",
        )
    } else {
        (
            pb::ConversationRole::Assistant,
            "Of course. I can offer Tuesday at ten or Wednesday at three; which suits you better?",
        )
    };
    pb::ConversationItem {
        seq,
        role: role.into(),
        kind: pb::ConversationItemKind::Message.into(),
        text: text.into(),
        provider_item_id: format!("item_{seq:012}"),
        payload_json: String::new(),
        created_at: Some(SystemTime::now().into()),
    }
}

/// Reads a few sessions back: each must hold exactly seq 1..=`items_per_call`.
async fn verify(
    sessions: &CallSessionServiceClient<Channel>,
    call_ids: &[String],
    items_per_call: u64,
) -> anyhow::Result<usize> {
    let last = call_ids.len() - 1;
    let mut picks = vec![0, last / 2, last];
    picks.dedup();
    picks.truncate(VERIFIED_SESSIONS);
    let mut sessions = sessions.clone().max_decoding_message_size(usize::MAX);
    for &i in &picks {
        let id = &call_ids[i];
        let session = sessions
            .get_call_session(pb::GetCallSessionRequest { id: id.clone() })
            .await
            .with_context(|| format!("read call {id}"))?
            .into_inner();
        let seqs: Vec<u64> = session.conversation.iter().map(|item| item.seq).collect();
        let expected: Vec<u64> = (1..=items_per_call).collect();
        ensure!(
            seqs == expected && session.last_seq == items_per_call,
            "call {id}: {} items stored (last seq {}), expected exactly seq 1..={items_per_call}",
            seqs.len(),
            session.last_seq
        );
    }
    Ok(picks.len())
}
