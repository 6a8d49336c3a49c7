//! Barge-in through the real services: the assistant is speaking a long answer, the caller
//! talks over it, and the sidecar sends Twilio `clear`, tells OpenAI with
//! `conversation.item.truncate` exactly how much of the answer the caller heard (from the
//! marks Twilio echoed, not from what was sent), drops whatever is left of the interrupted
//! answer, and stores the assistant's item flagged as interrupted at the same point.
//!
//! Everything is checked from the simulators' records: the Twilio simulator plays the audio
//! in real time and records what the caller heard, every mark it echoed (and whether a
//! `clear` flushed it) and every `clear`; the OpenAI simulator records the truncations and
//! cancellations it received.
//!
//! The sidecar names its marks `g{generation}:{item_id}:{end_ms}` (`switchboard_realtime::
//! barge_in::MarkName`): `end_ms` is the item's audio sent up to and including the chunk
//! before the mark. The tests read item ids and positions from those names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{
    AudioPace, OpenAiSim, Reply, Script, SessionRecord, SimConfig, Turn,
};
use switchboard_sim::twilio::{
    AudioSource, CallRecord, CallSpec, Caller, MarkEcho, StreamRecord, TalkScript,
};
use switchboard_tests::{Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

/// Length of each audio delta the OpenAI simulator sends: the granularity of the marks.
const CHUNK_MS: u64 = 100;
/// The interrupted answer's audio.
const LONG_ANSWER_MS: u64 = 6_000;
/// The answer to the caller's interruption.
const SHORT_ANSWER_MS: u64 = 1_500;
/// µ-law: 8 bytes per ms.
const BYTES_PER_MS: u64 = 8;

const LONG_ANSWER: &str = "Of course. Orders usually ship within two business days, and \
                           you will get an email with the tracking number as soon as it does.";
const SHORT_ANSWER: &str = "Sure, go ahead.";

// --- helpers ---

fn agent(number: &str) -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Barge-in".into(),
        phone_numbers: vec![number.into()],
        voice: "marin".into(),
        instructions: "You answer the phone for Acme.".into(),
        ..Default::default()
    }
}

/// The caller asks something; the assistant answers at length; the caller's interruption
/// gets a short answer.
fn script() -> Script {
    let turn = |caller: &str, text: &str, audio_ms: u64| Turn {
        caller: caller.into(),
        reply: Some(Reply {
            text: text.into(),
            audio_ms: Some(audio_ms),
        }),
        function_call: None,
        after_call: None,
    };
    Script {
        turns: vec![
            turn("How long does shipping take?", LONG_ANSWER, LONG_ANSWER_MS),
            turn("Sorry, one more thing.", SHORT_ANSWER, SHORT_ANSWER_MS),
        ],
        ..Script::default()
    }
}

/// The caller speaks at once (~2.4 s, so the long answer starts ~3 s in), talks over the
/// answer at 5 s (about 2 s into it, well before its 6 s end), and hangs up once the short
/// answer to the interruption has played.
fn caller_script() -> TalkScript {
    TalkScript::saying(AudioSource::hello_en())
        .say_at(Duration::from_millis(5_000), AudioSource::hello_en())
        .hang_up_after(Duration::from_millis(12_000))
}

/// A control plane and sidecar talking to an OpenAI simulator that sends its audio at `pace`,
/// with an agent on `number`.
async fn start(pace: AudioPace, number: &str) -> (OpenAiSim, Harness, String) {
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        audio_pace: pace,
        chunk_ms: CHUNK_MS as u32,
        ..SimConfig::for_test()
    })
    .await;
    // The Realtime leg runs as in production: wss://, a private CA's certificate, trusted
    // through SWITCHBOARD_OPENAI_CA_FILE.
    assert!(
        openai.base_url().starts_with("wss://"),
        "{}",
        openai.base_url()
    );
    let harness = Harness::start(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        None,
    )
    .await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent(number)),
        })
        .await
        .unwrap()
        .into_inner();
    (openai, harness, created.id)
}

/// Places the call to `number` and waits for it to end.
async fn call(harness: &Harness, number: &str) -> CallRecord {
    let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        .with_script(caller_script());
    spec.to = number.into();
    Caller::start(spec).finished().await
}

/// The call's stored session once it is completed and `ready` holds.
async fn completed_session(
    harness: &Harness,
    agent_id: &str,
    ready: impl Fn(&pb::CallSession) -> bool,
) -> pb::CallSession {
    let found = harness
        .agent_session_where(agent_id, Duration::from_secs(15), |session| {
            session.status == pb::CallStatus::Completed as i32 && ready(session)
        })
        .await;
    found.unwrap_or_else(|| panic!("the call was not stored as expected\n{}", harness.logs()))
}

/// A mark name of the sidecar: `g{generation}:{item_id}:{end_ms}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark<'a> {
    generation: u32,
    item_id: &'a str,
    end_ms: u64,
}

fn parse_mark(name: &str) -> Mark<'_> {
    let parsed = (|| {
        let rest = name.strip_prefix('g')?;
        let (generation, rest) = rest.split_once(':')?;
        let (item_id, end_ms) = rest.rsplit_once(':')?;
        Some(Mark {
            generation: generation.parse().ok()?,
            item_id,
            end_ms: end_ms.parse().ok()?,
        })
    })();
    parsed.unwrap_or_else(|| panic!("not a mark of the sidecar: {name:?}"))
}

/// Audio per `(generation, item)` relayed in the marks `names`, in bytes: the highest
/// `end_ms` of each, since every chunk is followed by a mark carrying the item's running
/// total.
fn bytes_per_item<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<(u32, String), u64> {
    let mut items = BTreeMap::new();
    for mark in names.map(parse_mark) {
        let key = (mark.generation, mark.item_id.to_owned());
        let bytes = items.entry(key).or_insert(0);
        *bytes = (*bytes).max(mark.end_ms * BYTES_PER_MS);
    }
    items
}

/// The one barge-in of a call, as the caller's side saw it.
#[derive(Debug)]
struct Cut {
    /// The assistant item that was playing when the caller barged in.
    item_id: String,
    /// Audio of that item relayed before the `clear`, ms.
    sent_ms: u64,
    /// Audio of that item the caller actually heard before the `clear`, ms (exact: the
    /// Twilio simulator plays in real time and counts every byte).
    heard_ms: u64,
    /// The item's audio confirmed as played by the echoed marks before the `clear`, ms.
    echoed_ms: u64,
    /// Audio relayed after the `clear`, bytes, per `(generation, item)`.
    sent_after: BTreeMap<(u32, String), u64>,
}

/// Reads the barge-in from the stream record and checks what must hold on Twilio's side:
/// one `clear`, which flushed the pending marks of the playing item (and only those), every
/// byte relayed was followed by a mark, and everything relayed after the `clear` was heard
/// or is still queued.
fn the_cut(stream: &StreamRecord) -> Cut {
    assert!(
        stream.warnings.is_empty(),
        "the sidecar sent what Twilio accepts: {:?}",
        stream.warnings
    );
    assert_eq!(stream.clears.len(), 1, "one clear: {:?}", stream.clears);
    assert_eq!(stream.received.clears, 1);
    let clear = &stream.clears[0];
    assert!(
        clear.dropped_bytes > 0 && clear.flushed_marks > 0,
        "the clear cut audio that was still queued: {clear:?}"
    );

    // Twilio echoes marks in the order they came; a `clear` echoes every pending one at once.
    // So the marks echoed before the flushed ones came before the clear, and the marks
    // echoed after them (or still unechoed at the end) were sent after it.
    let flushed: Vec<&MarkEcho> = stream.marks.iter().filter(|m| m.by_clear).collect();
    assert_eq!(flushed.len(), clear.flushed_marks);
    let first_flushed = stream
        .marks
        .iter()
        .position(|m| m.by_clear)
        .expect("flushed marks");
    let last_flushed = first_flushed + flushed.len() - 1;
    assert!(
        stream.marks[first_flushed..=last_flushed]
            .iter()
            .all(|m| m.by_clear),
        "the clear echoed its marks at once: {:?}",
        stream.marks
    );
    let before = &stream.marks[..first_flushed];
    let after = &stream.marks[last_flushed + 1..];

    let item_id = parse_mark(&flushed[0].name).item_id.to_owned();
    assert!(
        flushed
            .iter()
            .all(|m| parse_mark(&m.name).item_id == item_id),
        "only the playing item was queued: {flushed:?}"
    );
    let of_item = |m: &&MarkEcho| parse_mark(&m.name).item_id == item_id;
    let played: Vec<&MarkEcho> = before.iter().filter(of_item).collect();
    let last_played = played
        .last()
        .unwrap_or_else(|| panic!("some of the item played before the clear: {before:?}"));
    let echoed_ms = parse_mark(&last_played.name).end_ms;
    // A mark is echoed the moment its audio has played, so the caller had heard exactly
    // `heard_bytes - end_ms·8` bytes before this item started.
    let heard_before_item = last_played.heard_bytes - echoed_ms * BYTES_PER_MS;
    // Flushed marks are echoed at the clear: `heard_bytes` is what was heard by then.
    let heard_at_clear = flushed[0].heard_bytes;
    let heard_bytes = heard_at_clear - heard_before_item;
    let sent_ms = flushed
        .iter()
        .map(|m| parse_mark(&m.name).end_ms)
        .max()
        .expect("flushed marks");
    assert_eq!(
        heard_bytes + clear.dropped_bytes,
        sent_ms * BYTES_PER_MS,
        "what was sent of the item was heard or dropped by the clear"
    );

    // Every byte relayed was followed by a mark, before the clear and after it.
    let all_names = stream
        .marks
        .iter()
        .map(|m| m.name.as_str())
        .chain(stream.unechoed_marks.iter().map(String::as_str));
    let total: u64 = bytes_per_item(all_names).values().sum();
    assert_eq!(total, stream.received.bytes, "every chunk has its mark");
    let before_names = stream.marks[..=last_flushed]
        .iter()
        .map(|m| m.name.as_str());
    let before_clear = bytes_per_item(before_names);
    let after_names = after
        .iter()
        .map(|m| m.name.as_str())
        .chain(stream.unechoed_marks.iter().map(String::as_str));
    let mut sent_after = bytes_per_item(after_names);
    for (key, bytes) in &mut sent_after {
        *bytes -= before_clear.get(key).copied().unwrap_or(0);
    }
    sent_after.retain(|_, bytes| *bytes > 0);
    let heard_after = stream.heard.total_bytes - heard_at_clear;
    assert_eq!(
        heard_after + stream.unplayed_bytes,
        sent_after.values().sum::<u64>(),
        "what was relayed after the clear was heard or still queued"
    );

    Cut {
        item_id,
        sent_ms,
        heard_ms: heard_bytes / BYTES_PER_MS,
        echoed_ms,
        sent_after,
    }
}

/// How far the sidecar's truncate may run ahead of what the caller heard, ms.
#[derive(Debug, Clone, Copy)]
enum Queue {
    /// Audio stays queued at Twilio until the barge-in (answer sent faster than real time):
    /// the sidecar counts from the last echo, which Twilio sends after the audio before it
    /// played, to `speech_started`, which comes before Twilio gets the `clear`. It can never
    /// be ahead, but for 1 ms of rounding (its clock counts whole ms).
    StaysFull,
    /// Answer sent in real time: Twilio's queue may run dry between chunks, and the sidecar
    /// then counts a chunk from when it sent it, since it cannot see it arrive. It can be
    /// ahead by that chunk's one-way latency, at most the chunk.
    MayRunDry,
}

impl Queue {
    fn ahead_ms(self) -> u64 {
        match self {
            Queue::StaysFull => 1,
            Queue::MayRunDry => CHUNK_MS,
        }
    }
}

/// The OpenAI side of the cut: one truncate of the playing item at what the caller heard.
fn the_truncate(session: &SessionRecord, cut: &Cut, queue: Queue) -> u64 {
    assert_eq!(
        session.truncations.len(),
        1,
        "one truncate: {:?}",
        session.truncations
    );
    let truncate = &session.truncations[0];
    assert_eq!(
        truncate.item_id, cut.item_id,
        "the playing item is truncated"
    );
    assert!(truncate.accepted, "the truncate was applied: {truncate:?}");
    let audio_end_ms = truncate.audio_end_ms;
    // Never more than was generated (nor sent) of the item.
    assert!(
        audio_end_ms <= cut.sent_ms && audio_end_ms <= LONG_ANSWER_MS,
        "truncated at {audio_end_ms} ms, beyond the {} ms sent",
        cut.sent_ms
    );
    // Tolerance. The sidecar learns what played only from the echoed marks, one per chunk,
    // and interpolates by its own clock within the chunk after the last echo. Ahead of what
    // the caller heard: see `Queue`. Behind it: by the latency of the last echo and of the
    // `clear` (Twilio plays on until the clear arrives), which on loopback stays within one
    // chunk: one mark's granularity. Counting what was *sent* would be off by seconds here.
    assert!(
        audio_end_ms <= cut.heard_ms + queue.ahead_ms() && cut.heard_ms <= audio_end_ms + CHUNK_MS,
        "truncated at {audio_end_ms} ms; the caller heard {} ms of the item (last echoed \
         mark at {} ms, {} ms sent; {queue:?})",
        cut.heard_ms,
        cut.echoed_ms,
        cut.sent_ms
    );
    audio_end_ms
}

/// Late deltas dropped: nothing of the interrupted item reached Twilio after the `clear`,
/// and the caller did hear the answer to the interruption.
fn nothing_of_the_cut_item_after_the_clear(cut: &Cut) {
    assert!(
        cut.sent_after.keys().all(|(_, item)| *item != cut.item_id),
        "audio of the interrupted item {} after the clear: {:?}",
        cut.item_id,
        cut.sent_after
    );
    assert_eq!(
        cut.sent_after.values().sum::<u64>(),
        SHORT_ANSWER_MS * BYTES_PER_MS,
        "after the clear, only the answer to the interruption: {:?}",
        cut.sent_after
    );
}

/// The stored assistant item of the cut: interrupted at the truncate's position.
fn stored_as_interrupted(stored: &pb::CallSession, cut: &Cut, audio_end_ms: u64) {
    let item = stored
        .conversation
        .iter()
        .find(|i| i.provider_item_id == cut.item_id)
        .unwrap_or_else(|| panic!("the cut item was stored: {:?}", stored.conversation));
    assert_eq!(item.role, pb::ConversationRole::Assistant as i32);
    assert_eq!(item.kind, pb::ConversationItemKind::Message as i32);
    let payload: serde_json::Value =
        serde_json::from_str(&item.payload_json).expect("payload_json is JSON");
    assert_eq!(
        payload,
        serde_json::json!({"interrupted": true, "audio_end_ms": audio_end_ms}),
        "{item:?}"
    );
    let later = stored
        .conversation
        .iter()
        .find(|i| i.role == pb::ConversationRole::Assistant as i32 && i.text == SHORT_ANSWER);
    let later = later.unwrap_or_else(|| panic!("the short answer: {:?}", stored.conversation));
    assert!(later.seq > item.seq);
    assert!(
        later.payload_json.is_empty(),
        "the short answer played in full: {later:?}"
    );
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// Whether the cut item and the answer after it are stored.
fn holds_the_cut_and_the_short_answer(stored: &pb::CallSession, item_id: &str) -> bool {
    stored
        .conversation
        .iter()
        .any(|i| i.provider_item_id == item_id)
        && stored.conversation.iter().any(|i| i.text == SHORT_ANSWER)
}

// --- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_over_queued_audio_clears_it_and_truncates_at_what_the_caller_heard() {
    // The whole 6 s answer reaches Twilio at once (faster than real time, like the real
    // API), so almost all of it is queued there when the caller barges in.
    let number = "+14155550131";
    let (openai, harness, agent_id) = start(AudioPace::Fast, number).await;

    let record = call(&harness, number).await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    let cut = the_cut(stream);
    assert_eq!(
        cut.sent_ms, LONG_ANSWER_MS,
        "the whole answer was relayed before the barge-in"
    );

    let session = openai.records().last().expect("an openai session");
    let audio_end_ms = the_truncate(&session, &cut, Queue::StaysFull);
    assert!(
        audio_end_ms < LONG_ANSWER_MS - 1_000,
        "the caller barged in long before the end of the answer: {audio_end_ms} ms"
    );
    assert!(
        session.responses_cancelled.is_empty(),
        "the answer had finished generating: nothing to cancel"
    );
    nothing_of_the_cut_item_after_the_clear(&cut);

    let stored = completed_session(&harness, &agent_id, |s| {
        holds_the_cut_and_the_short_answer(s, &cut.item_id)
    })
    .await;
    stored_as_interrupted(&stored, &cut, audio_end_ms);
    let counted = harness
        .sidecar_metric("switchboard_sidecar_barge_ins_total")
        .await;
    assert_eq!(
        counted,
        Some(1.0),
        "the sidecar's /metrics counts the barge-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_over_an_answer_still_being_generated_cancels_it_and_drops_its_late_audio() {
    // The answer is generated in real time, so it is still streaming when the caller talks
    // over it 2 s in: the response is cancelled and the rest of it never reaches the caller.
    let number = "+14155550132";
    let (openai, harness, agent_id) = start(AudioPace::Realtime, number).await;

    let record = call(&harness, number).await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    let cut = the_cut(stream);
    assert!(
        cut.sent_ms < LONG_ANSWER_MS,
        "the answer was cut while streaming: {cut:?}"
    );

    let session = openai.records().last().expect("an openai session");
    let audio_end_ms = the_truncate(&session, &cut, Queue::MayRunDry);
    assert!(!session.responses_created.is_empty(), "a response");
    assert_eq!(
        session.responses_cancelled,
        session.responses_created[..1],
        "the interrupted response, and only it, was cancelled"
    );
    nothing_of_the_cut_item_after_the_clear(&cut);

    let stored = completed_session(&harness, &agent_id, |s| {
        holds_the_cut_and_the_short_answer(s, &cut.item_id)
    })
    .await;
    stored_as_interrupted(&stored, &cut, audio_end_ms);
}
