"""Provisioning a facade: the clients file it reads and the vtn.json its clients read.

`provision` makes one BL client bound to a buyer keystore and `ven_clients` VEN clients, each with a
random secret (32 bytes, URL-safe). The clients file gets only the secrets' SHA-256; vtn.json (mode
0600) gets the first VEN's secret and the BL's, with the URLs: `base_url`, `token_url`,
`bl_client_id`, `bl_client_secret`, `ven_client_id`, `ven_client_secret`; each further VEN client
gets its own `vtn-<id>.json` in the same layout. Used by `negawatt devnet up --vtn` and the tests.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vtn.clients import secret_digest
from vtn.settings import SPEC_VERSION


@dataclass(frozen=True)
class Provisioned:
    """The files written: the facade's clients file and each VEN client's vtn.json (the first is vtn.json)."""

    clients_file: Path
    vtn_jsons: list[Path]


def _write_private(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def provision(folder: Path, base_url: str, buyer_keystore: Path, site_keystores: list[Path],
              ven_clients: int = 1, bl_client_id: str = "dso-bl") -> Provisioned:
    """Write `folder`/vtn-clients.json and `folder`/vtn.json (plus vtn-<id>.json per further VEN client)."""
    folder.mkdir(parents=True, exist_ok=True)
    bl_secret = secrets.token_urlsafe(32)
    vens = [(f"ven-{n + 1}", secrets.token_urlsafe(32)) for n in range(ven_clients)]
    clients = [{"client_id": bl_client_id, "secret_sha256": secret_digest(bl_secret), "role": "BL",
                "buyer_keystore": os.path.relpath(buyer_keystore, folder)}]
    clients += [{"client_id": cid, "secret_sha256": secret_digest(secret), "role": "VEN"} for cid, secret in vens]
    clients_file = folder / "vtn-clients.json"
    _write_private(clients_file, {"clients": clients,
                                  "sites": [{"keystore": os.path.relpath(p, folder)} for p in site_keystores]})
    base = base_url.rstrip("/")
    written = []
    for position, (cid, secret) in enumerate(vens):
        path = folder / ("vtn.json" if position == 0 else f"vtn-{cid}.json")
        _write_private(path, {"openadr_version": SPEC_VERSION, "base_url": base, "token_url": f"{base}/auth/token",
                              "bl_client_id": bl_client_id, "bl_client_secret": bl_secret,
                              "ven_client_id": cid, "ven_client_secret": secret})
        written.append(path)
    return Provisioned(clients_file, written)
