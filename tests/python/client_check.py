#!/usr/bin/env python3
"""Drives a running control plane with a client generated from `proto/` alone.

The stubs are generated into a temporary directory with `grpc_tools.protoc` from
`proto/switchboard/v1/*.proto` (plus the well-known types bundled with grpcio-tools),
so this proves that a team outside this repository can build a working client from
the published contract and nothing else.

The check walks one call through its life: it creates an agent and a call session,
watches the call's events, plays the media sidecar on `CallChannelService.Connect`
(hello, a conversation batch, a re-sent batch, a batch with a gap), reads the session
back, and verifies the events the watcher saw. It also checks a few error codes.

Usage:
    python tests/python/client_check.py --addr 127.0.0.1:50051 [--token TOKEN]

Needs `grpcio-tools` (which brings `grpcio` and `protobuf`). Exits non-zero with a
message naming the failed step on any failure.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import json
import pathlib
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import grpc
from grpc_tools import protoc

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "switchboard" / "v1"

# Deadline for each unary call and for each expected stream message.
STEP_TIMEOUT_S = 10.0
# Deadline for the whole Connect / WatchCallEvents streams.
STREAM_TIMEOUT_S = 60.0
# How long the watcher may take to deliver the events the check caused.
EVENTS_TIMEOUT_S = 10.0


class CheckFailed(Exception):
    """A step of the check did not behave as the contract says."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def generate_stubs(out_dir: pathlib.Path) -> None:
    """Runs protoc (from grpcio-tools) over every switchboard.v1 file into `out_dir`."""
    protos = sorted(PROTO_PACKAGE_DIR.glob("*.proto"))
    expect(bool(protos), f"no .proto files found in {PROTO_PACKAGE_DIR}")
    # grpcio-tools ships google/protobuf/*.proto (timestamp, duration, field_mask, ...).
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    status = protoc.main(args)
    expect(status == 0, f"protoc failed with status {status} on {PROTO_PACKAGE_DIR}")


class Stubs:
    """The generated modules and one stub per service, over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        def load(name: str) -> Any:
            return importlib.import_module(f"switchboard.v1.{name}")

        self.agents_pb = load("agent_settings_pb2")
        self.sessions_pb = load("call_session_pb2")
        self.channel_pb = load("call_channel_pb2")
        self.campaign_pb = load("campaign_pb2")
        self.agents = load("agent_settings_pb2_grpc").AgentSettingsServiceStub(channel)
        self.sessions = load("call_session_pb2_grpc").CallSessionServiceStub(channel)
        self.call_channel = load("call_channel_pb2_grpc").CallChannelServiceStub(channel)
        self.campaigns = load("campaign_pb2_grpc").CampaignServiceStub(channel)


def random_e164(prefix: str) -> str:
    """A random, valid E.164 number, so repeated runs never collide."""
    return prefix + "".join(random.choice("0123456789") for _ in range(8))


def unary(method: Any, metadata: list[tuple[str, str]], request: Any) -> Any:
    """Calls a unary `method`; an error status fails the check, naming the method."""
    try:
        return method(request, metadata=metadata, timeout=STEP_TIMEOUT_S)
    except grpc.RpcError as e:
        name = type(request).__name__.removesuffix("Request")
        raise CheckFailed(f"{name} failed: {e.code().name}: {e.details()}") from None


def expect_code(code: grpc.StatusCode, what: str, call: Callable[[], Any]) -> None:
    """Runs `call` and checks it fails with `code`."""
    try:
        call()
    except grpc.RpcError as e:
        expect(
            e.code() == code,
            f"{what}: expected {code.name}, got {e.code().name}: {e.details()}",
        )
        return
    raise CheckFailed(f"{what}: expected {code.name}, but the call succeeded")


class EventCollector:
    """Reads a WatchCallEvents stream on a background thread."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._events: list[Any] = []
        self._error: grpc.RpcError | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._call:
                with self._changed:
                    self._events.append(event)
                    self._changed.notify_all()
        except grpc.RpcError as e:
            # Cancelling the watch at the end of the check is the normal way out.
            if e.code() != grpc.StatusCode.CANCELLED:
                with self._changed:
                    self._error = e
                    self._changed.notify_all()

    def wait_for(self, done: Callable[[list[Any]], bool], timeout: float) -> list[Any]:
        """Waits until `done(events)` holds; returns the events seen either way."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self._events) and self._error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if self._error is not None:
                raise CheckFailed(
                    f"WatchCallEvents failed: {self._error.code().name}: {self._error.details()}"
                )
            return list(self._events)

    def stop(self) -> None:
        self._call.cancel()
        self._thread.join(STEP_TIMEOUT_S)


class SidecarStream:
    """A CallChannelService.Connect stream: requests from a queue, replies to another."""

    _CLOSE = object()

    def __init__(self, stubs: Stubs, metadata: list[tuple[str, str]]) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._responses: queue.Queue[Any] = queue.Queue()
        self._call = stubs.call_channel.Connect(
            self._request_iterator(), metadata=metadata, timeout=STREAM_TIMEOUT_S
        )
        self._reader = threading.Thread(target=self._read, name="connect", daemon=True)
        self._reader.start()

    def _request_iterator(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is self._CLOSE:
                return
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
            self._responses.put(None)  # the server finished the stream
        except grpc.RpcError as e:
            self._responses.put(e)

    def send(self, request: Any) -> None:
        self._requests.put(request)

    def receive(self, what: str) -> Any:
        """The next reply; fails if the stream errs, ends, or stays silent too long."""
        try:
            response = self._responses.get(timeout=STEP_TIMEOUT_S)
        except queue.Empty:
            raise CheckFailed(f"Connect: no {what} within {STEP_TIMEOUT_S:.0f} s") from None
        if isinstance(response, grpc.RpcError):
            raise CheckFailed(
                f"Connect failed while waiting for {what}: "
                f"{response.code().name}: {response.details()}"
            )
        expect(response is not None, f"Connect: the stream ended while waiting for {what}")
        return response

    def close(self) -> None:
        """Half-closes the stream and waits for the server to end it cleanly."""
        self._requests.put(self._CLOSE)
        self._reader.join(STEP_TIMEOUT_S)
        expect(not self._reader.is_alive(), "Connect: the server did not end the stream")
        last = self._responses.get_nowait()
        if isinstance(last, grpc.RpcError):
            raise CheckFailed(
                f"Connect ended with {last.code().name}: {last.details()}"
            )
        expect(last is None, f"Connect: unexpected reply after the last batch: {last}")


def run_check(addr: str, token: str | None) -> list[str]:
    """Runs every step against `addr`; returns one summary line per step."""
    summary: list[str] = []
    metadata = [("authorization", f"Bearer {token}")] if token else []

    with tempfile.TemporaryDirectory(prefix="switchboard-stubs-") as out:
        generate_stubs(pathlib.Path(out))
        sys.path.insert(0, out)
        channel = grpc.insecure_channel(addr)
        try:
            grpc.channel_ready_future(channel).result(timeout=STEP_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise CheckFailed(f"cannot connect to {addr}") from None
        stubs = Stubs(channel)
        summary.append(f"generated and imported stubs from {PROTO_PACKAGE_DIR}")
        try:
            summary += check_call_flow(stubs, metadata)
            summary += check_error_codes(stubs, metadata, token)
        finally:
            channel.close()
    return summary


def check_call_flow(stubs: Stubs, metadata: list[tuple[str, str]]) -> list[str]:
    agents_pb, sessions_pb = stubs.agents_pb, stubs.sessions_pb
    summary: list[str] = []

    # An agent whose instructions use the customer's name.
    agent_number = random_e164("+8150")
    agent = unary(
        stubs.agents.CreateAgentSettings,
        metadata,
        agents_pb.CreateAgentSettingsRequest(
            agent_settings=agents_pb.AgentSettings(
                name="Reception (client check)",
                phone_numbers=[agent_number],
                voice="alloy",
                instructions="You are a polite receptionist. Address the caller as {{name}}.",
                temperature=0.8,
                tools=[
                    agents_pb.Tool(
                        name="lookup_order",
                        description="Looks up an order by its number.",
                        parameters_json_schema=json.dumps(
                            {
                                "type": "object",
                                "properties": {"order_id": {"type": "string"}},
                                "required": ["order_id"],
                            }
                        ),
                        webhook_url="https://example.invalid/tools/lookup_order",
                    )
                ],
                input_transcription=agents_pb.InputTranscription(
                    model="whisper-1", language="ja"
                ),
            )
        ),
    )
    expect(bool(agent.id), "CreateAgentSettings: the reply has no id")
    expect(agent.version >= 1, f"CreateAgentSettings: version {agent.version}, expected >= 1")
    expect(
        list(agent.phone_numbers) == [agent_number],
        f"CreateAgentSettings: phone numbers {list(agent.phone_numbers)}",
    )
    expect(
        agent.input_transcription.language == "ja",
        "CreateAgentSettings: the transcription language was not kept",
    )
    summary.append(f"created agent {agent.id} for {agent_number}")

    # An outbound call from the agent's number to a customer.
    customer_name = "山田 花子"
    customer_number = random_e164("+8190")
    session = unary(
        stubs.sessions.CreateCallSession,
        metadata,
        sessions_pb.CreateCallSessionRequest(
            agent_id=agent.id,
            from_number=agent_number,
            to_number=customer_number,
            customer=sessions_pb.Customer(phone=customer_number, name=customer_name),
        ),
    )
    call_id = session.id
    expect(bool(call_id), "CreateCallSession: the reply has no id")
    expect(
        session.status == sessions_pb.CALL_STATUS_QUEUED,
        f"CreateCallSession: status {sessions_pb.CallStatus.Name(session.status)}, expected QUEUED",
    )
    expect(
        (session.from_number, session.to_number) == (agent_number, customer_number),
        "CreateCallSession: from_number/to_number were not kept",
    )
    summary.append(f"created call session {call_id}")

    # Watch the call. The server sends its response headers once it has subscribed,
    # so waiting for the initial metadata means no later event can be missed.
    watch_call = stubs.sessions.WatchCallEvents(
        sessions_pb.WatchCallEventsRequest(call_id=call_id),
        metadata=metadata,
        timeout=STREAM_TIMEOUT_S,
    )
    watch_call.initial_metadata()
    watcher = EventCollector(watch_call)
    try:
        stream_sid = "MZ" + uuid.uuid4().hex
        summary += play_sidecar(stubs, metadata, call_id, stream_sid, customer_name)
        summary += check_stored_session(stubs, metadata, call_id, stream_sid)
        summary += check_events(stubs, watcher)
    finally:
        watcher.stop()
    return summary


# The conversation the fake sidecar reports: (role, text).
CONVERSATION = [
    ("USER", "もしもし、注文の件で電話しました。"),
    ("ASSISTANT", "お電話ありがとうございます。ご注文番号を教えていただけますか?"),
    ("USER", "A-1234 です。"),
]


def conversation_batch(sessions_pb: Any, channel_pb: Any, first_seq: int) -> Any:
    """The conversation as one batch, numbered from `first_seq`."""
    return channel_pb.ConnectRequest(
        items=channel_pb.ConversationBatch(
            items=[
                sessions_pb.ConversationItem(
                    seq=first_seq + i,
                    role=sessions_pb.ConversationRole.Value(f"CONVERSATION_ROLE_{role}"),
                    kind=sessions_pb.CONVERSATION_ITEM_KIND_MESSAGE,
                    text=text,
                )
                for i, (role, text) in enumerate(CONVERSATION)
            ]
        )
    )


def play_sidecar(
    stubs: Stubs,
    metadata: list[tuple[str, str]],
    call_id: str,
    stream_sid: str,
    customer_name: str,
) -> list[str]:
    """Connects as the media sidecar would and streams the conversation."""
    sessions_pb, channel_pb = stubs.sessions_pb, stubs.channel_pb
    stream = SidecarStream(stubs, metadata)
    stream.send(
        channel_pb.ConnectRequest(
            hello=channel_pb.Hello(
                call_id=call_id,
                stream_sid=stream_sid,
                call_sid="CA" + uuid.uuid4().hex,
                sidecar_id="client-check",
            )
        )
    )
    reply = stream.receive("the call config")
    expect(reply.WhichOneof("message") == "config", f"Connect: first reply is {reply}")
    config = reply.config
    instructions = config.agent_settings.instructions
    expect(
        customer_name in instructions and "{{" not in instructions,
        f"Connect: instructions not filled in with the customer's name: {instructions!r}",
    )
    expect(
        config.stored_through_seq == 0,
        f"Connect: stored_through_seq {config.stored_through_seq}, expected 0",
    )
    summary = [f"connected as the sidecar; instructions: {instructions!r}"]

    batch = conversation_batch(sessions_pb, channel_pb, first_seq=1)
    for attempt in ("batch", "re-sent batch"):
        stream.send(batch)
        reply = stream.receive(f"the ack of the {attempt}")
        expect(
            reply.WhichOneof("message") == "ack" and reply.ack.stored_through_seq == 3,
            f"Connect: the {attempt} of seq 1..3 got {reply}, expected ack 3",
        )
    summary.append("batch seq 1..3 acked through 3, and again when re-sent")

    stream.send(conversation_batch(sessions_pb, channel_pb, first_seq=7))
    reply = stream.receive("the nack of the batch with a gap")
    expect(
        reply.WhichOneof("message") == "nack" and reply.nack.expected_seq == 4,
        f"Connect: the batch starting at seq 7 got {reply}, expected nack expecting 4",
    )
    summary.append(f"batch from seq 7 refused, expecting 4 ({reply.nack.reason})")

    stream.close()
    return summary


def check_stored_session(
    stubs: Stubs, metadata: list[tuple[str, str]], call_id: str, stream_sid: str
) -> list[str]:
    """The session holds exactly the acknowledged conversation."""
    sessions_pb = stubs.sessions_pb
    session = unary(
        stubs.sessions.GetCallSession, metadata, sessions_pb.GetCallSessionRequest(id=call_id)
    )
    stored = [
        (item.seq, sessions_pb.ConversationRole.Name(item.role), item.text)
        for item in session.conversation
    ]
    wanted = [
        (seq, f"CONVERSATION_ROLE_{role}", text)
        for seq, (role, text) in enumerate(CONVERSATION, start=1)
    ]
    expect(stored == wanted, f"GetCallSession: conversation {stored}, expected {wanted}")
    expect(session.last_seq == 3, f"GetCallSession: last_seq {session.last_seq}, expected 3")
    expect(
        session.status == sessions_pb.CALL_STATUS_IN_PROGRESS,
        f"GetCallSession: status {sessions_pb.CallStatus.Name(session.status)}, "
        "expected IN_PROGRESS after hello",
    )
    expect(
        session.twilio_stream_sid == stream_sid,
        f"GetCallSession: twilio_stream_sid {session.twilio_stream_sid!r}, expected {stream_sid!r}",
    )
    return ["session read back: 3 items in order, IN_PROGRESS, stream sid recorded"]


def check_events(stubs: Stubs, watcher: EventCollector) -> list[str]:
    """The watcher saw the status change and every stored item, once each."""
    sessions_pb = stubs.sessions_pb

    def stored_seqs(events: list[Any]) -> list[int]:
        return [e.item_stored.item.seq for e in events if e.WhichOneof("event") == "item_stored"]

    def went_live(events: list[Any]) -> bool:
        return any(
            e.WhichOneof("event") == "status_changed"
            and e.status_changed.current == sessions_pb.CALL_STATUS_IN_PROGRESS
            for e in events
        )

    events = watcher.wait_for(
        lambda events: went_live(events) and len(stored_seqs(events)) >= 3, EVENTS_TIMEOUT_S
    )
    kinds = [e.WhichOneof("event") for e in events]
    expect(went_live(events), f"WatchCallEvents: no status change to IN_PROGRESS in {kinds}")
    expect(
        stored_seqs(events) == [1, 2, 3],
        f"WatchCallEvents: item_stored seqs {stored_seqs(events)}, expected [1, 2, 3]",
    )
    return [f"watcher saw {len(events)} events: {', '.join(kinds)}"]


def check_error_codes(
    stubs: Stubs, metadata: list[tuple[str, str]], token: str | None
) -> list[str]:
    sessions_pb, campaign_pb = stubs.sessions_pb, stubs.campaign_pb
    summary: list[str] = []
    expect_code(
        grpc.StatusCode.NOT_FOUND,
        "GetCallSession of an unknown id",
        lambda: stubs.sessions.GetCallSession(
            sessions_pb.GetCallSessionRequest(id=str(uuid.uuid4())),
            metadata=metadata,
            timeout=STEP_TIMEOUT_S,
        ),
    )
    summary.append("unknown call session: NOT_FOUND")
    expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        "CampaignService.CreateCampaign without an agent",
        lambda: stubs.campaigns.CreateCampaign(
            campaign_pb.CreateCampaignRequest(campaign=campaign_pb.Campaign(name="check")),
            metadata=metadata,
            timeout=STEP_TIMEOUT_S,
        ),
    )
    summary.append("CampaignService.CreateCampaign without an agent: INVALID_ARGUMENT")
    if token:
        for what, bad_metadata in [
            ("without a token", []),
            ("with a wrong token", [("authorization", f"Bearer {token}x")]),
        ]:
            expect_code(
                grpc.StatusCode.UNAUTHENTICATED,
                f"ListAgentSettings {what}",
                lambda bad_metadata=bad_metadata: stubs.agents.ListAgentSettings(
                    stubs.agents_pb.ListAgentSettingsRequest(),
                    metadata=bad_metadata,
                    timeout=STEP_TIMEOUT_S,
                ),
            )
        summary.append("calls without the right bearer token: UNAUTHENTICATED")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", required=True, help="control plane gRPC address, host:port")
    parser.add_argument("--token", help="API token the server requires, if any")
    args = parser.parse_args()
    try:
        summary = run_check(args.addr, args.token)
    except CheckFailed as e:
        print(f"client check FAILED: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"client check FAILED: unexpected {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print(f"client check passed against {args.addr}:")
    for line in summary:
        print(f"  - {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
