"""The one TOML writer (protocol.config_files): what it writes, tomllib reads back as the same data and
the roles' loaders read back as the same model; and the node's read views the devnet watches through."""

from __future__ import annotations

import math
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import NodeConfig, load_config
from node.dispatch import open_dispatch_db, open_dispatch_reader, participations
from node.outbox import Outbox
from node.setup import DeviceSpec, init_node
from oracle.config import OracleConfig
from protocol.config_files import dumps_toml, file_model, model_toml, read_toml, write_toml

keys = st.text(max_size=8)
scalars = (st.text(max_size=20) | st.integers(-(2**63), 2**63 - 1) | st.booleans()
           | st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)
documents = st.dictionaries(keys, values | st.lists(st.dictionaries(keys, values, max_size=3), min_size=1, max_size=3),
                            max_size=6)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_document_reads_back_as_written(document):
    assert tomllib.loads(dumps_toml(document)) == document


def test_special_floats_and_control_characters():
    text = dumps_toml({"x": math.inf, "y": -math.inf, "s": "a\x00\x7f\"\\\n\té"})
    back = tomllib.loads(text)
    assert back["x"] == math.inf and back["y"] == -math.inf and back["s"] == "a\x00\x7f\"\\\n\té"
    assert math.isnan(tomllib.loads(dumps_toml({"n": math.nan}))["n"])


def test_init_node_writes_its_model_and_the_loader_reads_the_same_model(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_NODE_ZONE", "9")  # the environment is not written into the file
    made = init_node(tmp_path / "n", [DeviceSpec("battery", 5_000, {"x": 1.5}), DeviceSpec("hvac", 3_000)], "pw",
                     zone=2, extra={"confirmations": 0, "value_wei_per_unit": {"0xAbC": 10**12}}, scrypt_n=2)
    data = read_toml(made.config_path)
    assert data["zone"] == 2 and data["data_dir"] == "node-data" and data["devices"][0]["params"] == {"seed": 0, "x": 1.5}
    written = file_model(NodeConfig, data)
    assert tomllib.loads(model_toml(written)) == data
    monkeypatch.delenv("NEGAWATT_NODE_ZONE")
    loaded = load_config(made.config_path)
    assert loaded.zone == 2 and loaded.confirmations == 0 and loaded.value_wei_per_unit == {"0xAbC": 10**12}
    assert loaded.data_dir == (tmp_path / "n" / "node-data").resolve()
    assert [d.kind for d in loaded.devices] == ["battery", "hvac"]


def test_an_oracle_config_round_trips(tmp_path):
    model = file_model(OracleConfig, {"keystore": str(tmp_path / "k.json"), "port": 9001, "poll_seconds": 1,
                                      "economics": {"interval_seconds": 900, "quality_days": 5}})
    path = write_toml(tmp_path / "oracle.toml", model)
    assert file_model(OracleConfig, tomllib.loads(path.read_text())) == model


def test_the_outbox_reader_and_dispatch_reader(tmp_path):
    path = tmp_path / "outbox.sqlite"
    try:
        Outbox.reader(path)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing outbox must not be created by a reader")
    outbox = Outbox(path)
    outbox.start_metering("0xdev", 900, 12)
    reader = Outbox.reader(path)
    assert reader.metered_boundaries() == {"0xdev": 900} and reader.depth() == {}
    reader.close()
    outbox.close()
    db = open_dispatch_db(str(tmp_path / "dispatch.sqlite"))
    db.execute("INSERT INTO participations (request_id, device, watts, start, end, state, latency_ms) "
               "VALUES (1, '0xdev', 500, 0, 900, 'applied', 12.5)")
    db.close()
    view = open_dispatch_reader(str(tmp_path / "dispatch.sqlite"))
    [one] = participations(view)
    view.close()
    assert (one.request_id, one.device, one.watts, one.state, one.latency_ms) == (1, "0xdev", 500, "applied", 12.5)
