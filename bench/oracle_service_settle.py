"""Settlement of one request from an oracle's store, timed by part, in a process of its own.

The rule: time the oracle's own code, never a re-implementation. `settle_from_store` builds what
`oracle.attestation.Attestor.propose` builds (a ChainView of the chain, the economics of the
oracle's config, the bond reader over the view's Staking events) and calls
`oracle.epoch.compute_epoch`, then `report_document` as the service does. Timing wrappers are put
around the module-level functions it calls, in this process only:

    load      the store's loader (`oracle.meter_store.readings_in_range`: day rows into one numpy array)
    baseline  `compute_baselines`, wherever the settlement modules call it
    grid      `build_grid` (reported inside `settle`: it is the settlement's own layout work)
    bonds     the bond reader (oracle.bonds.bond_book_from_view: the view's indexed stakes)
    merkle    building the rewards tree (`oracle.settlement.RewardsTree`)
    settle    the rest of `compute_epoch`

After the settlement, the reference `oracle.bonds.read_bond_book` (eth_calls in JSON-RPC batches)
is timed over the same owners on the same chain state (`bond_read_eth_call_seconds`), and
`bond_books_equal` says whether the two books are the same.

It runs as `python -m bench.oracle_service_settle ...` so `settle_rss_peak_mb` (VmHWM) is the
settlement's own peak, not the load generator's; it prints one JSON object.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

TIMED_MODULES = ("oracle.epoch", "oracle.site_settlement", "oracle.portfolio", "oracle.capability_settlement")


class Timers:
    """Seconds spent in each wrapped part (nested calls of the same part count once)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` with its wall time added to `part`."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth[part] += 1
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth[part] -= 1
                if self._depth[part] == 0:
                    self.seconds[part] += time.perf_counter() - began
                    self.calls[part] += 1
        timed.__wrapped__ = function  # type: ignore[attr-defined]
        return timed


def install_timers(timers: Timers) -> None:
    """Wrap the settlement's parts where the settlement modules look them up."""
    import importlib

    from oracle import meter_store, settlement

    meter_store.readings_in_range = timers.wrap("load", meter_store.readings_in_range)  # what oracle.epoch calls
    for name in TIMED_MODULES:
        module = importlib.import_module(name)
        for function, part in (("compute_baselines", "baseline"), ("build_grid", "grid")):
            if hasattr(module, function):
                setattr(module, function, timers.wrap(part, getattr(module, function)))
    tree = settlement.RewardsTree
    settlement.RewardsTree = timers.wrap("merkle", tree)  # type: ignore[misc]


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle_from_store(config_path: Path, request_id: int) -> dict[str, Any]:
    """Settle request `request_id` from the store of the oracle configured in `config_path`."""
    from oracle import db
    from oracle.bonds import bond_book_from_view, read_bond_book
    from oracle.chain_view import ChainView
    from oracle.config import load_config
    from oracle.epoch import compute_epoch
    from oracle.report_store import report_document
    from protocol.capability import CapabilityRules
    from protocol.chain import connect
    from protocol.manifest import load_manifest

    config = load_config(config_path)
    manifest = load_manifest(config.manifest)
    web3 = connect(config.rpc_url)
    engine = db.make_engine(config.database_url)
    cursor_store = db.make_engine("sqlite://")  # the view's cursor is not written into the oracle's store
    db.init_db(cursor_store)
    began = time.perf_counter()
    view = ChainView(web3, manifest, cursor_store, confirmations=config.confirmations)
    view.sync()
    chain_view_seconds = time.perf_counter() - began
    hub, staking = manifest.contract(web3, "OracleHub"), manifest.contract(web3, "Staking")
    economics = config.economics.build(fee_account=hub.functions.treasury().call(),
                                       protocol_token=manifest.address("NegawattToken"))
    economics = replace(economics, tests=CapabilityRules.from_parameters(manifest.parameters))
    request = view.request(request_id)
    if request is None:
        raise RuntimeError(f"request {request_id} is not on the chain")

    timers = Timers()
    install_timers(timers)
    books: list[tuple[set[str], Any]] = []

    def view_book(owners: Any) -> Any:
        owners = set(owners)
        book = bond_book_from_view(view, owners)
        books.append((owners, book))
        return book

    bond_reader = timers.wrap("bonds", view_book)
    began = time.perf_counter()
    settlement, details = compute_epoch(engine, [request], view.devices(), economics, 1, bytes(32), {},
                                        hub.functions.emissionBudget().call(), bond_reader=bond_reader,
                                        devices_at=view.devices_at)
    total = time.perf_counter() - began
    began = time.perf_counter()
    digest = settlement.report.digest(manifest.chainId, hub.address)
    document = report_document(digest, settlement, details)
    document_seconds = time.perf_counter() - began

    began = time.perf_counter()
    reference = [read_bond_book(staking, owners) for owners, _book in books]
    eth_call_seconds = time.perf_counter() - began
    equal = all(ref == book for ref, (_owners, book) in zip(reference, books))

    parts = {part: round(timers.seconds.get(part, 0.0), 3) for part in ("load", "baseline", "grid", "bonds", "merkle")}
    rest = total - sum(timers.seconds.get(part, 0.0) for part in ("load", "baseline", "bonds", "merkle"))
    result = settlement.requests[0]
    paid = [d for d in result.devices if d.owner_payout or d.fee]
    return {
        "settle_from_store_seconds": round(total, 3),
        "load_seconds": parts["load"],
        "baseline_seconds": parts["baseline"],
        "settle_seconds": round(rest, 3),
        "merkle_seconds": parts["merkle"],
        "grid_seconds": parts["grid"],  # inside settle_seconds
        "bond_read_seconds": parts["bonds"],
        "bond_read_eth_call_seconds": round(eth_call_seconds, 3),
        "bond_owners": sum(len(owners) for owners, _book in books),
        "bond_books_equal": equal,
        "report_document_seconds": round(document_seconds, 3),
        "settle_chain_view_seconds": round(chain_view_seconds, 3),
        "settle_rss_peak_mb": round(_peak_rss_mb(), 1),
        "settled_units": len(result.devices),
        "settled_units_paid": len(paid),
        "settled_payout": int(result.payout),
        "settled_delivered_wh": int(result.delivered_wh),
        "settled_devices_in_document": sum(len(r.devices) for r in document.requests),
        "settled_reasons": dict(sorted(Counter(r for d in result.devices for r in d.reasons).items())),
        "rewards_leaves": len(settlement.tree) if settlement.tree is not None else 0,
        "load_calls": timers.calls.get("load", 0),
    }


def main(config: Path = typer.Option(..., "--config", help="the oracle's TOML config"),
         request_id: int = typer.Option(..., "--request-id", min=1)) -> None:
    """Print the timed settlement of one request from the oracle's store as one JSON object."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    typer.echo(json.dumps(settle_from_store(config, request_id)))


if __name__ == "__main__":
    typer.run(main)
