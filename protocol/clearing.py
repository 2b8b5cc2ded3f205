"""The market's clearing rule: one deterministic allocation of a request's offers, and its Merkle tree.

After a request's gate closure every oracle runs `clear` on the same offer set and gets the same
allocation, root included, byte for byte: amounts are integers (W, token base units per kWh),
ratios are exact Fractions, inputs are validated and sorted before use, and the result depends
neither on the order of the offers nor on the iteration order of the reliability mapping.

Offers. Each device of a site offers at most two tranches: tranche 0 (confident, at its minimum
price) and tranche 1 (less certain, normally at a higher price). A device without a site meter is
its own site. An offer with watts <= 0, price < 0, a tranche other than 0 or 1, a bad address, a
duplicate (device, tranche) or a device offered under two sites raises ValueError saying which
(the oracle validates offers before; this is the last guard).

Availability (Electron-style, a request that pays it): an offer also names the least it takes per kW
of accepted power per hour of the window (`availability_price`, one per device commitment, the same
for both tranches), and the buyer sets an availability ceiling (0: the request pays none, and only
offers asking 0 can clear). Offers are ranked on what a fully delivered kWh costs the buyer,
utilisation price + availability price (a kW available for an hour and delivered for it is one kWh).

The rule, for request r with target_w, the buyer's ceiling price, its availability ceiling and
margin_bps:

    cap_w          = target_w * (10_000 + margin_bps) // 10_000
    control group  = the sites with held_out(site) True: never accepted
    merit order    = the other offers by
                       price + availability_price ascending,
                       then the site's merit ratio descending (exact Fraction comparison),
                       then site address, then device address (lowercase hex ascending),
                       then tranche ascending
    merit ratio    = min(delivered_wh / accepted_wh, 1) from the site's Reliability record;
                     a site with no record (accepted_wh == 0, or absent from the mapping) ranks
                     as 1, level with a site that delivered everything it was accepted for.
                     Delivering more than was accepted earns no precedence: the buyer asked for
                     no more, it is not paid, and an estimate's noise above 100 % must not
                     outrank a site that delivered exactly.
    walk           = in merit order, with remaining = cap_w:
                       an offer priced above the ceiling, or asking availability above the
                         availability ceiling, is passed over;
                       a tranche 1 whose device's tranche 0 has not been accepted in full before
                         it is passed over (the less certain tranche stacks on the confident one:
                         a device is never asked for its uncertain watts without its confident
                         ones; a tranche 1 without a tranche 0, or priced below it, is so never
                         accepted);
                       with remaining == 0 the walk ends;
                       an offer that fits (watts <= remaining) is accepted whole;
                       the first one that does not fit is accepted partially, for the remaining
                         watts (partial acceptance of the marginal offer), and the walk ends.
    clearing price = the highest price among the accepted offers (without availability, the
                     marginal one's, since the walk is in price order): uniform, paid to every
                     accepted watt, never above the ceiling; 0 when nothing is accepted
    availability price = the highest availability_price among the accepted offers: uniform, never
                     above the availability ceiling; 0 when nothing is accepted. Taking the highest
                     of each component pays every accepted offer at least what it asked on both.
    acceptance(d)  = the sum of device d's accepted tranches (only devices with watts > 0)
    control sites  = the held-out sites with at least one offer priced <= the clearing price and
                     asking <= the availability price (they would have been in the money, so they
                     are a control group comparable to the accepted sites); empty when nothing is
                     accepted

Capability caps (proof of flexibility, protocol.capability), when `site_caps` is given: before the
walk, each site's offers are cut to its cap (`site_caps(site)`, W: its latest passed tested W, or the
probationary cap of a site that never passed a test). A site's offers are taken tranche 0 first, then
tranche 1, each in (price + availability price, device address) order; each keeps
min(watts, what is left of the cap) and an offer left with 0 W is dropped. The walk then runs on the
cut offers, so a site is never accepted for more than it was tested to shed. Without `site_caps`
(None) nothing is cut.

Over-procurement margin (`margin_bps_from_history`), over the zone's last settled requests:

    margin_bps = (sum accepted_wh) * 10_000 // (sum delivered_wh) - 10_000   (floor)
                 clamped to [MIN_MARGIN_BPS, MAX_MARGIN_BPS] = [0, 5_000]
    DEFAULT_MARGIN_BPS (1_000, 10 %) when nothing was accepted (no history);
    MAX_MARGIN_BPS when something was accepted and nothing delivered (the limit of the rule as
    delivery falls to zero: a zone that delivered nothing gets the most cover the rule allows).

So a zone that delivered 80 % of what it was accepted for is over-procured by 1/0.8 - 1 = 25 %,
and its expected delivery is the target again.

Allocation tree: leaves (uint256 requestId, address device, uint256 acceptedW, uint256
clearingPrice), laid out as OpenZeppelin's StandardMerkleTree (see protocol.merkle): leaf hash =
keccak256(keccak256(abi.encode(...))), leaf hashes sorted ascending at the end of a complete binary
tree in array form, parents hash their children in sorted order. The root is 32 zero bytes when
nothing is accepted. A node curtails only what its leaf says, after `verify_acceptance` of its
leaf and proof against the root posted on chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from eth_utils import keccak

from protocol.addresses import checksummed
from protocol.merkle import hash_pair, process_proof
from protocol.units import BPS

ALLOCATION_LEAF_TYPES = ["uint256", "address", "uint256", "uint256"]  # (requestId, device, acceptedW, clearingPrice)
ZERO_ROOT = b"\x00" * 32

MIN_MARGIN_BPS = 0
MAX_MARGIN_BPS = 5_000  # at most 50 % over-procurement
DEFAULT_MARGIN_BPS = 1_000  # 10 % when the zone has no record

TRANCHES = (0, 1)
_UINT256 = 2**256


@dataclass(frozen=True)
class Offer:
    """One tranche of one device's offer: `watts` at a minimum `price` per kWh (payment-token base units)."""

    site: str
    device: str
    tranche: int
    watts: int
    price: int
    availability_price: int = 0  # per kW per hour of availability (payment-token base units)


@dataclass(frozen=True)
class Reliability:
    """A site's record over its settled requests: energy delivered and energy accepted (Wh)."""

    delivered_wh: int
    accepted_wh: int

    def ratio(self) -> Fraction:
        """delivered / accepted, exactly; 1 for a site with no record (accepted_wh == 0)."""
        if self.accepted_wh == 0:
            return Fraction(1)
        return Fraction(self.delivered_wh, self.accepted_wh)


@dataclass(frozen=True)
class Acceptance:
    """What one device must shed for the request: the sum of its accepted tranches (W)."""

    device: str
    site: str
    watts: int


@dataclass(frozen=True)
class Allocation:
    """The outcome of clearing one request; its root is what k of n oracles sign and post on chain."""

    request_id: int
    clearing_price: int
    accepted_w: int
    cap_w: int
    margin_bps: int
    accepted: tuple[Acceptance, ...]
    control_sites: tuple[str, ...]
    availability_price: int = 0  # uniform, per kW per hour; 0 for a request that pays no availability

    def __post_init__(self) -> None:
        keys = [_key(a.device) for a in self.accepted]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise ValueError("allocation: acceptances must be sorted by device address, one per device")
        if any(not _is_int(a.watts) or a.watts <= 0 for a in self.accepted):
            raise ValueError("allocation: every acceptance must have integer watts > 0")
        if sum(a.watts for a in self.accepted) != self.accepted_w:
            raise ValueError(f"allocation: accepted_w {self.accepted_w} is not the sum of the acceptances")
        if self.accepted_w > self.cap_w:
            raise ValueError(f"allocation: accepted_w {self.accepted_w} exceeds cap_w {self.cap_w}")

    def root(self) -> bytes:
        """The Merkle root over the accepted leaves; 32 zero bytes when nothing is accepted."""
        tree, _ = self._tree
        return tree[0] if tree else ZERO_ROOT

    def proof(self, device: str) -> list[bytes]:
        """Sibling hashes from `device`'s leaf up to the root; KeyError if the device is not accepted."""
        tree, position = self._tree
        index = position.get(_key(device)) if _looks_like_address(device) else None
        if index is None:
            raise KeyError(f"device {device} has no acceptance in request {self.request_id}")
        path = []
        while index > 0:
            path.append(tree[index + 1 if index % 2 == 1 else index - 1])
            index = (index - 1) // 2
        return path

    def acceptance(self, device: str) -> Acceptance | None:
        """`device`'s acceptance (any address casing), or None if it was not accepted."""
        if not _looks_like_address(device):
            return None
        return self._by_device.get(_key(device))

    @cached_property
    def _by_device(self) -> dict[str, Acceptance]:
        return {_key(a.device): a for a in self.accepted}

    @cached_property
    def _tree(self) -> tuple[list[bytes], dict[str, int]]:
        hashed = sorted(
            (allocation_leaf_hash(self.request_id, a.device, a.watts, self.clearing_price), _key(a.device))
            for a in self.accepted
        )
        size = 2 * len(hashed) - 1 if hashed else 0
        tree: list[bytes] = [b""] * size
        position: dict[str, int] = {}
        for i, (hash_, key) in enumerate(hashed):
            tree[size - 1 - i] = hash_
            position[key] = size - 1 - i
        for i in range(size - 1 - len(hashed), -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        return tree, position


def allocation_leaf_hash(request_id: int, device: str, accepted_w: int, clearing_price: int) -> bytes:
    """keccak256(keccak256(abi.encode(uint256 requestId, address device, uint256 acceptedW, uint256 clearingPrice))).

    All four are static ABI types (one left-padded 32-byte word each), so the encoding is built
    directly, as in protocol.merkle. ValueError if a value is out of range or not an address."""
    for name, value in (("request_id", request_id), ("accepted_w", accepted_w), ("clearing_price", clearing_price)):
        if not _is_int(value) or not 0 <= value < _UINT256:
            raise ValueError(f"{name} out of uint256 range: {value!r}")
    address = bytes.fromhex(checksummed(device)[2:])
    encoded = (
        request_id.to_bytes(32, "big")
        + bytes(12)
        + address
        + accepted_w.to_bytes(32, "big")
        + clearing_price.to_bytes(32, "big")
    )
    return keccak(keccak(encoded))


def verify_acceptance(
    root: bytes, request_id: int, device: str, accepted_w: int, clearing_price: int, proof: list[bytes]
) -> bool:
    """Whether the leaf (request_id, device, accepted_w, clearing_price) is under `root`.

    What a node runs before curtailing: it sheds only what a leaf proven against the on-chain root
    says. Never raises: a malformed value, a proof element that is not 32 bytes, or the empty root
    (nothing accepted) gives False."""
    if not isinstance(root, (bytes, bytearray)) or len(root) != 32 or bytes(root) == ZERO_ROOT:
        return False
    if not isinstance(proof, (list, tuple)) or any(
        not isinstance(p, (bytes, bytearray)) or len(p) != 32 for p in proof
    ):
        return False
    if not _is_int(accepted_w) or accepted_w <= 0:
        return False
    try:
        leaf = allocation_leaf_hash(request_id, device, accepted_w, clearing_price)
    except (ValueError, TypeError):
        return False
    return process_proof(leaf, [bytes(p) for p in proof]) == bytes(root)


def margin_bps_from_history(zone_history: Sequence[Reliability]) -> int:
    """The over-procurement margin (bps) for a zone from its last settled requests (module docstring).

    A zone that delivers less than it is accepted for gets proportionally more accepted, so the
    expected delivery meets the target; the clamp keeps a bad record from buying unbounded cover."""
    accepted = 0
    delivered = 0
    for record in zone_history:
        _check_reliability(record, "zone history")
        accepted += record.accepted_wh
        delivered += record.delivered_wh
    if accepted == 0:
        return DEFAULT_MARGIN_BPS
    if delivered == 0:
        return MAX_MARGIN_BPS
    margin = accepted * BPS // delivered - BPS
    return max(MIN_MARGIN_BPS, min(MAX_MARGIN_BPS, margin))


def cap_for(target_w: int, margin_bps: int) -> int:
    """The most a request accepts: target_w * (10_000 + margin_bps) // 10_000 (W, floor)."""
    return target_w * (BPS + margin_bps) // BPS


def clear(
    request_id: int,
    target_w: int,
    ceiling: int,
    offers: Iterable[Offer],
    reliability: Mapping[str, Reliability],
    margin_bps: int,
    held_out: Callable[[str], bool],
    availability_ceiling: int = 0,
    site_caps: Callable[[str], int] | None = None,
) -> Allocation:
    """Clear one request's offers into its allocation by the rule of the module docstring.

    Every oracle computes the same allocation from the same offer set, whatever the order it
    received the offers in; ValueError says which input was wrong. `held_out` is called once per
    site, with its checksummed address."""
    for name, value in (("request_id", request_id), ("target_w", target_w), ("ceiling", ceiling),
                        ("availability_ceiling", availability_ceiling)):
        if not _is_int(value) or not 0 <= value < _UINT256:
            raise ValueError(f"{name} must be an integer within uint256, got {value!r}")
    if not _is_int(margin_bps) or not MIN_MARGIN_BPS <= margin_bps <= MAX_MARGIN_BPS:
        raise ValueError(f"margin_bps must be within {MIN_MARGIN_BPS}..{MAX_MARGIN_BPS}, got {margin_bps!r}")
    normalised = _normalise_offers(offers)
    if site_caps is not None:
        normalised = cap_offers(normalised, site_caps)
    ratios = _merit_ratios(reliability)
    control = {site for site in sorted({o.site for o in normalised}, key=_key) if held_out(site)}
    merit = sorted(
        (o for o in normalised if o.site not in control),
        key=lambda o: (o.price + o.availability_price, -ratios.get(_key(o.site), Fraction(1)), _key(o.site),
                       _key(o.device), o.tranche),
    )
    cap_w = cap_for(target_w, margin_bps)
    remaining = cap_w
    taken: dict[str, int] = {}
    full_confident: set[str] = set()
    sites: dict[str, str] = {}
    clearing_price = 0
    availability_price = 0
    for offer in merit:
        if remaining == 0:
            break
        if offer.price > ceiling or offer.availability_price > availability_ceiling:
            continue
        device = _key(offer.device)
        if offer.tranche == 1 and device not in full_confident:
            continue
        take = min(offer.watts, remaining)
        taken[device] = taken.get(device, 0) + take
        sites[device] = offer.site
        remaining -= take
        clearing_price = max(clearing_price, offer.price)
        availability_price = max(availability_price, offer.availability_price)
        if take < offer.watts:
            break
        if offer.tranche == 0:
            full_confident.add(device)
    accepted = tuple(
        Acceptance(device=checksummed(device), site=sites[device], watts=taken[device]) for device in sorted(taken)
    )
    control_sites: tuple[str, ...] = ()
    if accepted:
        in_money = {o.site for o in normalised if o.site in control and o.price <= clearing_price
                    and o.availability_price <= availability_price}
        control_sites = tuple(sorted(in_money, key=_key))
    return Allocation(
        request_id=request_id,
        clearing_price=clearing_price,
        accepted_w=cap_w - remaining,
        cap_w=cap_w,
        margin_bps=margin_bps,
        accepted=accepted,
        control_sites=control_sites,
        availability_price=availability_price,
    )


def cap_offers(offers: Iterable[Offer], site_caps: Callable[[str], int]) -> list[Offer]:
    """The offers cut to their sites' capability caps (module docstring); `site_caps` is called once per
    site with its checksummed address and must give an integer >= 0."""
    by_site: dict[str, list[Offer]] = {}
    for offer in offers:
        by_site.setdefault(_key(offer.site), []).append(offer)
    result: list[Offer] = []
    for site in sorted(by_site):
        group = sorted(by_site[site], key=lambda o: (o.tranche, o.price + o.availability_price, _key(o.device)))
        left = site_caps(group[0].site)
        if not _is_int(left) or left < 0:
            raise ValueError(f"site {group[0].site}: capability cap must be an integer >= 0, got {left!r}")
        for offer in group:
            take = min(offer.watts, left)
            left -= take
            if take > 0:
                result.append(offer if take == offer.watts else Offer(offer.site, offer.device, offer.tranche, take,
                                                                      offer.price, offer.availability_price))
    return result


def _normalise_offers(offers: Iterable[Offer]) -> list[Offer]:
    """The offers with checksummed addresses, after the last-guard checks of the module docstring."""
    result: list[Offer] = []
    seen: set[tuple[str, int]] = set()
    site_of: dict[str, str] = {}
    for offer in offers:
        try:
            site, device = checksummed(offer.site), checksummed(offer.device)
        except ValueError as exc:
            raise ValueError(f"offer {offer}: site and device must be addresses ({exc})") from None
        if not _is_int(offer.tranche) or offer.tranche not in TRANCHES:
            raise ValueError(f"offer of device {device}: tranche must be 0 or 1, got {offer.tranche!r}")
        if not _is_int(offer.watts) or offer.watts <= 0:
            raise ValueError(f"offer of device {device} tranche {offer.tranche}: watts must be > 0, got {offer.watts!r}")
        if not _is_int(offer.price) or not 0 <= offer.price < _UINT256:
            raise ValueError(
                f"offer of device {device} tranche {offer.tranche}: price must be an integer >= 0, got {offer.price!r}"
            )
        if (_key(device), offer.tranche) in seen:
            raise ValueError(f"duplicate offer: device {device} tranche {offer.tranche} offered twice")
        seen.add((_key(device), offer.tranche))
        known = site_of.setdefault(_key(device), site)
        if known != site:
            raise ValueError(f"device {device} offered under two sites: {known} and {site}")
        if not _is_int(offer.availability_price) or not 0 <= offer.availability_price < _UINT256:
            raise ValueError(f"offer of device {device} tranche {offer.tranche}: availability price must be an "
                             f"integer >= 0, got {offer.availability_price!r}")
        result.append(Offer(site=site, device=device, tranche=offer.tranche, watts=offer.watts, price=offer.price,
                            availability_price=offer.availability_price))
    return result


def _merit_ratios(reliability: Mapping[str, Reliability]) -> dict[str, Fraction]:
    """Each site's merit ratio min(delivered / accepted, 1), keyed by lowercase address."""
    ratios: dict[str, Fraction] = {}
    records: dict[str, Reliability] = {}
    for site, record in reliability.items():
        _check_reliability(record, f"site {site}")
        key = _key(checksummed(site))
        if key in records and (records[key].delivered_wh, records[key].accepted_wh) != (
            record.delivered_wh,
            record.accepted_wh,
        ):
            raise ValueError(f"site {site} has two different reliability records (address casing)")
        records[key] = record
        ratios[key] = min(record.ratio(), Fraction(1))
    return ratios


def _check_reliability(record: Reliability, where: str) -> None:
    if not (_is_int(record.delivered_wh) and _is_int(record.accepted_wh)):
        raise ValueError(f"{where}: reliability amounts must be integers (Wh)")
    if record.delivered_wh < 0 or record.accepted_wh < 0:
        raise ValueError(f"{where}: reliability amounts must be >= 0 Wh, got {record}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _looks_like_address(value: object) -> bool:
    return isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X")


def _key(address: str) -> str:
    """The address in lowercase hex: the order and the identity every comparison uses."""
    return "0x" + address[2:].lower()
