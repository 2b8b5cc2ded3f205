"""Shared by the stock-client scripts: read vtn.json and build openadr3-client 2.4's BL or VEN client.

These scripts run in the OpenADR venv (Python 3.12, `openadr3-client==2.4.2`), never in the
project's: they see the facade only over HTTP, configured only from vtn.json. The devnet serves plain
HTTP on loopback, so they allow insecure HTTP (and oauthlib's OAUTHLIB_INSECURE_TRANSPORT) as the
library's own docs say to for development VTNs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory  # noqa: E402
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory  # noqa: E402
from openadr3_client.version import OADRVersion  # noqa: E402


def config(path: str) -> dict:
    """The vtn.json the devnet (or the test) wrote."""
    return json.loads(Path(path).read_text())


def bl_client(path: str):
    """A stock BL client for vtn.json's BL credentials (token URL discovered via /auth/server)."""
    cfg = config(path)
    return BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=cfg["base_url"], client_id=cfg["bl_client_id"], client_secret=cfg["bl_client_secret"],
        allow_insecure_http=True, version=OADRVersion.OADR_310)


def ven_client(path: str):
    """A stock VEN client for vtn.json's VEN credentials."""
    cfg = config(path)
    return VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=cfg["base_url"], client_id=cfg["ven_client_id"], client_secret=cfg["ven_client_secret"],
        token_url=cfg["token_url"], allow_insecure_http=True, version=OADRVersion.OADR_310)


def emit(value: object) -> None:
    """Print one JSON document (what the test reads)."""
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def http_error(error: Exception) -> dict:
    """A requests HTTPError as {status, problem}."""
    response = getattr(error, "response", None)
    if response is None:
        raise error
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "problem": body}
