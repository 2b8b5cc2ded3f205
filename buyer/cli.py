"""`negawatt buyer ...`: open, watch, cancel and list flexibility requests, and read a zone's forecast.

Every refusal is one line on stderr ("error: ...") with exit code 2, and `open` and `cancel` refuse
before any transaction. Options override the NEGAWATT_BUYER_* settings (buyer.settings); the
keystore password comes from NEGAWATT_BUYER_PASSWORD or a hidden prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer

buyer_app = typer.Typer(help="A grid buyer's tools: open, watch, cancel and list requests; read forecasts.",
                        no_args_is_help=True)

RPC = typer.Option(None, "--rpc-url", help="JSON-RPC endpoint [env NEGAWATT_BUYER_RPC_URL]")
MANIFEST = typer.Option(None, "--manifest", help="deployment manifest [env NEGAWATT_BUYER_MANIFEST]")
API = typer.Option(None, "--api-url", help="the negawatt API [env NEGAWATT_BUYER_API_URL]")
KEYSTORE = typer.Option(None, "--keystore", help="the buyer's encrypted keystore [env NEGAWATT_BUYER_KEYSTORE]")
JSON_OUT = typer.Option(False, "--json", help="print one JSON object")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _settings(rpc_url: str | None = None, manifest: Path | None = None, api_url: str | None = None,
              keystore: Path | None = None) -> Any:
    from pydantic import ValidationError

    from buyer.settings import BuyerSettings

    overrides = {k: v for k, v in {"rpc_url": rpc_url, "manifest": manifest, "api_url": api_url,
                                   "keystore": keystore}.items() if v is not None}
    try:
        return BuyerSettings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        _fail(f"setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")


def _chain(settings: Any) -> tuple[Any, Any]:
    from buyer.checks import BuyerError
    from buyer.market import market_of
    from protocol.chain import ChainError, connect
    from protocol.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(settings.manifest)
        web3 = connect(settings.rpc_url)
        market_of(web3, manifest)
    except (ManifestError, ChainError, BuyerError) as error:
        _fail(str(error))
    return web3, manifest


def _key(settings: Any) -> bytes:
    from buyer.settings import buyer_password
    from protocol.keys import KeyError_, load_key

    try:
        password = buyer_password(lambda: typer.prompt("keystore password", hide_input=True))
        return load_key(settings.keystore, password)
    except KeyError_ as error:
        _fail(str(error))


def _keystore_address(path: Path) -> str:
    """The address a keystore names in clear (no password needed to list a buyer's requests)."""
    from eth_utils import is_address, to_checksum_address

    try:
        text = path.read_text()[:100_000]
        address = json.loads(text).get("address", "")
    except (OSError, ValueError, AttributeError):
        _fail(f"cannot read the keystore {path}; give --buyer ADDRESS")
    address = address if str(address).startswith("0x") else f"0x{address}"
    if not is_address(address):
        _fail(f"the keystore {path} names no address; give --buyer ADDRESS")
    return to_checksum_address(address)


def _token_address(token: str, manifest: Any) -> str:
    """An address as given, or the address of a manifest contract of that name (e.g. MockStablecoin)."""
    entry = manifest.contracts.get(token)
    return entry.address if entry is not None else token


@buyer_app.command("open")
def open_(
    zone: int = typer.Option(..., "--zone", help="the grid zone (uint32)"),
    start: str = typer.Option(..., "--start", help="window start: ISO 8601 with a timezone, or unix seconds"),
    end: str = typer.Option(..., "--end", help="window end: ISO 8601 with a timezone, or unix seconds"),
    target_kw: str = typer.Option(..., "--target-kw", help="power to curtail, kW (at most 3 decimals)"),
    max_price_per_kwh: str = typer.Option(..., "--max-price-per-kwh",
                                          help="ceiling price per delivered kWh, in token units (e.g. 0.30)"),
    token: str = typer.Option(..., "--token", help="payment token: an address, or a manifest contract name"),
    budget: str = typer.Option(..., "--budget", help="escrow, in token units; at least target x hours x price"),
    availability_price_per_kw_h: str | None = typer.Option(
        None, "--availability-price-per-kw-h",
        help="ceiling per kW of accepted power per hour of availability, token units (refused by a market "
             "that pays no availability)"),
    rpc_url: str | None = RPC, manifest: Path | None = MANIFEST, keystore: Path | None = KEYSTORE,
    as_json: bool = JSON_OUT,
) -> None:
    """Open a request: check every argument, authorise the escrow (an ERC-2612 permit when the token
    takes one, else an approval), then openRequest. Two transactions; nothing is sent on a refusal."""
    from buyer.checks import (BuyerError, format_kw, format_units, kw_to_watts, make_order, max_payment,
                              parse_time, to_base_units)
    from buyer.market import prepare_open, send_open
    from buyer.token import inspect_token

    settings = _settings(rpc_url, manifest, None, keystore)
    try:
        start_s, end_s = parse_time(start, "--start"), parse_time(end, "--end")
        target_w = kw_to_watts(target_kw)
    except BuyerError as error:
        _fail(str(error))
    web3, deployment = _chain(settings)
    key = _key(settings)
    from eth_account import Account

    buyer = Account.from_key(key).address
    market_address = deployment.address("FlexMarket")
    try:
        info = inspect_token(web3, _token_address(token, deployment), buyer, market_address)
        price = to_base_units(max_price_per_kwh, info.decimals, "--max-price-per-kwh")
        escrow = to_base_units(budget, info.decimals, "--budget")
        availability = None if availability_price_per_kw_h is None else \
            to_base_units(availability_price_per_kw_h, info.decimals, "--availability-price-per-kw-h")
        order = make_order(zone=zone, start=start_s, end=end_s, target_w=target_w, price_per_kwh=price,
                           token=info.address, budget=escrow, availability_price=availability)
        info, rules = prepare_open(web3, deployment, buyer, order, token=info)
    except BuyerError as error:
        _fail(str(error))
    funding = "existing allowance" if info.allowance >= escrow else ("permit" if info.has_permit else "approve")
    money = lambda amount: format_units(amount, info.decimals, info.symbol)  # noqa: E731
    if not as_json:
        steps = "openRequest (1 transaction)" if funding == "existing allowance" else f"{funding} + openRequest " \
                                                                                    "(2 transactions)"
        typer.echo(f"opening for {buyer}: zone {zone}, {format_kw(target_w)} from {start_s} to {end_s}, ceiling "
                   f"{money(price)}/kWh, escrow {money(escrow)} (the most it can pay: "
                   f"{money(max_payment(target_w, end_s - start_s, price, availability or 0))})"
                   + (f", availability ceiling {money(availability)}/kW·h" if availability else "") + f"; {steps}")
    try:
        opened = send_open(web3, deployment, key, order, info, rules)
    except BuyerError as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps({"requestId": opened.request_id, "funding": opened.funding, "buyer": buyer,
                               "transactions": opened.transactions}))
    else:
        typer.echo(f"request {opened.request_id} opened ({opened.funding}); transactions: "
                   f"{', '.join(opened.transactions)}")


@buyer_app.command("cancel")
def cancel(
    request_id: int = typer.Argument(..., min=1, help="the request's id"),
    rpc_url: str | None = RPC, manifest: Path | None = MANIFEST, keystore: Path | None = KEYSTORE,
) -> None:
    """Cancel an open request of yours before its start (and before its allocation): the whole escrow
    comes back."""
    from eth_account import Account

    from buyer.checks import BuyerError, format_units
    from buyer.market import cancel_request, check_cancel
    from buyer.views import token_label

    settings = _settings(rpc_url, manifest, None, keystore)
    web3, deployment = _chain(settings)
    key = _key(settings)
    try:
        check_cancel(web3, deployment, Account.from_key(key).address, request_id)
        refund = cancel_request(web3, deployment, key, request_id)
    except BuyerError as error:
        _fail(str(error))
    from buyer.chain_view import read_request

    request = read_request(deployment.contract(web3, "FlexMarket"), request_id)
    decimals, symbol = token_label(web3, request.token) if request else (0, "units")
    typer.echo(f"request {request_id} cancelled: refunded {format_units(refund, decimals, symbol)}")


@buyer_app.command("status")
def status(
    request_id: int = typer.Argument(..., min=1, help="the request's id"),
    rpc_url: str | None = RPC, manifest: Path | None = MANIFEST, api_url: str | None = API,
    as_json: bool = JSON_OUT,
) -> None:
    """A request's state, verdict first: requested, accepted, delivered (95 % CI), paid, refunded;
    from the chain and the API (the chain's view alone when the API is down)."""
    from buyer.checks import BuyerError
    from buyer.views import details, gather_status, status_json, verdict

    settings = _settings(rpc_url, manifest, api_url)
    web3, deployment = _chain(settings)
    try:
        view = gather_status(web3, deployment, settings.api_url, request_id, settings.api_timeout)
    except BuyerError as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps(status_json(view)))
        return
    typer.echo(verdict(view))
    for line in details(view):
        typer.echo(f"  {line}")


@buyer_app.command("list")
def list_(
    buyer: str | None = typer.Option(None, "--buyer",
                                     help="the buyer's address (default: the keystore's)"),
    rpc_url: str | None = RPC, manifest: Path | None = MANIFEST, api_url: str | None = API,
    keystore: Path | None = KEYSTORE, as_json: bool = JSON_OUT,
) -> None:
    """Your requests, newest first, one line each (from the API; from the chain when it is down)."""
    from dataclasses import asdict

    from eth_utils import is_address, to_checksum_address

    from buyer.views import list_line, list_requests, token_label

    settings = _settings(rpc_url, manifest, api_url, keystore)
    if buyer is not None and (len(buyer) > 42 or not is_address(buyer)):
        _fail(f"--buyer {buyer[:60]!r} is not an address")
    address = to_checksum_address(buyer) if buyer else _keystore_address(settings.keystore)
    web3, deployment = _chain(settings)
    items, api_problem = list_requests(web3, deployment, settings.api_url, address, settings.api_timeout)
    if as_json:
        typer.echo(json.dumps({"buyer": address, "source": "chain" if api_problem else "api",
                               "requests": [{**asdict(i), "price_per_kwh": str(i.price_per_kwh),
                                             "budget": str(i.budget)} for i in items]}))
        return
    if api_problem:
        typer.echo(f"API: {api_problem}; listed from the chain's RequestOpened events", err=True)
    if not items:
        typer.echo(f"no requests by {address}")
    labels: dict[str, tuple[int, str]] = {}
    for item in items:
        typer.echo(list_line(item, *token_label(web3, item.token, labels)))


@buyer_app.command("forecast")
def forecast(
    zone: int = typer.Option(..., "--zone", min=0, help="the grid zone"),
    start: str = typer.Option(..., "--start", help="window start: ISO 8601 with a timezone, or unix seconds"),
    end: str = typer.Option(..., "--end", help="window end: ISO 8601 with a timezone, or unix seconds"),
    price: str | None = typer.Option(None, "--price", help="price to size at, token units per kWh "
                                                            "(default: the curve's highest)"),
    share_bps: int = typer.Option(8000, "--share-bps", min=0, max=10_000, help="share of the supply to request"),
    token: str = typer.Option("MockStablecoin", "--token", help="the token prices are in (address or manifest "
                                                                "contract name), for display"),
    rpc_url: str | None = RPC, manifest: Path | None = MANIFEST, api_url: str | None = API,
    as_json: bool = JSON_OUT,
) -> None:
    """A zone's forecast supply for a window: kW available at or below each price, and the size of a
    request at a share of it, to size a request before escrowing."""
    from buyer.api_client import ApiUnavailable, NotFound, fetch_supply
    from buyer.checks import BuyerError, format_kw, format_units, parse_time, to_base_units
    from buyer.views import size_from_supply, token_label

    settings = _settings(rpc_url, manifest, api_url)
    try:
        start_s, end_s = parse_time(start, "--start"), parse_time(end, "--end")
    except BuyerError as error:
        _fail(str(error))
    if end_s <= start_s:
        _fail(f"--end {end_s} is not after --start {start_s}")
    web3, deployment = _chain(settings)
    decimals, symbol = token_label(web3, _token_address(token, deployment))
    try:
        supply = fetch_supply(settings.api_url, zone, start_s, end_s, settings.api_timeout)
    except NotFound:
        _fail(f"the API at {settings.api_url} has no forecasts (no supply route for zone {zone})")
    except ApiUnavailable as error:
        _fail(str(error))
    curve = sorted((int(point.price), point.watts) for point in supply.curve)
    if not curve:
        _fail(f"no forecast supply in zone {zone} for {start_s}–{end_s}")
    try:
        at = to_base_units(price, decimals, "--price") if price is not None else curve[-1][0]
    except BuyerError as error:
        _fail(str(error))
    size = size_from_supply(curve, at, share_bps)
    holdout = int(deployment.contract(web3, "FlexMarket").functions.holdoutBps().call())
    net_size = size_from_supply(curve, at, share_bps, holdout)
    if as_json:
        typer.echo(json.dumps({"zone": zone, "start": start_s, "end": end_s, "sites": supply.sites,
                               "curve": [{"price": str(p), "watts": w} for p, w in curve],
                               "price": str(at), "shareBps": share_bps, "sizeW": size, "holdoutBps": holdout,
                               "sizeNetOfHoldoutW": net_size}))
        return
    typer.echo(f"zone {zone}, {start_s}–{end_s}, {supply.sites if supply.sites is not None else '?'} sites")
    typer.echo(f"{'price/kWh':>18}  {'kW at or below':>14}")
    for point_price, watts in curve:
        typer.echo(f"{format_units(point_price, decimals, symbol):>18}  {format_units(watts, 3):>14}")
    typer.echo(f"to size a request at {format_units(share_bps, 2)} % of the supply at price "
               f"{format_units(at, decimals, symbol)}: {format_kw(size)}")
    if holdout:
        typer.echo(f"the market holds out {format_units(holdout, 2)} % of the sites as its control group: "
                   f"{format_kw(net_size)} of that supply can be accepted")
