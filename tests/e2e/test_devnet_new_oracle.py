"""A node that is running when a new oracle joins owes it the last week of signed readings: the
`negawatt node run` process notices the oracle in the OracleHub and delivers everything to it."""

from __future__ import annotations

import sqlite3

from negawatt.devnet.network import Devnet, DevnetSpec, wait_for


def outbox_db(node) -> sqlite3.Connection:
    """The node's outbox file, read-only: the test inspects the raw storage the devnet no longer reads."""
    return sqlite3.connect(f"file:{node.directory / 'node-data' / 'outbox.sqlite'}?mode=ro", uri=True, timeout=30)


def test_a_new_oracle_receives_the_history_of_running_nodes(tmp_path):
    net = Devnet(DevnetSpec(nodes=1, zones=1, oracles=1, threshold=1, api=False, oracle_refresh_seconds=2),
                 tmp_path / "run")
    try:
        net.up()
        wait_for(lambda: net.outbox_pending() == 0, 180, "the history to reach oracle-1", net.group)
        node = net.nodes[0]
        with outbox_db(node) as db:
            readings = dict(db.execute("SELECT device, SUM(json_array_length(readings)) FROM batches GROUP BY device"))
        # 3 devices and the site meter, each with 11 days of 96 readings (in batches of up to 12 days, the
        # devnet's HISTORY_BATCH_READINGS) and any live interval
        assert len(readings) == 4 and all(count >= 11 * 96 for count in readings.values()), readings

        newcomer = net.add_oracle()

        def acknowledged_by_newcomer() -> bool:
            with outbox_db(node) as db:
                acked = db.execute("SELECT COUNT(*) FROM deliveries WHERE kind = 'batch' AND oracle = ? "
                                   "AND status = 'acked'", (newcomer.url,)).fetchone()[0]
                total = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            return acked == total

        wait_for(acknowledged_by_newcomer, 120, "the node to deliver its history to the new oracle", net.group)
        with outbox_db(node) as db:
            ours = {row[0] for row in db.execute("SELECT device || ':' || sequence FROM batches")}
        stored = sqlite3.connect(newcomer.config.with_suffix(".sqlite"))
        theirs = {row[0] for row in stored.execute(
            "SELECT m.address || ':' || b.sequence FROM signed_batches b JOIN meters m ON m.id = b.meter")}
        stored.close()
        assert {item.lower() for item in ours} <= {item.lower() for item in theirs}
        assert "new oracle" in (net.run_dir / "logs" / f"{node.name}.log").read_text()
    finally:
        net.stop()
