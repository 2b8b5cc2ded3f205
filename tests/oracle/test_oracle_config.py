"""oracle.config: the operator's TOML file, environment overrides, and clear errors."""

from __future__ import annotations

import pytest

from oracle.config import ConfigError, load_config

TOKEN = "0x" + "aa" * 20
FEE = "0x" + "fe" * 20


def write(tmp_path, text: str):
    path = tmp_path / "oracle.toml"
    path.write_text(text)
    return path


def test_a_config_file_loads_with_paths_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NEGAWATT_ORACLE_PORT", raising=False)
    config = load_config(write(tmp_path, 'keystore = "keys/o.json"\nport = 8200\n[economics]\n'
                                         'method = "high-x-of-y"\nx = 3\ny = 5\nadjustment = "additive"\n'))
    assert config.keystore == tmp_path / "keys" / "o.json"
    assert config.public_url == "http://127.0.0.1:8200"
    economics = config.economics.build(FEE, TOKEN)
    assert (economics.baseline.method, economics.baseline.x, economics.baseline.adjustment) == ("high-x-of-y", 3,
                                                                                               "additive")
    assert economics.params.fee_account.lower() == FEE and economics.params.owner_share_bps == 8_000


def test_the_environment_wins_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_ORACLE_PORT", "9300")
    assert load_config(write(tmp_path, 'keystore = "k.json"\nport = 8200\n')).port == 9300


@pytest.mark.parametrize("text, message", [
    ("port = \n", "is not valid TOML"),
    ('keystore = "k.json"\nport = 0\n', "port: Input should be greater than or equal to 1"),
    ('keystore = "k.json"\ncolour = "red"\n', "colour: Extra inputs are not permitted"),
    ("port = 8200\n", "keystore: Field required"),
    ('keystore = "k.json"\npublic_url = "ftp://x"\n', "public_url must start with http"),
    ('keystore = "k.json"\n[economics]\nowner_share_bps = 20000\n', "economics.owner_share_bps"),
])
def test_bad_files_name_the_field(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("NEGAWATT_ORACLE_PORT", raising=False)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(write(tmp_path, text))


def test_bad_economics_are_reported_when_built(tmp_path):
    config = load_config(write(tmp_path, 'keystore = "k.json"\n[economics]\nmethod = "guesswork"\n'))
    with pytest.raises(ConfigError, match="economics: unknown method 'guesswork'"):
        config.economics.build(FEE, TOKEN)
    curve = load_config(write(tmp_path, 'keystore = "k.json"\n[economics]\ncurve = [[5, 0]]\n'))
    with pytest.raises(ConfigError, match="start at ratio 0"):
        curve.economics.build(FEE, TOKEN)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="no config file at"):
        load_config(tmp_path / "absent.toml")
