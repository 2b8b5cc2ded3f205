"""`make compile` prints one line for Ape's list of sources, and the whole output only on failure."""

from __future__ import annotations

from toolchain.compile_contracts import _summary

APE_OUTPUT = """INFO:     Compiling using Solidity compiler '0.8.28+commit.7893614a'.
Input:
\tcontracts/.cache/openzeppelin/5.4.0/access/AccessControl.sol
\tcontracts/.cache/openzeppelin/5.4.0/utils/Nonces.sol
\tcontracts/FlexMarket.sol
SUCCESS:  'local project' compiled.
"""


def test_the_source_list_becomes_one_line():
    line = _summary(APE_OUTPUT, 36.4)
    assert line.startswith("compiled 1 negawatt source and 2 OpenZeppelin sources with solc 0.8.28+commit.7893614a in 36 s")
    assert "AccessControl" not in line


def test_nothing_to_compile_says_up_to_date():
    assert _summary("SUCCESS:  'local project' compiled.\n", 2.0) == "contracts up to date (2 s)"
