"""DeviceRegistry: devices join with the device key's EIP-712 DevicePermit (signed with eth-account,
as `negawatt node register` does), and their owners deactivate, reactivate, transfer and unregister
them while the per-zone totals of active devices follow."""

from __future__ import annotations


import pytest
from eth_abi import encode
from eth_utils import keccak

from protocol import eip712
from contract_asserts import logs, reverts

ZERO = "0x0000000000000000000000000000000000000000"
ZONE = 1
CAPACITY_W = 7_000


def record(registry, device):
    info = registry.deviceInfo(device.address)
    return {
        "owner": info.owner,
        "capacityW": info.capacityW,
        "zone": info.zone,
        "kind": info.kind,
        "active": info.active,
        "nonce": info.nonce,
    }


def zone_stats(registry, zone=ZONE):
    return tuple(registry.zoneStats(zone))


def recovered_by_registry(registry, chain_id, device, owner_address, nonce, deadline, signature,
                          kind=0, capacity_w=CAPACITY_W, zone=ZONE):
    """The address the registry recovers when this signature is submitted with these fields."""
    message = {"owner": owner_address, "device": device, "kind": kind, "capacityW": capacity_w, "zone": zone,
               "nonce": nonce, "deadline": deadline}
    return eip712.recover("DevicePermit", message, signature, chain_id, registry.address)


@pytest.fixture
def device(new_device):
    return new_device()


@pytest.fixture
def registered(device, owner, register):
    register(device, owner, kind=1, capacity_w=CAPACITY_W, zone=ZONE)
    return device


def test_constants(registry):
    assert registry.MAX_KIND() == 6
    assert registry.DEVICE_PERMIT_TYPEHASH() == keccak(
        text="DevicePermit(address owner,address device,uint8 kind,uint32 capacityW,uint32 zone,uint256 nonce,uint256 deadline)"
    )


def test_domain_separator_is_the_negawatt_domain_eth_account_signs_under(registry, chain_id):
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak(text=eip712.DOMAIN_NAME),
                keccak(text=eip712.DOMAIN_VERSION),
                chain_id,
                registry.address,
            ],
        )
    )
    assert registry.domainSeparator() == expected


def test_unknown_device_has_an_empty_record(registry, device):
    assert record(registry, device) == {
        "owner": ZERO,
        "capacityW": 0,
        "zone": 0,
        "kind": 0,
        "active": False,
        "nonce": 0,
    }
    assert registry.nonces(device.address) == 0
    assert not registry.isActive(device.address)


def test_register_binds_device_to_caller(registry, device, owner, permit, now):
    before = zone_stats(registry, 7)
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline, kind=3, capacity_w=5_000, zone=7)
    tx = registry.register(device.address, 3, 5_000, 7, deadline, signature, sender=owner)
    assert logs(tx) == [
        (
            registry.address,
            "DeviceRegistered",
            {"device": device.address, "owner": owner.address, "kind": 3, "capacityW": 5_000, "zone": 7},
        )
    ]
    assert record(registry, device) == {
        "owner": owner.address,
        "capacityW": 5_000,
        "zone": 7,
        "kind": 3,
        "active": True,
        "nonce": 1,
    }
    assert registry.nonces(device.address) == 1
    assert registry.isActive(device.address)
    assert zone_stats(registry, 7) == (before[0] + 1, before[1] + 5_000)


def test_zone_totals_sum_devices_per_zone(registry, new_device, owner, other, register):
    base_1, base_2 = zone_stats(registry, 1), zone_stats(registry, 2)
    register(new_device(), owner, capacity_w=1_000, zone=1)
    register(new_device(), other, capacity_w=2_500, zone=1)
    register(new_device(), owner, capacity_w=4_000, zone=2)
    assert zone_stats(registry, 1) == (base_1[0] + 2, base_1[1] + 3_500)
    assert zone_stats(registry, 2) == (base_2[0] + 1, base_2[1] + 4_000)


@pytest.mark.parametrize("kind", [0, 5])
def test_register_accepts_kinds_up_to_max(registry, device, owner, register, kind):
    register(device, owner, kind=kind)
    assert registry.deviceInfo(device.address).kind == kind


@pytest.mark.parametrize("kind", [7, 255])
def test_register_rejects_unknown_kind(registry, device, owner, permit, now, kind):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    with reverts(registry.UnknownKind, kind=kind):
        registry.register(device.address, kind, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert record(registry, device)["owner"] == ZERO


def test_register_rejects_zero_capacity(registry, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    with reverts(registry.ZeroCapacity):
        registry.register(device.address, 0, 0, ZONE, deadline, signature, sender=owner)
    assert registry.nonces(device.address) == 0


def test_permit_is_valid_at_its_deadline(registry, chain, device, owner, permit, now):
    deadline = now() + 600
    signature = permit(device, owner.address, deadline)
    chain.pending_timestamp = deadline
    tx = registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert tx.timestamp == deadline
    assert registry.deviceInfo(device.address).owner == owner.address


def test_expired_permit_reverts(registry, chain, device, owner, permit, now):
    deadline = now() + 600
    signature = permit(device, owner.address, deadline)
    chain.pending_timestamp = deadline + 1
    with reverts(registry.PermitExpired, deadline=deadline, nowTimestamp=deadline + 1):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert record(registry, device)["owner"] == ZERO


def test_permit_signed_by_another_key_reverts(registry, device, new_device, owner, permit, now):
    impostor = new_device()
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline, key=impostor.key)
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=impostor.address):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert record(registry, device)["owner"] == ZERO


def test_permit_for_another_owner_reverts(registry, chain_id, device, owner, other, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    recovered = recovered_by_registry(
        registry, chain_id, device.address, other.address, 0, deadline, signature
    )
    assert recovered != device.address
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=other)
    assert registry.nonces(device.address) == 0


def test_permit_with_tampered_deadline_reverts(registry, chain_id, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    recovered = recovered_by_registry(
        registry, chain_id, device.address, owner.address, 0, deadline + 1, signature
    )
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline + 1, signature, sender=owner)


def test_permit_at_a_future_nonce_reverts(registry, chain_id, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline, nonce=1)
    recovered = recovered_by_registry(
        registry, chain_id, device.address, owner.address, 0, deadline, signature
    )
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)


def test_permit_submitted_for_another_device_reverts(
    registry, chain_id, device, new_device, owner, permit, now
):
    target = new_device()
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    recovered = recovered_by_registry(
        registry, chain_id, target.address, owner.address, 0, deadline, signature
    )
    with reverts(registry.InvalidDeviceSignature, device=target.address, recovered=recovered):
        registry.register(target.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert record(registry, target)["owner"] == ZERO
    assert record(registry, device)["owner"] == ZERO


@pytest.mark.parametrize("domain", ["chain", "contract"])
def test_permit_signed_under_another_domain_reverts(registry, chain_id, device, owner, now, domain):
    deadline = now() + 3600
    message = {"owner": owner.address, "device": device.address, "kind": 0, "capacityW": CAPACITY_W, "zone": ZONE,
               "nonce": 0, "deadline": deadline}
    foreign = {
        "chain": (chain_id + 1, registry.address),
        "contract": (chain_id, "0x000000000000000000000000000000000000dEaD"),
    }[domain]
    signature = eip712.sign(device.key, "DevicePermit", message, *foreign)
    recovered = recovered_by_registry(
        registry, chain_id, device.address, owner.address, 0, deadline, signature
    )
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)


def test_malformed_signature_recovers_nothing(registry, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)[:64]
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=ZERO):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)


def test_zero_address_cannot_be_registered(registry, chain_id, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    recovered = recovered_by_registry(registry, chain_id, ZERO, owner.address, 0, deadline, signature)
    with reverts(registry.InvalidDeviceSignature, device=ZERO, recovered=recovered):
        registry.register(ZERO, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)


def test_registering_a_registered_device_reverts(registry, registered, owner, other, permit, now):
    deadline = now() + 3600
    signature = permit(registered, other.address, deadline)
    with reverts(registry.DeviceAlreadyRegistered, device=registered.address, owner=owner.address):
        registry.register(registered.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=other)
    assert registry.deviceInfo(registered.address).owner == owner.address
    assert registry.nonces(registered.address) == 1


def test_permit_cannot_be_replayed_after_unregister(registry, chain_id, device, owner, permit, now):
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)
    registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    registry.unregister(device.address, sender=owner)
    recovered = recovered_by_registry(
        registry, chain_id, device.address, owner.address, 1, deadline, signature
    )
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, 0, CAPACITY_W, ZONE, deadline, signature, sender=owner)
    assert record(registry, device)["owner"] == ZERO
    assert registry.nonces(device.address) == 1


def test_fresh_permit_registers_device_again_at_next_nonce(registry, registered, owner, other, register):
    registry.unregister(registered.address, sender=owner)
    register(registered, other, kind=2, capacity_w=3_000, zone=4)
    assert record(registry, registered) == {
        "owner": other.address,
        "capacityW": 3_000,
        "zone": 4,
        "kind": 2,
        "active": True,
        "nonce": 2,
    }


def test_deactivate_removes_device_from_zone_totals(registry, registered, owner):
    before = zone_stats(registry)
    tx = registry.deactivate(registered.address, sender=owner)
    assert logs(tx) == [
        (
            registry.address,
            "DeviceActiveChanged",
            {"device": registered.address, "owner": owner.address, "active": False},
        )
    ]
    assert not registry.isActive(registered.address)
    assert record(registry, registered)["active"] is False
    assert zone_stats(registry) == (before[0] - 1, before[1] - CAPACITY_W)


def test_reactivate_adds_device_back_to_zone_totals(registry, registered, owner):
    before = zone_stats(registry)
    registry.deactivate(registered.address, sender=owner)
    tx = registry.reactivate(registered.address, sender=owner)
    assert logs(tx) == [
        (
            registry.address,
            "DeviceActiveChanged",
            {"device": registered.address, "owner": owner.address, "active": True},
        )
    ]
    assert registry.isActive(registered.address)
    assert zone_stats(registry) == before


def test_deactivating_an_inactive_device_reverts(registry, registered, owner):
    registry.deactivate(registered.address, sender=owner)
    before = zone_stats(registry)
    with reverts(registry.ActiveStateUnchanged, device=registered.address, active=False):
        registry.deactivate(registered.address, sender=owner)
    assert zone_stats(registry) == before


def test_reactivating_an_active_device_reverts(registry, registered, owner):
    before = zone_stats(registry)
    with reverts(registry.ActiveStateUnchanged, device=registered.address, active=True):
        registry.reactivate(registered.address, sender=owner)
    assert zone_stats(registry) == before


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unregister"])
def test_only_the_owner_manages_a_device(registry, registered, other, action):
    with reverts(registry.NotDeviceOwner, device=registered.address, caller=other.address):
        getattr(registry, action)(registered.address, sender=other)
    assert record(registry, registered)["active"] is True


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unregister"])
def test_managing_an_unregistered_device_reverts(registry, device, owner, action):
    with reverts(registry.DeviceNotRegistered, device=device.address):
        getattr(registry, action)(device.address, sender=owner)


def test_transfer_moves_ownership_and_keeps_zone_totals(registry, registered, owner, other):
    before = zone_stats(registry)
    offer = registry.transfer(registered.address, other.address, sender=owner)
    assert logs(offer) == [
        (registry.address, "DeviceTransferOffered",
         {"device": registered.address, "from": owner.address, "to": other.address})
    ]
    assert record(registry, registered)["owner"] == owner.address  # nothing moves before acceptance
    tx = registry.acceptTransfer(registered.address, sender=other)
    assert logs(tx) == [
        (
            registry.address,
            "DeviceTransferred",
            {"device": registered.address, "from": owner.address, "to": other.address},
        )
    ]
    assert record(registry, registered) == {
        "owner": other.address,
        "capacityW": CAPACITY_W,
        "zone": ZONE,
        "kind": 1,
        "active": True,
        "nonce": 1,
    }
    assert zone_stats(registry) == before


def test_new_owner_manages_a_transferred_device_and_old_owner_cannot(registry, registered, owner, other):
    registry.transfer(registered.address, other.address, sender=owner)
    registry.acceptTransfer(registered.address, sender=other)
    with reverts(registry.NotDeviceOwner, device=registered.address, caller=owner.address):
        registry.deactivate(registered.address, sender=owner)
    registry.deactivate(registered.address, sender=other)
    assert not registry.isActive(registered.address)


def test_transfer_to_zero_address_reverts(registry, registered, owner):
    with reverts(registry.ZeroAddress):
        registry.transfer(registered.address, ZERO, sender=owner)
    assert registry.deviceInfo(registered.address).owner == owner.address


def test_transfer_by_non_owner_reverts(registry, registered, other):
    with reverts(registry.NotDeviceOwner, device=registered.address, caller=other.address):
        registry.transfer(registered.address, other.address, sender=other)


def test_transfer_of_unregistered_device_reverts(registry, device, owner, other):
    with reverts(registry.DeviceNotRegistered, device=device.address):
        registry.transfer(device.address, other.address, sender=owner)


def test_unregister_clears_record_but_keeps_nonce(registry, registered, owner):
    before = zone_stats(registry)
    tx = registry.unregister(registered.address, sender=owner)
    assert logs(tx) == [
        (registry.address, "DeviceUnregistered", {"device": registered.address, "owner": owner.address})
    ]
    assert record(registry, registered) == {
        "owner": ZERO,
        "capacityW": 0,
        "zone": 0,
        "kind": 0,
        "active": False,
        "nonce": 1,
    }
    assert registry.nonces(registered.address) == 1
    assert not registry.isActive(registered.address)
    assert zone_stats(registry) == (before[0] - 1, before[1] - CAPACITY_W)


def test_unregistering_an_inactive_device_leaves_zone_totals(registry, registered, owner):
    registry.deactivate(registered.address, sender=owner)
    before = zone_stats(registry)
    registry.unregister(registered.address, sender=owner)
    assert zone_stats(registry) == before


def test_unregistering_twice_reverts(registry, registered, owner):
    registry.unregister(registered.address, sender=owner)
    with reverts(registry.DeviceNotRegistered, device=registered.address):
        registry.unregister(registered.address, sender=owner)


# ---------------------------------------------------------------- audit M-4


def test_m4_a_transfer_nobody_accepted_pushes_nothing_onto_its_target(registry, registered, owner, other, accounts):
    """The attack: an owner about to be penalised names a staker (an oracle, say) the new owner. Without
    the target's acceptance the device stays the attacker's, and nobody else can take the offer."""
    victim, third = other, accounts[15]
    registry.transfer(registered.address, victim.address, sender=owner)
    assert registry.deviceInfo(registered.address).owner == owner.address
    assert registry.pendingOwnerOf(registered.address) == victim.address
    with reverts(registry.NotPendingOwner, device=registered.address, caller=third.address,
                 pendingOwner=victim.address):
        registry.acceptTransfer(registered.address, sender=third)
    tx = registry.cancelTransfer(registered.address, sender=owner)
    assert logs(tx) == [(registry.address, "DeviceTransferOffered",
                         {"device": registered.address, "from": owner.address, "to": ZERO})]
    with reverts(registry.NotPendingOwner, device=registered.address, caller=victim.address, pendingOwner=ZERO):
        registry.acceptTransfer(registered.address, sender=victim)
    assert registry.deviceInfo(registered.address).owner == owner.address


def test_m4_an_offer_dies_with_the_device(registry, registered, owner, other, register):
    registry.transfer(registered.address, other.address, sender=owner)
    registry.unregister(registered.address, sender=owner)
    assert registry.pendingOwnerOf(registered.address) == ZERO
    register(registered, owner, kind=1, capacity_w=CAPACITY_W, zone=ZONE)
    with reverts(registry.NotPendingOwner, device=registered.address, caller=other.address, pendingOwner=ZERO):
        registry.acceptTransfer(registered.address, sender=other)


@pytest.mark.parametrize("field,value", [("kind", 3), ("capacity_w", 70_000), ("zone", 9)])
def test_m4_the_permit_binds_kind_capacity_and_zone(registry, chain_id, device, owner, permit, now, field, value):
    """The attack: the owner takes the device key's consent for a 7 kW charger in zone 1 and registers it
    as something else (70 kW, or in a zone where flexibility pays more). The device key never signed that."""
    deadline = now() + 3600
    signature = permit(device, owner.address, deadline)  # kind 0, CAPACITY_W, ZONE
    claimed = {"kind": 0, "capacity_w": CAPACITY_W, "zone": ZONE, field: value}
    recovered = recovered_by_registry(registry, chain_id, device.address, owner.address, 0, deadline, signature,
                                      **claimed)
    assert recovered != device.address
    with reverts(registry.InvalidDeviceSignature, device=device.address, recovered=recovered):
        registry.register(device.address, claimed["kind"], claimed["capacity_w"], claimed["zone"], deadline,
                          signature, sender=owner)
    assert record(registry, device)["owner"] == ZERO
