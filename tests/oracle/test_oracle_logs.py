"""The oracle's log: INFO by default, one line per decision, no web3/httpx/urllib3 chatter.

`configure_logging` is checked on the real logging tree (restored afterwards: pytest's own
handlers live there too); the ingest's decision lines are checked on a served ingest over HTTP.
(tests/oracle/test_oracle_network.py runs three `negawatt oracle run` processes at the default
level and checks their whole logs.)
"""

from __future__ import annotations

import logging

import pytest

from oracle.logs import NOISY_LOGGERS, IngestLog, configure_logging

INGEST_LOGGER = "negawatt.oracle.ingest"


@pytest.fixture
def logging_tree():
    """Put the root logger and the library loggers back as they were after the test."""
    root = logging.getLogger()
    library = [name for name, item in logging.Logger.manager.loggerDict.items()
               if isinstance(item, logging.Logger) and name.split(".")[0] in NOISY_LOGGERS]
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level
                                              for name in [*NOISY_LOGGERS, *library]}
    yield
    root.setLevel(saved[0])
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    for handler in saved[1]:
        if handler not in root.handlers:
            root.addHandler(handler)
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbosity, own, libraries", [(0, logging.INFO, logging.WARNING),
                                                       (1, logging.DEBUG, logging.WARNING),
                                                       (2, logging.DEBUG, logging.DEBUG)])
def test_the_libraries_stay_quiet_unless_asked_twice(logging_tree, verbosity, own, libraries):
    configure_logging(verbosity)
    for name in ("negawatt.oracle.attestation", "oracle.ingest", "protocol.follower"):
        assert logging.getLogger(name).getEffectiveLevel() == own
    for name in ("web3.providers.HTTPProvider", "web3.RequestManager", "urllib3.connectionpool", "httpx",
                 "httpcore.http11"):
        assert logging.getLogger(name).getEffectiveLevel() == libraries, name
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO) or verbosity == 2  # "HTTP Request: ..."


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_accepted_batches_are_summarised_once_per_period(caplog):
    clock = Clock()
    summary = IngestLog(summary_seconds=30, clock=clock)
    with caplog.at_level(logging.INFO, logger=INGEST_LOGGER):
        for second in range(29):
            clock.now += 1
            summary.batch_accepted(f"0xdevice{second % 3}", 4)
        summary.replayed()
        assert caplog.messages == []  # not due yet
        clock.now += 1
        summary.batch_accepted("0xdevice0", 2)
        assert caplog.messages == ["accepted 30 meter batches (118 readings) from 3 devices in the last 30 s; "
                                   "1 replays answered"]
        summary.flush()  # nothing new: no line
        clock.now += 5
        summary.batch_accepted("0xdevice9", 1)
        summary.flush()
    assert caplog.messages[1:] == ["accepted 1 meter batches (1 readings) from 1 devices in the last 5 s"]


def test_the_ingest_logs_each_refusal_and_commitment_and_summarises_batches(chain_ops, ingest_service, caplog):
    device = chain_ops.register(capacity_w=2_000)
    request_id = chain_ops.open_request(zone=4)
    start = chain_ops.past_start(ingest_service.clock(), 3)
    good = chain_ops.batch(device, start, [100, 100], sequence=0)
    forged = chain_ops.batch(device, start + 1_800, [100], sequence=1, signer=chain_ops.register())
    ingest_log = ingest_service.server.config.app.state.ingest_log
    ingest_log.flush()  # whatever earlier tests left
    with caplog.at_level(logging.INFO, logger=INGEST_LOGGER):
        assert ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(good)).status_code == 201
        assert ingest_service.client.post("/v1/meter-batches", json=chain_ops.batch_payload(forged)).status_code == 400
        commitment = chain_ops.commitment_payload(chain_ops.commitment(device, request_id, 1_500))
        assert ingest_service.client.post("/v1/commitments", json=commitment).status_code == 201
        ingest_log.flush()  # the summary is otherwise due 30 s after the previous one
    lines = [r.getMessage() for r in caplog.records if r.name == INGEST_LOGGER]
    assert len(lines) == 3, lines
    assert lines[0].startswith("refused meter batch: bad_signature (signed by ")
    assert lines[1] == f"accepted commitment of {device.address} to request {request_id}: 1500 W"
    assert lines[2].startswith("accepted 1 meter batches (2 readings) from 1 devices in the last ")


def test_a_decision_retried_every_tick_is_logged_once_until_it_changes(caplog):
    from oracle.logs import RepeatFilter

    logger = logging.getLogger("negawatt.oracle.test-repeats")
    repeats = RepeatFilter(logger)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        for _ in range(80):  # the devnet's 80 NotEnded lines
            repeats.info("finalize", "finalize of report %s refused: %s", "0xab", "NotEnded")
        repeats.info("finalize", "finalize of report %s refused: %s", "0xab", "ChallengeWindowOpen")
        repeats.clear("finalize")
        repeats.info("finalize", "finalize of report %s refused: %s", "0xab", "ChallengeWindowOpen")
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["finalize of report 0xab refused: NotEnded"] + ["finalize of report 0xab refused: "
                                                                    "ChallengeWindowOpen"] * 2
    assert sum(1 for r in caplog.records if r.levelno == logging.DEBUG) == 79
