"""The Slither check fails on an untriaged Medium or High finding and on nothing else.

Most tests feed synthetic Slither `--json` documents to the comparison (new Medium fails, triaged
passes, Low never fails, stale entries are reported, keys ignore line numbers). Two use the real
tools: the standard-JSON input ape builds carries ape-config.yaml's settings and every contract, and
one real Slither run on a tiny contract goes through the same solc shim and solc-json route as
`make slither`, with a dependency filtered out.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolchain import slither_check as sc
from toolchain.provision_solc import pinned_version

REPO = Path(__file__).resolve().parents[2]


def _mapping(filename: str, lines: list[int]) -> dict[str, Any]:
    return {"filename_relative": filename, "filename_short": filename, "lines": lines}


def _result(
    check: str,
    impact: str,
    contract: str,
    function: str,
    lines: list[int],
    filename: str = "contracts/Thing.sol",
    description: str | None = None,
) -> dict[str, Any]:
    """A Slither detector result whose first element is `contract.function` at `lines`."""
    contract_element = {"type": "contract", "name": contract, "source_mapping": _mapping(filename, [1, 99])}
    function_element = {
        "type": "function",
        "name": function,
        "source_mapping": _mapping(filename, lines),
        "type_specific_fields": {"parent": contract_element, "signature": f"{function}()"},
    }
    node = {
        "type": "node",
        "name": "x == y",
        "source_mapping": _mapping(filename, lines[:1]),
        "type_specific_fields": {"parent": function_element},
    }
    where = f"{filename}#{lines[0]}-{lines[-1]}"
    return {
        "check": check,
        "impact": impact,
        "confidence": "High",
        "description": description or f"{contract}.{function}() ({where}) does something {check}\n\t- x == y",
        "elements": [function_element, node],
    }


def _document(*results: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "error": None, "results": {"detectors": list(results)}}


def _triage(*entries: tuple[str, str, str]) -> str:
    return "".join(
        f'[[finding]]\ndetector = "{d}"\nelement = "{e}"\nimpact = "{i}"\nreason = "reviewed: safe"\n\n'
        for d, e, i in entries
    )


def _run_check(tmp_path: Path, document: dict[str, Any], triage: str) -> int:
    (tmp_path / "slither.json").write_text(json.dumps(document))
    (tmp_path / "triage.toml").write_text(triage)
    arguments = ["--from-json", str(tmp_path / "slither.json"), "--triage", str(tmp_path / "triage.toml")]
    return sc.check(arguments)


MEDIUM = _result("incorrect-equality", "Medium", "Vault", "withdraw", [40, 41, 42])


def test_new_medium_fails_and_names_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="toolchain.slither_check")
    assert _run_check(tmp_path, _document(MEDIUM), _triage()) == 1
    text = caplog.text
    assert "FAIL: 1 Medium/High finding(s)" in text
    assert "[Medium] incorrect-equality at contracts/Thing.sol#40-42" in text
    assert "element = 'Vault.withdraw'" in text
    assert "Vault.withdraw() (contracts/Thing.sol#40-42) does something incorrect-equality" in text


def test_new_high_fails():
    high = _result("arbitrary-send-eth", "High", "Vault", "sweep", [10])
    comparison = sc.compare(sc.findings_from_slither(_document(high)), [])
    assert comparison.failed
    assert [f.detector for f in comparison.new] == ["arbitrary-send-eth"]


def test_triaged_medium_passes_even_after_it_moved(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="toolchain.slither_check")
    moved = _result("incorrect-equality", "Medium", "Vault", "withdraw", [140, 141, 142])
    triage = _triage(("incorrect-equality", "Vault.withdraw", "Medium"))
    assert _run_check(tmp_path, _document(moved), triage) == 0
    assert "Triaged: 1 finding(s)" in caplog.text
    assert "FAIL" not in caplog.text


def test_triage_entry_covers_only_its_own_detector_and_element():
    other_function = _result("incorrect-equality", "Medium", "Vault", "deposit", [50])
    other_detector = _result("unused-return", "Medium", "Vault", "withdraw", [40])
    entries = sc.parse_triage(_triage(("incorrect-equality", "Vault.withdraw", "Medium")))
    findings = sc.findings_from_slither(_document(MEDIUM, other_function, other_detector))
    comparison = sc.compare(findings, entries)
    assert sorted(f.key for f in comparison.new) == [
        ("incorrect-equality", "Vault.deposit"),
        ("unused-return", "Vault.withdraw"),
    ]


def test_low_informational_optimization_do_not_fail(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="toolchain.slither_check")
    document = _document(
        _result("timestamp", "Low", "Vault", "withdraw", [40]),
        _result("assembly", "Informational", "Vault", "hash", [60]),
        _result("cache-array-length", "Optimization", "Vault", "loop", [70]),
    )
    assert _run_check(tmp_path, document, _triage()) == 0
    assert "Not failing: 3 Low/Informational/Optimization finding(s)" in caplog.text
    assert "[Low] timestamp x1: Vault.withdraw" in caplog.text


def test_stale_entry_is_a_warning_not_a_failure(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="toolchain.slither_check")
    triage = _triage(("reentrancy-eth", "Vault.gone", "High"))
    assert _run_check(tmp_path, _document(), triage) == 0
    warning = "WARNING stale triage entry: reentrancy-eth Vault.gone [High]: matches no finding any more"
    assert warning in caplog.text


def test_impact_raised_to_high_is_new_and_old_entry_stale():
    raised = _result("incorrect-equality", "High", "Vault", "withdraw", [40])
    entries = sc.parse_triage(_triage(("incorrect-equality", "Vault.withdraw", "Medium")))
    comparison = sc.compare(sc.findings_from_slither(_document(raised)), entries)
    assert comparison.failed
    ((entry, why),) = comparison.stale
    assert entry.element == "Vault.withdraw" and "now reported with impact High" in why


def test_dependency_findings_are_left_out():
    in_dependency = _result(
        "incorrect-equality", "Medium", "ERC20", "transfer", [5],
        filename="contracts/.cache/openzeppelin/5.4.0/token/ERC20/ERC20.sol",
    )
    assert sc.findings_from_slither(_document(in_dependency)) == []


def test_element_paths_are_names_not_lines():
    function = _result("x", "Low", "Hub", "pending", [3])["elements"][0]
    local = {"type": "variable", "name": "count", "type_specific_fields": {"parent": function}}
    node = {"type": "node", "name": "i < a.length", "type_specific_fields": {"parent": function}}
    pragma = {"type": "pragma", "name": "^0.8.0", "source_mapping": _mapping("contracts/A.sol", [1])}
    assert sc.element_path(local) == "Hub.pending.count"
    assert sc.element_path(node) == "Hub.pending"
    assert sc.element_path(pragma) == "contracts/A.sol:^0.8.0"


def test_failed_slither_run_is_an_error_not_a_pass(tmp_path, caplog):
    broken = {"success": False, "error": "Invalid compilation", "results": {}}
    assert _run_check(tmp_path, broken, _triage()) == 2
    assert "Invalid compilation" in caplog.text


ENTRY = '[[finding]]\ndetector = "a"\nelement = "B.c"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ENTRY + 'impact = "Medium"\n', "missing or empty reason"),
        (ENTRY + 'impact = "Medium"\nreason = " "\n', "missing or empty reason"),
        (ENTRY + 'impact = "Severe"\nreason = "r"\n', "is not one of"),
        (ENTRY + 'impact = "Low"\nreason = "r"\nline = "4"\n', "unknown keys"),
        (_triage(("a", "B.c", "Low")) * 2, "triaged twice"),
        ("[finding\n", "not valid TOML"),
    ],
)
def test_bad_triage_file_is_rejected(text, message):
    with pytest.raises(sc.CheckError, match=message):
        sc.parse_triage(text)


def test_repository_triage_file_is_valid_and_reasoned():
    entries = sc.load_triage(sc.DEFAULT_TRIAGE)
    assert all(len(entry.reason) > 20 for entry in entries)


def test_ape_input_carries_ape_config_settings_and_every_contract():
    version, input_json = sc.standard_input(REPO)
    config = yaml.safe_load((REPO / "ape-config.yaml").read_text())["solidity"]
    settings = input_json["settings"]
    assert version == config["version"]
    assert settings["viaIR"] is config["via_ir"]
    assert settings["evmVersion"] == config["evm_version"]
    assert settings["optimizer"] == {"enabled": config["optimize"], "runs": config["optimization_runs"]}
    assert any(r.startswith("@openzeppelin/contracts=") for r in settings["remappings"])
    assert "contracts/mocks/MockStablecoin.sol" in input_json["sources"]
    assert any("/.cache/openzeppelin/" in source for source in input_json["sources"])
    sc.check_settings(input_json, REPO)
    drifted = {**input_json, "settings": {**settings, "viaIR": False}}
    with pytest.raises(sc.CheckError, match="viaIR is False"):
        sc.check_settings(drifted, REPO)


TINY = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
import {Dep} from "@dep/Dep.sol";
contract Tiny is Dep {
    function full() external view returns (bool) {
        return address(this).balance == 1 ether;
    }
}
"""
DEP = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
contract Dep {
    function empty() public view returns (bool) {
        return address(this).balance == 0;
    }
}
"""


def test_real_slither_run_through_the_solc_shim(tmp_path):
    """The same route as `make slither`: solc-json framework, the project's solc, dependency filter."""
    config = yaml.safe_load((REPO / "ape-config.yaml").read_text())["solidity"]
    input_json = {
        "language": "Solidity",
        "sources": {
            "contracts/Tiny.sol": {"content": TINY},
            "contracts/.cache/dep/1.0.0/Dep.sol": {"content": DEP},
        },
        "settings": {
            "remappings": ["@dep=contracts/.cache/dep/1.0.0"],
            "viaIR": config["via_ir"],
            "evmVersion": config["evm_version"],
            "optimizer": {"enabled": config["optimize"], "runs": config["optimization_runs"]},
        },
    }
    output = sc.run_slither(input_json, sc.solc_binary(pinned_version()), tmp_path)
    findings = sc.findings_from_slither(output)
    medium = [f for f in findings if f.impact == "Medium"]
    assert [(f.detector, f.element, f.location) for f in medium] == [
        ("incorrect-equality", "Tiny.full", "contracts/Tiny.sol#5-7")
    ]
    assert not [f for f in findings if f.element.startswith("Dep.")]
    assert sc.compare(findings, []).failed
    accepted = sc.parse_triage(_triage(("incorrect-equality", "Tiny.full", "Medium")))
    assert not sc.compare(findings, accepted).failed
