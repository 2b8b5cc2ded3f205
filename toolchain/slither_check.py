"""Static analysis of the contracts: Slither's findings must be triaged, or the check fails.

The rule: every finding of impact Medium or High in the project's own contracts (mocks included)
needs an entry in `contracts/slither-triage.toml` with a reason, or the check exits non-zero and
names it. Low, Informational and Optimization findings are summarised but never fail. An entry that
matches no finding any more is reported as stale (a warning), so the triage file stays honest.

How Slither is run: the project's compiler may be the solcjs shim, which answers only `--version`
and `--standard-json`, so Slither compiles through crytic-compile's standard-JSON platform
(`--compile-force-framework solc-json`). The standard-JSON input is the one ape-solidity itself
builds for `ape compile` (same optimizer, runs, EVM version, via-IR and dependency remappings, and
the OpenZeppelin sources ape unpacked), so Slither analyses exactly what ape compiles and the
settings cannot drift from `ape-config.yaml`. Dependency code (ape's `contracts/.cache/`) is
filtered out of the findings.

A finding's triage key is its detector plus the path of its first element (contract, function,
variable or event names, e.g. `OracleHub.pendingReport.count`), never line numbers, so unrelated
edits do not invalidate the triage.

Run: `make slither`, or `.venv/bin/python -m toolchain.slither_check` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRIAGE = REPO / "contracts" / "slither-triage.toml"
APE_CONFIG = REPO / "ape-config.yaml"

IMPACTS = ("High", "Medium", "Low", "Informational", "Optimization")
FAILING_IMPACTS = frozenset({"High", "Medium"})
# Dependency sources: ape unpacks them into contracts/.cache/<name>/<version>/; node_modules for safety.
DEPENDENCY_PATTERN = r"(^|/)(\.cache|node_modules)/"
TRIAGE_FIELDS = ("detector", "element", "impact", "reason")
SLITHER_TIMEOUT_S = 1800

logger = logging.getLogger("toolchain.slither_check")


class CheckError(RuntimeError):
    """The check could not be carried out (bad triage file, Slither failure, settings drift)."""


@dataclass(frozen=True)
class Finding:
    """One Slither result in the project's own code."""

    detector: str
    impact: str
    confidence: str
    element: str
    location: str
    description: str

    @property
    def key(self) -> tuple[str, str]:
        """The stable identity a triage entry matches: detector and element path."""
        return (self.detector, self.element)


@dataclass(frozen=True)
class TriageEntry:
    """One accepted finding in the triage file, with the reason it is accepted."""

    detector: str
    element: str
    impact: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        """The stable identity this entry accepts: detector and element path."""
        return (self.detector, self.element)


@dataclass
class Comparison:
    """Findings sorted against the triage file."""

    new: list[Finding] = field(default_factory=list)  # Medium/High without a matching entry: fail
    triaged: list[tuple[Finding, TriageEntry]] = field(default_factory=list)
    minor: list[Finding] = field(default_factory=list)  # Low/Informational/Optimization, untriaged
    stale: list[tuple[TriageEntry, str]] = field(default_factory=list)  # entry, why it is stale

    @property
    def failed(self) -> bool:
        """Whether any Medium or High finding is untriaged."""
        return bool(self.new)


# ------------------------------------------------------------------ reading Slither's JSON


def element_path(element: dict[str, Any]) -> str:
    """The dotted name path of a Slither element up through its parents (contract first).

    Statement nodes carry no stable name (their text is the expression) and are skipped, so a
    finding on a statement is keyed by its function. An element outside any contract (a pragma, a
    free function) is prefixed with its file.
    """
    names: list[str] = []
    top: dict[str, Any] = element
    current: dict[str, Any] | None = element
    while current:
        if current.get("type") != "node" and current.get("name"):
            names.append(str(current["name"]))
        top = current
        current = (current.get("type_specific_fields") or {}).get("parent")
    names.reverse()
    path = ".".join(names)
    if top.get("type") != "contract":
        filename = (top.get("source_mapping") or {}).get("filename_relative", "?")
        path = f"{filename}:{path}"
    return path


def _location(element: dict[str, Any]) -> str:
    mapping = element.get("source_mapping") or {}
    filename = mapping.get("filename_relative") or mapping.get("filename_short") or "?"
    lines = mapping.get("lines") or []
    if not lines:
        return filename
    first, last = min(lines), max(lines)
    return f"{filename}#{first}" if first == last else f"{filename}#{first}-{last}"


def _filename(element: dict[str, Any]) -> str:
    mapping = element.get("source_mapping") or {}
    return str(mapping.get("filename_relative") or mapping.get("filename_absolute") or "")


def findings_from_slither(output: dict[str, Any]) -> list[Finding]:
    """The findings in a Slither `--json` document, dependency code left out.

    Raises CheckError when Slither reported a failure, so a broken run is never read as clean.
    """
    if not output.get("success", False):
        raise CheckError(f"Slither reported a failure: {output.get('error') or 'no error text'}")
    findings: list[Finding] = []
    for result in (output.get("results") or {}).get("detectors", []):
        elements = result.get("elements") or []
        if elements and re.search(DEPENDENCY_PATTERN, _filename(elements[0])):
            continue
        findings.append(
            Finding(
                detector=result["check"],
                impact=result["impact"],
                confidence=result.get("confidence", "?"),
                element=element_path(elements[0]) if elements else "",
                location=_location(elements[0]) if elements else "?",
                description=result.get("description", "").strip(),
            )
        )
    return findings


# ------------------------------------------------------------------ triage file


def parse_triage(text: str, source: str = "triage file") -> list[TriageEntry]:
    """Entries of a triage document (TOML `[[finding]]` tables), checked strictly.

    Every entry needs exactly detector, element, impact (one of Slither's impacts) and a non-empty
    reason; the same detector and element may appear only once.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CheckError(f"{source}: not valid TOML: {error}") from error
    unknown_top = set(document) - {"finding"}
    if unknown_top:
        raise CheckError(f"{source}: unknown top-level keys {sorted(unknown_top)} (only [[finding]])")
    raw_entries = document.get("finding", [])
    if not isinstance(raw_entries, list):
        raise CheckError(f"{source}: `finding` must be an array of tables ([[finding]])")
    entries: list[TriageEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_entries, start=1):
        where = f"{source}: entry {index}"
        if not isinstance(raw, dict):
            raise CheckError(f"{where}: must be a table")
        missing = [name for name in TRIAGE_FIELDS if not str(raw.get(name, "")).strip()]
        if missing:
            raise CheckError(f"{where}: missing or empty {', '.join(missing)}")
        extra = set(raw) - set(TRIAGE_FIELDS)
        if extra:
            raise CheckError(f"{where}: unknown keys {sorted(extra)}")
        if not all(isinstance(raw[name], str) for name in TRIAGE_FIELDS):
            raise CheckError(f"{where}: every field must be a string")
        if raw["impact"] not in IMPACTS:
            raise CheckError(f"{where}: impact {raw['impact']!r} is not one of {', '.join(IMPACTS)}")
        entry = TriageEntry(**{name: raw[name].strip() for name in TRIAGE_FIELDS})
        if entry.key in seen:
            raise CheckError(f"{where}: {entry.detector} {entry.element} is triaged twice")
        seen.add(entry.key)
        entries.append(entry)
    return entries


def load_triage(path: Path) -> list[TriageEntry]:
    """The entries of the triage file at `path` (see parse_triage)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CheckError(f"cannot read the triage file {path}: {error}") from error
    return parse_triage(text, source=str(path))


# ------------------------------------------------------------------ comparison and report


def compare(findings: Iterable[Finding], entries: Iterable[TriageEntry]) -> Comparison:
    """Sort findings into new (failing), triaged and minor, and find stale entries.

    An entry matches the findings with its detector and element and the impact it records; a
    finding whose impact changed is not covered by the old entry (it must be looked at again).
    """
    by_key = {entry.key: entry for entry in entries}
    result = Comparison()
    matched: set[tuple[str, str]] = set()
    impacts_seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for finding in findings:
        impacts_seen[finding.key].add(finding.impact)
        entry = by_key.get(finding.key)
        if entry is not None and entry.impact == finding.impact:
            result.triaged.append((finding, entry))
            matched.add(entry.key)
        elif finding.impact in FAILING_IMPACTS:
            result.new.append(finding)
        else:
            result.minor.append(finding)
    for entry in by_key.values():
        if entry.key in matched:
            continue
        now = impacts_seen.get(entry.key)
        why = (
            f"now reported with impact {', '.join(sorted(now))}, triaged as {entry.impact}"
            if now
            else "matches no finding any more"
        )
        result.stale.append((entry, why))
    return result


def _impact_rank(impact: str) -> int:
    return IMPACTS.index(impact) if impact in IMPACTS else len(IMPACTS)


def _group_order(group: tuple[tuple[str, str], list[Finding]]) -> tuple[int, str]:
    (impact, detector), _findings = group
    return (_impact_rank(impact), detector)


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line.strip() for line in text.splitlines() if line.strip())


def format_report(comparison: Comparison, triage_path: str = "contracts/slither-triage.toml") -> str:
    """A human-readable report: failing findings in full, the rest summarised, stale entries."""
    lines: list[str] = []
    if comparison.new:
        lines.append(
            f"FAIL: {len(comparison.new)} Medium/High finding(s) not in {triage_path}:"
        )
        for finding in sorted(comparison.new, key=lambda f: (_impact_rank(f.impact), f.key)):
            lines.append(
                f"  [{finding.impact}] {finding.detector} at {finding.location}"
                f" (confidence {finding.confidence})"
            )
            lines.append(f"    key: detector = {finding.detector!r}, element = {finding.element!r}")
            lines.append(_indent(finding.description))
        lines.append(
            "  Fix the contract, or, if the finding is a false positive or accepted, add a [[finding]]"
            f" entry (detector, element, impact, reason) to {triage_path}."
        )
    if comparison.triaged:
        lines.append(f"Triaged: {len(comparison.triaged)} finding(s) accepted by {triage_path}:")
        ordered = sorted(comparison.triaged, key=lambda pair: (_impact_rank(pair[0].impact), pair[0].key))
        for finding, _entry in ordered:
            lines.append(f"  [{finding.impact}] {finding.detector} {finding.element} ({finding.location})")
    if comparison.minor:
        groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        for finding in comparison.minor:
            groups[(finding.impact, finding.detector)].append(finding)
        lines.append(f"Not failing: {len(comparison.minor)} Low/Informational/Optimization finding(s):")
        for (impact, detector), group in sorted(groups.items(), key=_group_order):
            elements = ", ".join(sorted({f.element for f in group}))
            lines.append(f"  [{impact}] {detector} x{len(group)}: {elements}")
    for entry, why in comparison.stale:
        lines.append(f"WARNING stale triage entry: {entry.detector} {entry.element} [{entry.impact}]: {why}")
    if not comparison.new:
        lines.append("OK: no untriaged Medium or High finding.")
    return "\n".join(lines)


# ------------------------------------------------------------------ building the input and running Slither


def standard_input(repo: Path = REPO) -> tuple[str, dict[str, Any]]:
    """The solc version and standard-JSON input ape-solidity builds for every contract in the repo.

    All `*.sol` under the contracts folder (mocks included) go in; ape adds the dependency sources it
    unpacks and the remappings. The output selection is dropped so crytic-compile asks for the
    outputs it needs (ASTs and source maps of every source).
    """
    os.environ.setdefault("SOLCX_BINARY_PATH", str(repo / ".toolchain" / "solcx"))
    from ape import Project, compilers  # imported here: ape is slow to import and only this needs it

    project = Project(repo)
    solidity = compilers.registered_compilers[".sol"]
    with project.isolate_in_tempdir() as isolated:
        paths = sorted(
            path for path in isolated.contracts_folder.rglob("*.sol") if ".cache" not in path.parts
        )
        inputs = solidity.get_standard_input_json(paths, project=isolated)
    if len(inputs) != 1:
        versions = ", ".join(str(v) for v in inputs) or "none"
        raise CheckError(f"expected the contracts to compile with one solc version, ape chose: {versions}")
    ((version, input_json),) = inputs.items()
    input_json["settings"].pop("outputSelection", None)
    return str(getattr(version, "base_version", version)), input_json


def check_settings(input_json: dict[str, Any], repo: Path = REPO) -> None:
    """Fail if the input's settings differ from ape-config.yaml or a contract source is missing.

    ape builds the input, so this guards against ape's behaviour changing under the project.
    """
    import yaml

    config = (yaml.safe_load((repo / "ape-config.yaml").read_text()) or {}).get("solidity", {})
    settings = input_json.get("settings", {})
    problems: list[str] = []
    expected = {
        "viaIR": config.get("via_ir"),
        "evmVersion": config.get("evm_version"),
        "optimizer.enabled": config.get("optimize"),
        "optimizer.runs": config.get("optimization_runs"),
    }
    actual = {
        "viaIR": settings.get("viaIR"),
        "evmVersion": settings.get("evmVersion"),
        "optimizer.enabled": settings.get("optimizer", {}).get("enabled"),
        "optimizer.runs": settings.get("optimizer", {}).get("runs"),
    }
    for name, want in expected.items():
        if want is not None and actual[name] != want:
            problems.append(f"{name} is {actual[name]!r}, ape-config.yaml says {want!r}")
    configured = {str(item).split("=", 1)[0] for item in config.get("import_remapping", [])}
    for remapping in settings.get("remappings", []):
        if remapping.split("=", 1)[0] not in configured:
            problems.append(f"remapping {remapping!r} is not configured in ape-config.yaml")
    sources = set(input_json.get("sources", {}))
    contracts = repo / "contracts"
    for path in sorted(contracts.rglob("*.sol")):
        if ".cache" in path.parts:
            continue
        source_id = path.relative_to(repo).as_posix()
        if source_id not in sources:
            problems.append(f"{source_id} is not in the analysed sources")
    if problems:
        raise CheckError("the Slither input does not match the project: " + "; ".join(problems))


def solc_binary(version: str) -> Path:
    """The project-local compiler for `version` (native or the solcjs shim), as provisioned."""
    folder = Path(os.environ.get("SOLCX_BINARY_PATH", REPO / ".toolchain" / "solcx"))
    binary = folder / f"solc-v{version}"
    if not binary.exists():
        raise CheckError(f"no compiler at {binary}: run `make setup` (toolchain/provision_solc.py)")
    return binary


def slither_executable() -> str:
    """The `slither` of the interpreter running this check (the project's .venv)."""
    beside = Path(sys.executable).parent / "slither"
    return str(beside) if beside.exists() else "slither"


def run_slither(input_json: dict[str, Any], solc: Path, workdir: Path) -> dict[str, Any]:
    """Run Slither on a standard-JSON input in `workdir` and return its `--json` document.

    Every inline source is also written to disk under `workdir`, so Slither's source mapping (files
    and lines in findings) points at the exact text that was compiled.
    """
    root = workdir.resolve()
    for source_id, source in input_json.get("sources", {}).items():
        if "content" not in source:
            continue
        target = (root / source_id).resolve()
        if root not in target.parents:
            raise CheckError(f"source id {source_id!r} points outside the work folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source["content"], encoding="utf-8")
    (root / "standard-input.json").write_text(json.dumps(input_json), encoding="utf-8")
    command = [
        slither_executable(),
        "standard-input.json",
        "--compile-force-framework",
        "solc-json",
        "--solc",
        str(solc),
        "--filter-paths",
        DEPENDENCY_PATTERN,
        "--json",
        "slither.json",
        "--fail-none",
        "--disable-color",
    ]
    try:
        completed = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=SLITHER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CheckError(f"could not run Slither ({' '.join(command)}): {error}") from error
    output_path = root / "slither.json"
    if completed.returncode != 0 or not output_path.exists():
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-30:])
        raise CheckError(f"Slither exited with {completed.returncode}:\n{tail}")
    return json.loads(output_path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ command line


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m toolchain.slither_check",
        description="Run Slither on the contracts and fail on untriaged Medium/High findings.",
    )
    parser.add_argument("--triage", type=Path, default=DEFAULT_TRIAGE, help="the triage file (TOML)")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="compare an existing Slither --json document instead of running Slither",
    )
    parser.add_argument("--save-json", type=Path, help="also write Slither's raw --json document here")
    return parser.parse_args(argv)


def check(argv: Sequence[str] | None = None) -> int:
    """Run the check; 0 when every Medium/High finding is triaged, 1 when not, 2 when it cannot run."""
    args = _arguments(argv)
    started = time.monotonic()
    timings: list[str] = []
    try:
        entries = load_triage(args.triage)
        if args.from_json:
            output = json.loads(args.from_json.read_text(encoding="utf-8"))
        else:
            version, input_json = standard_input()
            check_settings(input_json)
            timings.append(f"standard input {time.monotonic() - started:.1f} s")
            sources = [s for s in input_json["sources"] if not re.search(DEPENDENCY_PATTERN, s)]
            logger.info(
                "slither: %d contract source(s) with solc %s (viaIR=%s, evm %s, optimizer runs %s)",
                len(sources),
                version,
                input_json["settings"].get("viaIR"),
                input_json["settings"].get("evmVersion"),
                input_json["settings"].get("optimizer", {}).get("runs"),
            )
            run_started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="negawatt-slither-") as workdir:
                output = run_slither(input_json, solc_binary(version), Path(workdir))
            timings.append(f"slither {time.monotonic() - run_started:.1f} s")
        if args.save_json:
            args.save_json.write_text(json.dumps(output, indent=1), encoding="utf-8")
        findings = findings_from_slither(output)
    except CheckError as error:
        logger.error("slither check could not run: %s", error)
        return 2
    comparison = compare(findings, entries)
    logger.info("%s", format_report(comparison, triage_path=_shown(args.triage)))
    detail = f" ({', '.join(timings)})" if timings else ""
    logger.info("slither check took %.1f s%s", time.monotonic() - started, detail)
    return 1 if comparison.failed else 0


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def main() -> None:
    """Entry point: log to stdout, exit with the check's status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    sys.exit(check())


if __name__ == "__main__":
    main()
