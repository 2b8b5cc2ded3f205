"""protocol.manifest: loading a deployment manifest, and clear errors for unusable files."""

from __future__ import annotations

import json

import pytest

from protocol.manifest import REQUIRED_CONTRACTS, ManifestError, load_manifest


def manifest_dict(**overrides):
    contracts = {
        name: {"address": "0x" + f"{i + 1:02x}" * 20, "block": 10 + i, "abi": []}
        for i, name in enumerate(REQUIRED_CONTRACTS)
    }
    base = {
        "chainId": 31337, "network": "ethereum:local", "deployedAt": "2026-11-25T00:00:00+00:00",
        "deployer": "0x" + "aa" * 20, "contracts": contracts, "roles": {}, "parameters": {},
    }
    base.update(overrides)
    return base


def test_a_valid_manifest_loads(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest_dict()))
    manifest = load_manifest(path)
    assert manifest.chainId == 31337
    assert manifest.address("DeviceRegistry") == "0x" + "02" * 20
    assert manifest.start_block == 10


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ManifestError, match="run `ape run deploy` first"):
        load_manifest(tmp_path / "absent.json")


def test_invalid_json_is_reported(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_manifest(path)


def test_missing_contracts_are_named(tmp_path):
    data = manifest_dict()
    del data["contracts"]["OracleHub"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="missing contracts: OracleHub"):
        load_manifest(path)


def test_bad_address_and_chain_id_are_rejected(tmp_path):
    data = manifest_dict(chainId=0)
    data["contracts"]["Staking"]["address"] = "0x1234"
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as error:
        load_manifest(path)
    assert "chainId" in str(error.value) and "not an address: '0x1234'" in str(error.value)


def test_unknown_contract_name_is_a_manifest_error(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest_dict()))
    with pytest.raises(ManifestError, match="no contract 'Nope'"):
        load_manifest(path).address("Nope")
