"""Issue 15 #5: the SSE stream never goes quiet.

- One stream held open across a whole event on anvil (devices, stake, a request, a 2-of-2 report
  submitted, the challenge window, finalization, a claim), with heartbeats between the steps,
  receives every request, report and claim event in chain order, ReportFinalized and RequestSettled
  included, with every token amount a decimal string; a second connection resuming with
  `Last-Event-ID` gets the rest in the same order.
- A resume id that names no event of this mirror (an earlier devnet's, or a rolled-back branch's)
  used to leave the stream silent for good, waiting for a block the chain never reaches: now it is
  answered with `event: reorg` (forkBlock 0, with an id) and the mirror is replayed.
- A failed read (the events table away for a moment) used to end the stream; now it is retried and
  the stream goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
from conftest import OraclePublisher, device_result, http, indexed_to_head, mirror_app
from sqlalchemy import create_engine, text
from uvicorn_server import serve


@dataclass
class Frame:
    """One SSE frame: its id, event name and data (None for a comment-only frame), and its comments."""

    id: str | None = None
    event: str | None = None
    data: dict | None = None
    comments: list[str] = field(default_factory=list)


def frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Frames from an iterator of SSE lines (a frame ends at a blank line)."""
    frame = Frame()
    for line in lines:
        if line == "":
            yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line.startswith("data:"):
            frame.data = json.loads(line[5:])
    raise AssertionError("the stream ended")


def next_event(stream: Iterator[Frame], heartbeats: list[str] | None = None) -> Frame:
    """The next frame with an event, counting the heartbeats met on the way."""
    for frame in stream:
        if heartbeats is not None:
            heartbeats.extend(c for c in frame.comments if c == "keepalive")
        if frame.event is not None:
            return frame
    raise AssertionError("the stream ended")


def wait_for_heartbeat(stream: Iterator[Frame]) -> None:
    """Read until a heartbeat arrives (no event may come first: the chain is quiet)."""
    for frame in stream:
        assert frame.event is None, f"unexpected event {frame.event} {frame.data}"
        if "keepalive" in frame.comments:
            return


def stored_events(database: str) -> list[tuple[str, str, str]]:
    """(id, kind, name) of the mirror's request, report and claim events in chain order."""
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT block, log_index, tx_hash, kind, name FROM chain_events WHERE kind "
                                       "IN ('request', 'report', 'claim') ORDER BY block, log_index")).all()
    engine.dispose()
    # the id names the transaction too: its hash's first 8 hex digits, as the chain has it
    return [(f"{r.block}-{r.log_index}-{r.tx_hash[2:10].lower()}", r.kind, r.name) for r in rows]


def test_one_stream_receives_a_whole_event_in_order(chain, start_api, serve_app, tmp_path):
    oracle = OraclePublisher(str(tmp_path / "oracle.sqlite"), serve_app)
    chain.add_oracles([oracle.url, oracle.url])
    database = str(tmp_path / "api.sqlite")
    url, _app = start_api(chain, database=database, stream_keepalive_seconds=0.2)
    client = http(url)
    indexed_to_head(client, chain)
    usd = chain.stablecoin.address

    received: list[Frame] = []
    heartbeats: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as stream_client, \
            stream_client.stream("GET", "/v1/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response.iter_lines())
        assert next(stream).comments[0].startswith("negawatt event stream")

        devices = [chain.register(capacity_w=3_000, zone=7, kind=k) for k in (0, 1)]
        chain.stake(chain.owner, 5 * 10**18)
        request_id = chain.open_request(zone=7, start_in=60, duration=120)
        received += [next_event(stream, heartbeats), next_event(stream, heartbeats)]  # RequestOpened, RequestRules
        wait_for_heartbeat(stream)  # quiet: the stream keeps the connection alive

        chain.warp(300)
        payout = 12_000
        ledger = {(chain.owner.address, usd): 9_600, (chain.hub.functions.treasury().call(), usd): 2_400}
        results = {request_id: [device_result(devices[0].address, chain.owner.address, 40, 8_000),
                                device_result(devices[1].address, chain.owner.address, 20, 4_000)]}
        submitted = chain.make_report(ledger, [(request_id, payout)], results)
        oracle.publish(submitted.body)
        chain.submit(submitted)
        received += [next_event(stream, heartbeats), next_event(stream, heartbeats)]  # ReportSubmitted, RequestSettling
        wait_for_heartbeat(stream)  # the challenge window: a long quiet while on a real devnet

        chain.finalize(submitted)
        received += [next_event(stream, heartbeats), next_event(stream, heartbeats)]  # ReportFinalized, RequestSettled
        wait_for_heartbeat(stream)
        indexed_to_head(client, chain)
        proof = client.get(f"/v1/rewards/{chain.owner.address}").json()["tokens"][0]["proof"]
        chain.claim(chain.owner, chain.owner.address, usd, 9_600, proof)
        received.append(next_event(stream, heartbeats))  # Claimed

    expected = stored_events(database)
    assert [(f.id, f.event, f.data["event"]) for f in received] == expected  # every event, in chain order
    names = [f.data["event"] for f in received]
    assert names == ["RequestOpened", "RequestRules", "ReportSubmitted", "RequestSettling", "ReportFinalized",
                     "RequestSettled", "Claimed"]
    by_name = {f.data["event"]: f.data["args"] for f in received}
    # one amount type: decimal strings of base units, as in REST; ids and times stay numbers
    assert by_name["RequestSettled"]["payout"] == str(payout)
    assert by_name["RequestSettled"]["refund"] == str(10**9 - payout)
    assert by_name["RequestSettled"]["requestId"] == request_id
    assert by_name["RequestOpened"]["maxBudget"] == str(10**9) and by_name["RequestOpened"]["zone"] == 7
    assert by_name["ReportFinalized"]["emission"] == "0"
    assert by_name["ReportSubmitted"]["report"]["emission"] == "0"
    assert by_name["Claimed"]["amount"] == "9600" and by_name["Claimed"]["token"] == usd
    rest = client.get(f"/v1/requests/{request_id}").json()
    assert rest["payout"] == by_name["RequestSettled"]["payout"] and rest["maxBudget"] == by_name["RequestOpened"][
        "maxBudget"]

    # a new connection resuming after ReportSubmitted gets the rest, in the same order
    with httpx.Client(base_url=url, timeout=60) as stream_client, \
            stream_client.stream("GET", "/v1/stream", headers={"Last-Event-ID": received[2].id}) as response:
        stream = frames(response.iter_lines())
        resumed = [next_event(stream) for _ in range(4)]
    assert [(f.id, f.data["event"]) for f in resumed] == [(f.id, f.data["event"]) for f in received[3:]]


# ---------------------------------------------------------------------- without a chain: the mirror alone


def _mirror(tmp_path, blocks: range, indexed: int, head: int):
    from api.db import make_engine
    from api.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'mirror.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        for block in blocks:
            _insert(connection, block)
        connection.execute(text("INSERT INTO indexer_state (id, chain_id, last_block, last_hash, head_block, "
                                "updated_at) VALUES (1, 31337, :b, '0x', :h, 0)"), {"b": indexed, "h": head})
    return url, engine


def _insert(connection, block: int) -> None:
    from api.events import json_safe  # what the indexer stores: small integers as numbers, big ones as strings

    args = json.dumps(json_safe({"requestId": block, "payout": 5, "refund": 10**20, "recipient": "0x" + "00" * 20}))
    connection.execute(text("INSERT INTO chain_events (block, log_index, tx_hash, contract, name, kind, args) "
                            "VALUES (:b, 0, :t, 'FlexMarket', 'RequestSettled', 'request', :a)"),
                       {"b": block, "t": "0x" + "ab" * 32, "a": args})


def _serve(database_url: str):
    app = mirror_app(database_url)
    app.state.context.stream_keepalive = 0.2
    url, server, thread = serve(app)
    return app, url, server, thread


def test_a_resume_id_this_mirror_does_not_have_replays_the_mirror(tmp_path):
    # a client that watched an earlier devnet (up to block 5000) reconnects to a new one at block 12
    database_url, _engine = _mirror(tmp_path, range(3, 13), indexed=12, head=12)
    _app, url, server, thread = _serve(database_url)
    try:
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream", headers={"Last-Event-ID": "5000-3"}) as response:
            stream = frames(response.iter_lines())
            reorg = next_event(stream)
            assert (reorg.event, reorg.data, reorg.id) == ("reorg", {"forkBlock": 0}, "0-999999999")
            replayed = [next_event(stream) for _ in range(10)]
        assert [f.id for f in replayed] == [f"{b}-0-abababab" for b in range(3, 13)]
        # amounts of stored events are strings, however the indexer stored them
        assert replayed[0].data["args"]["payout"] == "5" and replayed[0].data["args"]["refund"] == str(10**20)
        assert replayed[0].data["args"]["requestId"] == 3

        # an id of a rolled-back event at a block the mirror has passed: the same answer
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream", headers={"Last-Event-ID": "7-5"}) as response:
            reorg = next_event(frames(response.iter_lines()))
            assert (reorg.event, reorg.data) == ("reorg", {"forkBlock": 0})

        # "after block 9000" of a longer chain: the same answer
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream", headers={"Last-Event-ID": "9000-999999999"}) as response:
            reorg = next_event(frames(response.iter_lines()))
            assert (reorg.event, reorg.data) == ("reorg", {"forkBlock": 0})

        # the reorg frame's own id resumes after the fork block, without another reorg
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream", headers={"Last-Event-ID": "10-999999999"}) as response:
            stream = frames(response.iter_lines())
            assert [next_event(stream).id for _ in range(2)] == ["11-0-abababab", "12-0-abababab"]

        # a known id resumes right after it, and so does the two-part id of earlier versions
        for known in ("11-0-abababab", "11-0"):
            with httpx.Client(base_url=url, timeout=30) as client, \
                    client.stream("GET", "/v1/stream", params={"after": known}) as response:
                assert next_event(frames(response.iter_lines())).id == "12-0-abababab"

        # the id of an event a reorg replaced at the same block and position (another transaction):
        # the mirror does not have it, so the same answer as for any unknown id
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream", headers={"Last-Event-ID": "11-0-deadbeef"}) as response:
            reorg = next_event(frames(response.iter_lines()))
            assert (reorg.event, reorg.data) == ("reorg", {"forkBlock": 0})
        with httpx.Client(base_url=url, timeout=30) as client:  # a tag that is not 8 hex digits is refused
            assert client.get("/v1/stream", params={"after": "11-0-xyz"}).status_code == 400
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_failed_read_does_not_end_the_stream(tmp_path):
    database_url, engine = _mirror(tmp_path, range(1, 3), indexed=2, head=2)
    app, url, server, thread = _serve(database_url)
    notifier = app.state.context.notifier
    try:
        with httpx.Client(base_url=url, timeout=30) as client, \
                client.stream("GET", "/v1/stream") as response:
            stream = frames(response.iter_lines())
            next(stream)  # the opening comment
            wait_for_heartbeat(stream)
            with engine.begin() as connection:  # the events table goes away: every read fails
                connection.execute(text("ALTER TABLE chain_events RENAME TO chain_events_away"))
            notifier.notify()
            for frame in stream:
                if "retrying" in frame.comments:
                    break
            with engine.begin() as connection:
                connection.execute(text("ALTER TABLE chain_events_away RENAME TO chain_events"))
                _insert(connection, 3)
            notifier.notify()
            arrived = next_event(stream)
        assert (arrived.id, arrived.data["event"]) == ("3-0-abababab", "RequestSettled")
    finally:
        server.should_exit = True
        thread.join(timeout=15)

