"""The devnet's grid buyer, using the buyer's own tools: `negawatt buyer forecast` to size a request
on a zone's forecast supply, `negawatt buyer open` to open it, `negawatt buyer status` to read it.

Each is the real command in its own process, configured as a buyer would configure it
(`NEGAWATT_BUYER_*`: the devnet's RPC, manifest and API, an encrypted keystore holding the buyer's
key); a refusal or failure raises DevnetError with the command's own message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from negawatt.devnet.network import DevnetError

PASSWORD_ENV = "NEGAWATT_BUYER_PASSWORD"


class DemoBuyer:
    """Runs `negawatt buyer ...` for the devnet's buyer key."""

    def __init__(self, run_dir: Path, rpc_url: str, manifest: Path, api_url: str, key: bytes, password: str):
        from protocol.keys import write_keystore

        self.keystore = run_dir / "buyer-keystore.json"
        if not self.keystore.exists():
            write_keystore(self.keystore, key, password)
        self.env = {**os.environ, "NEGAWATT_BUYER_RPC_URL": rpc_url, "NEGAWATT_BUYER_MANIFEST": str(manifest),
                    "NEGAWATT_BUYER_API_URL": api_url, "NEGAWATT_BUYER_KEYSTORE": str(self.keystore),
                    PASSWORD_ENV: password}
        self.cwd = run_dir

    def run(self, *args: str) -> dict[str, Any]:
        """`negawatt buyer ARGS --json`: its JSON answer; DevnetError with its message on a refusal."""
        command = [str(Path(sys.executable).parent / "negawatt"), "buyer", *args, "--json"]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=120)
        if done.returncode != 0:
            raise DevnetError(f"negawatt buyer {args[0]} failed: {(done.stderr or done.stdout).strip()[-600:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def forecast(self, zone: int, start: int, end: int, price: str, share_bps: int) -> dict[str, Any]:
        """The zone's forecast supply over [start, end), sized at `share_bps` of it at `price` (token
        units per kWh)."""
        return self.run("forecast", "--zone", str(zone), "--start", str(start), "--end", str(end), "--price", price,
                        "--share-bps", str(share_bps))

    def open(self, zone: int, start: int, end: int, target_w: int, price: str, availability: str,
             budget: str) -> dict[str, Any]:
        """Open a request (permit + openRequest); its id and transactions."""
        return self.run("open", "--zone", str(zone), "--start", str(start), "--end", str(end),
                        "--target-kw", f"{target_w / 1000:.3f}", "--max-price-per-kwh", price,
                        "--availability-price-per-kw-h", availability, "--token", "MockStablecoin",
                        "--budget", budget)

    def status(self, request_id: int) -> dict[str, Any]:
        """`negawatt buyer status`: requested, accepted, delivered (with its CI), paid, refunded."""
        return self.run("status", str(request_id))
