"""DeviceRegistry sites (issue 13): a site meter (kind 6) registers with its DevicePermit and is not
counted in its zone's flexible capacity; controllable devices register at a site with the device
key's DeviceAtSitePermit, which binds the site; they take the site's zone, belong to whoever owns
the site (a site transfer moves them, untouched), cannot change hands alone, and keep the site
registered while they exist. Ends with a hypothesis property test over random sequences of
registrations, site transfers, (de)activations and unregistrations: ownerOf(device) is the owner of
its site and the zone totals are the sum of the active controllable devices."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract_asserts import isolated, logs, reverts
from protocol import eip712
from protocol.kinds import DeviceKind

ZERO = "0x0000000000000000000000000000000000000000"
SITE_METER = int(DeviceKind.SITE_METER)
SITE_ZONE = 31
RATING_W = 17_250  # a 3 x 25 A connection
CAPACITY_W = 7_000
RECORDS_SLOT = 2  # DeviceRegistry._records, after EIP712's two fallback strings


@dataclass
class Key:
    """A device or site-meter key held by a test (as a node holds it)."""

    key: bytes
    address: str


def new_key() -> Key:
    account = Account.create()
    return Key(bytes(account.key), account.address)


def at_site_message(owner_address, device, site, kind, capacity_w, nonce, deadline):
    return {"owner": owner_address, "device": device, "site": site, "kind": kind, "capacityW": capacity_w,
            "nonce": nonce, "deadline": deadline}


@pytest.fixture
def site_permit(registry, chain_id):
    """Sign a DeviceAtSitePermit with the device key (eth-account)."""

    def sign(device: Key, owner_address: str, site: str, deadline: int, kind: int = 0,
             capacity_w: int = CAPACITY_W, nonce: int | None = None, key: bytes | None = None) -> bytes:
        nonce = registry.nonces(device.address) if nonce is None else nonce
        message = at_site_message(owner_address, device.address, site, kind, capacity_w, nonce, deadline)
        return eip712.sign(key or device.key, "DeviceAtSitePermit", message, chain_id, registry.address)

    return sign


@pytest.fixture
def recovered_at_site(registry, chain_id):
    """The address the registry recovers from `signature` when registerAtSite is called with these fields."""

    def recover(signature, owner_address, device, site, kind, capacity_w, nonce, deadline) -> str:
        message = at_site_message(owner_address, device, site, kind, capacity_w, nonce, deadline)
        return eip712.recover("DeviceAtSitePermit", message, signature, chain_id, registry.address)

    return recover


@pytest.fixture
def add_site(register):
    """Register a fresh site meter for `account` (DevicePermit, kind 6, the connection's rating)."""

    def do(account, zone: int = SITE_ZONE, rating_w: int = RATING_W) -> Key:
        site = new_key()
        register(site, account, kind=SITE_METER, capacity_w=rating_w, zone=zone)
        return site

    return do


@pytest.fixture
def add_device(registry, site_permit, now):
    """Register a fresh controllable device at `site`, sent by `account` (the site's owner)."""

    def do(site: Key, account, kind: int = 1, capacity_w: int = CAPACITY_W, device: Key | None = None):
        device = device or new_key()
        deadline = now() + 3600
        signature = site_permit(device, account.address, site.address, deadline, kind=kind, capacity_w=capacity_w)
        tx = registry.registerAtSite(device.address, site.address, kind, capacity_w, deadline, signature,
                                     sender=account)
        return device, tx

    return do


@pytest.fixture
def site(add_site, owner):
    return add_site(owner)


def info(registry, address):
    record = registry.deviceInfo(address)
    return {"owner": record.owner, "capacityW": record.capacityW, "zone": record.zone, "kind": record.kind,
            "active": record.active, "nonce": record.nonce}


def stats(registry, zone=SITE_ZONE):
    return tuple(registry.zoneStats(zone))


def stored_word(chain, registry, address) -> int:
    """The raw storage word of `address`'s record (the registry keeps one slot per device or site)."""
    slot = keccak(encode(["address", "uint256"], [address, RECORDS_SLOT]))
    return int.from_bytes(bytes(chain.provider.get_storage(registry.address, slot)), "big")


# ---------------------------------------------------------------- constants


def test_constants_match_the_protocol(registry):
    assert registry.MAX_KIND() == int(max(DeviceKind)) == 6
    assert registry.SITE_METER() == SITE_METER
    assert registry.MAX_DEVICES_PER_SITE() == 255
    assert registry.DEVICE_AT_SITE_PERMIT_TYPEHASH() == keccak(
        text="DeviceAtSitePermit(address owner,address device,address site,uint8 kind,uint32 capacityW,"
             "uint256 nonce,uint256 deadline)")


# ---------------------------------------------------------------- site meters


def test_site_meter_registers_with_its_permit_and_is_not_flexible_capacity(registry, register, owner):
    before = stats(registry)
    site = new_key()
    tx = register(site, owner, kind=SITE_METER, capacity_w=RATING_W, zone=SITE_ZONE)
    assert logs(tx) == [(registry.address, "DeviceRegistered", {
        "device": site.address, "owner": owner.address, "kind": SITE_METER, "capacityW": RATING_W,
        "zone": SITE_ZONE})]
    assert info(registry, site.address) == {"owner": owner.address, "capacityW": RATING_W, "zone": SITE_ZONE,
                                            "kind": SITE_METER, "active": True, "nonce": 1}
    assert stats(registry) == before
    assert registry.isActive(site.address)
    assert registry.ownerOf(site.address) == owner.address
    assert registry.siteOf(site.address) == ZERO
    assert registry.siteDevices(site.address) == 0


def test_site_meter_has_no_active_state(registry, site, owner):
    for action in ("deactivate", "reactivate"):
        with reverts(registry.NotControllable, device=site.address, kind=SITE_METER):
            getattr(registry, action)(site.address, sender=owner)
    assert registry.isActive(site.address)


def test_unregistered_site_meter_leaves_zone_totals_alone(registry, site, owner):
    before = stats(registry)
    tx = registry.unregister(site.address, sender=owner)
    assert logs(tx) == [(registry.address, "DeviceUnregistered", {"device": site.address, "owner": owner.address})]
    assert stats(registry) == before
    assert info(registry, site.address)["owner"] == ZERO and registry.nonces(site.address) == 1
    assert not registry.isActive(site.address)


# ---------------------------------------------------------------- devices at a site


def test_register_at_site_binds_device_to_the_site_and_its_zone(registry, site, owner, add_device):
    before = stats(registry)
    device, tx = add_device(site, owner, kind=3, capacity_w=5_000)
    assert logs(tx) == [
        (registry.address, "DeviceRegistered", {"device": device.address, "owner": owner.address, "kind": 3,
                                                "capacityW": 5_000, "zone": SITE_ZONE}),
        (registry.address, "DeviceSited", {"device": device.address, "site": site.address}),
    ]
    assert info(registry, device.address) == {"owner": owner.address, "capacityW": 5_000, "zone": SITE_ZONE,
                                              "kind": 3, "active": True, "nonce": 1}
    assert registry.siteOf(device.address) == site.address
    assert registry.ownerOf(device.address) == owner.address
    assert registry.siteDevices(site.address) == 1
    assert registry.isActive(device.address)
    assert stats(registry) == (before[0] + 1, before[1] + 5_000)
    add_device(site, owner)
    assert registry.siteDevices(site.address) == 2


def test_each_record_is_one_storage_slot(chain, registry, site, owner, add_device):
    """The packing the gas target depends on: a device at a site holds its site where the owner would be,
    with the AT_SITE flag; the site keeps its device count in the flags byte."""
    device, _ = add_device(site, owner, kind=2, capacity_w=5_000)
    word = stored_word(chain, registry, device.address)
    assert to_checksum_address((word & (2**160 - 1)).to_bytes(20, "big")) == site.address
    assert ((word >> 160) & 0xFFFFFFFF, (word >> 192) & 0xFFFFFFFF) == (5_000, SITE_ZONE)
    assert ((word >> 224) & 0xFF, (word >> 232) & 0xFF, word >> 240) == (2, 0b11, 1)  # kind, ACTIVE|AT_SITE, nonce
    site_word = stored_word(chain, registry, site.address)
    assert to_checksum_address((site_word & (2**160 - 1)).to_bytes(20, "big")) == owner.address
    assert ((site_word >> 224) & 0xFF, (site_word >> 232) & 0xFF) == (SITE_METER, 1)  # kind, device count


def test_permit_for_site_a_cannot_register_at_site_b(registry, add_site, owner, site_permit, recovered_at_site,
                                                     now):
    site_a, site_b = add_site(owner), add_site(owner)
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site_a.address, deadline)
    recovered = recovered_at_site(signature, owner.address, device.address, site_b.address, 0, CAPACITY_W, 0,
                                  deadline)
    assert recovered != device.address
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.registerAtSite(device.address, site_b.address, 0, CAPACITY_W, deadline, signature, sender=owner)
    assert registry.siteDevices(site_b.address) == 0 and registry.nonces(device.address) == 0
    registry.registerAtSite(device.address, site_a.address, 0, CAPACITY_W, deadline, signature, sender=owner)
    assert registry.siteOf(device.address) == site_a.address


@pytest.mark.parametrize("field_name,value", [("kind", 4), ("capacity_w", 70_000)])
def test_permit_binds_kind_and_capacity(registry, site, owner, site_permit, recovered_at_site, now, field_name,
                                        value):
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site.address, deadline)  # kind 0, CAPACITY_W
    claimed = {"kind": 0, "capacity_w": CAPACITY_W, field_name: value}
    recovered = recovered_at_site(signature, owner.address, device.address, site.address, claimed["kind"],
                                  claimed["capacity_w"], 0, deadline)
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.registerAtSite(device.address, site.address, claimed["kind"], claimed["capacity_w"], deadline,
                                signature, sender=owner)
    assert info(registry, device.address)["owner"] == ZERO


def test_expired_permit_reverts(registry, chain, site, owner, site_permit, now):
    device = new_key()
    deadline = now() + 600
    signature = site_permit(device, owner.address, site.address, deadline)
    chain.pending_timestamp = deadline + 1
    with reverts(registry.PermitExpired, deadline=deadline, nowTimestamp=deadline + 1):
        registry.registerAtSite(device.address, site.address, 0, CAPACITY_W, deadline, signature, sender=owner)


def test_a_device_permit_is_not_a_site_permit_and_back(registry, site, owner, permit, site_permit, chain_id, now):
    """The two permit types never stand in for each other (distinct EIP-712 types)."""
    device = new_key()
    deadline = now() + 3600
    legacy = permit(device, owner.address, deadline, kind=0, capacity_w=CAPACITY_W, zone=SITE_ZONE)
    with reverts(registry.InvalidDeviceSignature, device=device.address):
        registry.registerAtSite(device.address, site.address, 0, CAPACITY_W, deadline, legacy, sender=owner)
    at_site = site_permit(device, owner.address, site.address, deadline)
    with reverts(registry.InvalidDeviceSignature, device=device.address):
        registry.register(device.address, 0, CAPACITY_W, SITE_ZONE, deadline, at_site, sender=owner)
    assert registry.nonces(device.address) == 0


def test_permit_is_spent_by_registration_at_site(registry, site, owner, add_device, site_permit, now):
    device, _ = add_device(site, owner, kind=0)
    registry.unregister(device.address, sender=owner)
    deadline = now() + 3600
    stale = site_permit(device, owner.address, site.address, deadline, kind=0, nonce=0)
    with reverts(registry.InvalidDeviceSignature, device=device.address):
        registry.registerAtSite(device.address, site.address, 0, CAPACITY_W, deadline, stale, sender=owner)
    add_device(site, owner, kind=0, device=device)  # a fresh permit at nonce 1
    assert registry.nonces(device.address) == 2 and registry.siteOf(device.address) == site.address


def test_only_the_site_owner_registers_at_a_site(registry, site, other, site_permit, now):
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, other.address, site.address, deadline)  # the device key agrees, the site does not
    with reverts(registry.NotSiteOwner, site=site.address, caller=other.address):
        registry.registerAtSite(device.address, site.address, 0, CAPACITY_W, deadline, signature, sender=other)


def test_only_a_registered_site_meter_is_a_site(registry, owner, register, site_permit, now):
    legacy = new_key()
    register(legacy, owner, kind=0, zone=SITE_ZONE)
    for not_a_site in (legacy.address, new_key().address):
        device = new_key()
        deadline = now() + 3600
        signature = site_permit(device, owner.address, not_a_site, deadline)
        with reverts(registry.NotASite, site=not_a_site):
            registry.registerAtSite(device.address, not_a_site, 0, CAPACITY_W, deadline, signature, sender=owner)


@pytest.mark.parametrize("kind,error", [(SITE_METER, "NotControllable"), (7, "UnknownKind")])
def test_register_at_site_takes_controllable_kinds_only(registry, site, owner, site_permit, now, kind, error):
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site.address, deadline, kind=kind)
    expected = {"device": device.address, "kind": kind} if error == "NotControllable" else {"kind": kind}
    with reverts(getattr(registry, error), **expected):
        registry.registerAtSite(device.address, site.address, kind, CAPACITY_W, deadline, signature, sender=owner)
    assert registry.siteDevices(site.address) == 0


def test_register_at_site_rejects_zero_capacity(registry, site, owner, site_permit, now):
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site.address, deadline, capacity_w=0)
    with reverts(registry.ZeroCapacity):
        registry.registerAtSite(device.address, site.address, 0, 0, deadline, signature, sender=owner)


def test_registered_device_cannot_register_again_at_a_site(registry, add_site, owner, add_device, site_permit, now):
    site_a, site_b = add_site(owner), add_site(owner)
    device, _ = add_device(site_a, owner)
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site_b.address, deadline)
    with reverts(registry.DeviceAlreadyRegistered, device=device.address, owner=owner.address):
        registry.registerAtSite(device.address, site_b.address, 1, CAPACITY_W, deadline, signature, sender=owner)
    with reverts(registry.DeviceAlreadyRegistered, device=site_a.address, owner=owner.address):
        registry.registerAtSite(site_a.address, site_b.address, 1, CAPACITY_W, deadline, signature, sender=owner)


def test_site_full_reverts(chain, registry, site, owner, add_device, site_permit, now):
    """A site holds at most MAX_DEVICES_PER_SITE devices. Filling one takes 255 registrations, so the
    count is set in storage (anvil's anvil_setStorageAt; the in-process EVM cannot)."""
    try:
        slot = keccak(encode(["address", "uint256"], [site.address, RECORDS_SLOT]))
        word = stored_word(chain, registry, site.address)
        full = (word & ~(0xFF << 232)) | (254 << 232)
        chain.provider.set_storage(registry.address, int.from_bytes(slot, "big"), full.to_bytes(32, "big"))
    except NotImplementedError:
        pytest.skip("this provider cannot set storage; the anvil run covers it")
    assert registry.siteDevices(site.address) == 254
    add_device(site, owner)
    assert registry.siteDevices(site.address) == 255
    device = new_key()
    deadline = now() + 3600
    signature = site_permit(device, owner.address, site.address, deadline)
    with reverts(registry.SiteFull, site=site.address, devices=255):
        registry.registerAtSite(device.address, site.address, 0, CAPACITY_W, deadline, signature, sender=owner)


# ---------------------------------------------------------------- ownership follows the site


def test_site_transfer_moves_its_devices_without_touching_them(registry, site, owner, other, add_device):
    devices = [add_device(site, owner)[0] for _ in range(2)]
    before = stats(registry)
    records = [info(registry, d.address) for d in devices]
    registry.transfer(site.address, other.address, sender=owner)
    assert [registry.ownerOf(d.address) for d in devices] == [owner.address] * 2  # nothing moves before acceptance
    tx = registry.acceptTransfer(site.address, sender=other)
    assert logs(tx) == [(registry.address, "DeviceTransferred",
                         {"device": site.address, "from": owner.address, "to": other.address})]
    assert registry.ownerOf(site.address) == other.address
    assert [registry.ownerOf(d.address) for d in devices] == [other.address] * 2
    assert [info(registry, d.address) for d in devices] == [{**r, "owner": other.address} for r in records]
    assert [registry.siteOf(d.address) for d in devices] == [site.address] * 2
    assert stats(registry) == before


def test_the_new_site_owner_manages_its_devices_and_the_old_one_cannot(registry, site, owner, other, add_device,
                                                                        site_permit, now):
    device, _ = add_device(site, owner)
    registry.transfer(site.address, other.address, sender=owner)
    registry.acceptTransfer(site.address, sender=other)
    with reverts(registry.NotDeviceOwner, device=device.address, caller=owner.address):
        registry.deactivate(device.address, sender=owner)
    tx = registry.deactivate(device.address, sender=other)
    assert logs(tx) == [(registry.address, "DeviceActiveChanged",
                         {"device": device.address, "owner": other.address, "active": False})]
    late = new_key()
    deadline = now() + 3600
    signature = site_permit(late, owner.address, site.address, deadline)
    with reverts(registry.NotSiteOwner, site=site.address, caller=owner.address):
        registry.registerAtSite(late.address, site.address, 0, CAPACITY_W, deadline, signature, sender=owner)
    added, tx = add_device(site, other)
    assert logs(tx)[0][2]["owner"] == other.address
    assert registry.siteDevices(site.address) == 2


def test_a_device_at_a_site_cannot_change_hands_alone(registry, site, owner, other, add_device):
    device, _ = add_device(site, owner)
    with reverts(registry.DeviceAtSite, device=device.address, site=site.address):
        registry.transfer(device.address, other.address, sender=owner)
    with reverts(registry.DeviceAtSite, device=device.address, site=site.address):
        registry.cancelTransfer(device.address, sender=owner)
    with reverts(registry.NotPendingOwner, device=device.address, caller=other.address, pendingOwner=ZERO):
        registry.acceptTransfer(device.address, sender=other)
    assert registry.ownerOf(device.address) == owner.address


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unregister", "transfer"])
def test_only_the_site_owner_manages_a_device_at_the_site(registry, site, owner, other, add_device, action):
    device, _ = add_device(site, owner)
    args = (device.address, other.address) if action == "transfer" else (device.address,)
    with reverts(registry.NotDeviceOwner, device=device.address, caller=other.address):
        getattr(registry, action)(*args, sender=other)


def test_site_owner_deactivates_and_reactivates_a_device_at_the_site(registry, site, owner, add_device):
    device, _ = add_device(site, owner, capacity_w=3_000)
    before = stats(registry)
    registry.deactivate(device.address, sender=owner)
    assert not registry.isActive(device.address) and stats(registry) == (before[0] - 1, before[1] - 3_000)
    assert registry.siteOf(device.address) == site.address  # the flags keep the site
    registry.reactivate(device.address, sender=owner)
    assert registry.isActive(device.address) and stats(registry) == before


def test_legacy_devices_own_themselves(registry, register, owner, other):
    device = new_key()
    register(device, owner, zone=SITE_ZONE)
    assert (registry.ownerOf(device.address), registry.siteOf(device.address)) == (owner.address, ZERO)
    registry.transfer(device.address, other.address, sender=owner)
    registry.acceptTransfer(device.address, sender=other)
    assert registry.ownerOf(device.address) == other.address
    assert registry.ownerOf(new_key().address) == ZERO and registry.siteOf(new_key().address) == ZERO


# ---------------------------------------------------------------- unregistering


def test_a_site_with_devices_cannot_be_unregistered_until_it_is_empty(registry, site, owner, add_device):
    devices = [add_device(site, owner, capacity_w=2_000)[0] for _ in range(2)]
    registry.deactivate(devices[1].address, sender=owner)
    with reverts(registry.SiteHasDevices, site=site.address, devices=2):
        registry.unregister(site.address, sender=owner)
    before = stats(registry)
    tx = registry.unregister(devices[0].address, sender=owner)
    assert logs(tx) == [(registry.address, "DeviceUnregistered", {"device": devices[0].address,
                                                                  "owner": owner.address})]
    assert stats(registry) == (before[0] - 1, before[1] - 2_000)
    assert registry.siteDevices(site.address) == 1
    assert (registry.siteOf(devices[0].address), registry.ownerOf(devices[0].address)) == (ZERO, ZERO)
    with reverts(registry.SiteHasDevices, site=site.address, devices=1):
        registry.unregister(site.address, sender=owner)
    registry.unregister(devices[1].address, sender=owner)  # inactive: the totals do not move
    assert stats(registry) == (before[0] - 1, before[1] - 2_000)
    registry.unregister(site.address, sender=owner)
    assert info(registry, site.address)["owner"] == ZERO
    assert [registry.nonces(d.address) for d in (site, *devices)] == [1, 1, 1]


def test_an_unregistered_device_can_join_another_site(registry, add_site, owner, other, add_device):
    site_a, site_b = add_site(owner), add_site(other, zone=SITE_ZONE + 1)
    device, _ = add_device(site_a, owner)
    registry.unregister(device.address, sender=owner)
    add_device(site_b, other, device=device)
    assert registry.siteOf(device.address) == site_b.address
    assert info(registry, device.address)["zone"] == SITE_ZONE + 1
    assert (registry.siteDevices(site_a.address), registry.siteDevices(site_b.address)) == (0, 1)


# ---------------------------------------------------------------- property


SITES, DEVICES, ACCOUNTS = 3, 5, 3
ZONES = (41, 42)


@dataclass
class RegistryModel:
    """What the registry should hold: site -> (owner, zone); device -> (site or None, owner, zone, cap, active)."""

    sites: dict[int, list] = field(default_factory=dict)
    devices: dict[int, list] = field(default_factory=dict)

    def owner_of(self, device: int):
        site, owner, *_ = self.devices[device]
        return self.sites[site][0] if site is not None else owner

    def site_count(self, site: int) -> int:
        return sum(1 for d in self.devices.values() if d[0] == site)


register_site = st.tuples(st.just("site"), st.integers(0, SITES - 1), st.integers(0, ACCOUNTS - 1),
                          st.sampled_from(ZONES))
register_at_site = st.tuples(st.just("at_site"), st.integers(0, DEVICES - 1), st.integers(0, SITES - 1),
                             st.integers(1, 9).map(lambda k: k * 1_000))
steps = st.lists(
    st.one_of(
        register_site, register_site, register_at_site, register_at_site,  # twice: most steps build sites
        st.tuples(st.just("legacy"), st.integers(0, DEVICES - 1), st.integers(0, ACCOUNTS - 1),
                  st.sampled_from(ZONES)),
        st.tuples(st.just("transfer"), st.integers(0, SITES - 1), st.integers(0, ACCOUNTS - 1)),
        st.tuples(st.just("toggle"), st.integers(0, DEVICES - 1)),
        st.tuples(st.just("unregister_device"), st.integers(0, DEVICES - 1)),
        st.tuples(st.just("unregister_site"), st.integers(0, SITES - 1)),
    ),
    min_size=4,
    max_size=14,
)


class RegistryRun:
    """Random actions on the registry, each mirrored in a RegistryModel, then compared with it."""

    def __init__(self, registry, register, site_permit, now, accounts):
        self.registry, self.register, self.site_permit, self.now = registry, register, site_permit, now
        self.accounts = accounts
        self.site_keys = [new_key() for _ in range(SITES)]
        self.device_keys = [new_key() for _ in range(DEVICES)]
        self.model = RegistryModel()
        self.base = {zone: stats(registry, zone) for zone in ZONES}

    def act(self, step) -> None:
        action, *args = step
        model, registry = self.model, self.registry
        if action == "site":
            index, account, zone = args
            if index not in model.sites:
                self.register(self.site_keys[index], self.accounts[account], kind=SITE_METER, capacity_w=RATING_W,
                              zone=zone)
                model.sites[index] = [self.accounts[account].address, zone]
        elif action == "at_site":
            device, site, capacity = args
            if device not in model.devices and site in model.sites:
                owner = self._account(model.sites[site][0])
                key, site_key = self.device_keys[device], self.site_keys[site]
                deadline = self.now() + 3600
                signature = self.site_permit(key, owner.address, site_key.address, deadline, kind=1,
                                             capacity_w=capacity)
                registry.registerAtSite(key.address, site_key.address, 1, capacity, deadline, signature,
                                        sender=owner)
                model.devices[device] = [site, None, model.sites[site][1], capacity, True]
        elif action == "legacy":
            device, account, zone = args
            if device not in model.devices:
                self.register(self.device_keys[device], self.accounts[account], kind=0, capacity_w=CAPACITY_W,
                              zone=zone)
                model.devices[device] = [None, self.accounts[account].address, zone, CAPACITY_W, True]
        elif action == "transfer":
            site, account = args
            if site in model.sites:
                receiver = self.accounts[account]
                registry.transfer(self.site_keys[site].address, receiver.address,
                                  sender=self._account(model.sites[site][0]))
                registry.acceptTransfer(self.site_keys[site].address, sender=receiver)
                model.sites[site][0] = receiver.address
        elif action == "toggle":
            (device,) = args
            if device in model.devices:
                record = model.devices[device]
                owner = self._account(model.owner_of(device))
                name = "deactivate" if record[4] else "reactivate"
                getattr(registry, name)(self.device_keys[device].address, sender=owner)
                record[4] = not record[4]
        elif action == "unregister_device":
            (device,) = args
            if device in model.devices:
                registry.unregister(self.device_keys[device].address,
                                    sender=self._account(model.owner_of(device)))
                del model.devices[device]
        elif action == "unregister_site":
            (site,) = args
            if site in model.sites:
                address, owner = self.site_keys[site].address, self._account(model.sites[site][0])
                count = model.site_count(site)
                if count:
                    with reverts(registry.SiteHasDevices, site=address, devices=count):
                        registry.unregister(address, sender=owner)
                else:
                    registry.unregister(address, sender=owner)
                    del model.sites[site]

    def _account(self, address):
        return next(a for a in self.accounts if a.address == address)

    def check(self) -> None:
        registry, model = self.registry, self.model
        for index, key in enumerate(self.device_keys):
            if index in model.devices:
                site = model.devices[index][0]
                expected_site = self.site_keys[site].address if site is not None else ZERO
                assert registry.siteOf(key.address) == expected_site
                owner = registry.ownerOf(key.address)
                assert owner == model.owner_of(index)
                if site is not None:
                    assert owner == registry.ownerOf(self.site_keys[site].address)
            else:
                assert registry.ownerOf(key.address) == ZERO
        for index, key in enumerate(self.site_keys):
            registered = index in model.sites
            assert registry.ownerOf(key.address) == (model.sites[index][0] if registered else ZERO)
            assert registry.siteDevices(key.address) == (model.site_count(index) if registered else 0)
        for zone in ZONES:
            active = [d for d in model.devices.values() if d[2] == zone and d[4]]
            base_devices, base_capacity = self.base[zone]
            assert stats(registry, zone) == (base_devices + len(active), base_capacity + sum(d[3] for d in active))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=steps)
def test_property_owner_follows_the_site_and_zone_totals_sum_active_devices(
    chain, registry, register, site_permit, now, owner, other, accounts, scenario
):
    with isolated(chain):
        run = RegistryRun(registry, register, site_permit, now, [owner, other, accounts[15]])
        for step in scenario:
            run.act(step)
            run.check()
