"""Who holds which power (audit M-3): a NegawattTimelock in front of the admin, the arbiter apart from
the guardian, and a deployment that refuses unsafe key settings off a local network."""

from __future__ import annotations

import pytest
from contract_asserts import reverts

import negawatt.deploy as deploy_module
from negawatt.deploy import MIN_TIMELOCK_DELAY, DeployParams, UnsafeDeployment, deploy_all, unsafe_settings

SAFE = dict(timelock_delay=MIN_TIMELOCK_DELAY, threshold=2, challenge_window=3600, unbonding_delay=7 * 24 * 3600,
            deploy_mock_stablecoin=False)


@pytest.fixture
def keys(accounts):
    return {"admin": accounts[15], "guardian": accounts[16], "arbiter": accounts[17], "treasury": accounts[18]}


@pytest.fixture
def governed(project, admin, keys):
    params = DeployParams(admin=keys["admin"].address, guardian=keys["guardian"].address,
                          arbiter=keys["arbiter"].address, treasury=keys["treasury"].address, **SAFE)
    return deploy_all(project, admin, params)


def test_the_timelock_is_the_only_admin_and_enforces_its_delay(governed, keys, admin, chain):
    """The attack: the admin key changes the oracle set (or any parameter) at once. Behind the timelock
    the change must be scheduled, is public for MIN_TIMELOCK_DELAY, and only then executes."""
    instances, roles = governed["instances"], governed["manifest"]["roles"]
    timelock, hub = instances["NegawattTimelock"], instances["OracleHub"]
    assert roles["admin"] == timelock.address and roles["arbiter"] == keys["arbiter"].address
    admin_role = hub.DEFAULT_ADMIN_ROLE()
    for name in ("NegawattToken", "Staking", "FlexMarket", "RewardDistributor", "OracleHub"):
        contract = instances[name]
        assert contract.hasRole(admin_role, timelock.address)
        assert not contract.hasRole(admin_role, admin.address)  # the deployer kept nothing
        assert not contract.hasRole(admin_role, keys["admin"].address)
    with reverts(hub.AccessControlUnauthorizedAccount):
        hub.setTreasury(keys["admin"].address, sender=keys["admin"])
    call = hub.setTreasury.encode_input(keys["admin"].address)
    salt, zero = b"\x01" * 32, b"\x00" * 32
    timelock.schedule(hub.address, 0, call, zero, salt, MIN_TIMELOCK_DELAY, sender=keys["admin"])
    with pytest.raises(Exception):
        timelock.execute(hub.address, 0, call, zero, salt, sender=keys["admin"])
    assert hub.treasury() == keys["treasury"].address
    chain.mine(timestamp=chain.pending_timestamp + MIN_TIMELOCK_DELAY)
    timelock.execute(hub.address, 0, call, zero, salt, sender=keys["admin"])
    assert hub.treasury() == keys["admin"].address


def test_the_guardian_pauses_but_cannot_resolve_challenges(governed, keys):
    hub = governed["instances"]["OracleHub"]
    assert hub.hasRole(hub.ARBITER_ROLE(), keys["arbiter"].address)
    assert not hub.hasRole(hub.ARBITER_ROLE(), keys["guardian"].address)
    assert hub.hasRole(hub.GUARDIAN_ROLE(), keys["guardian"].address)


@pytest.mark.parametrize("change,problem", [
    ({"timelock_delay": 0}, "timelock_delay"),
    ({"arbiter": None}, "three different keys"),
    ({"treasury": None}, "treasury is the deployer"),
    ({"threshold": 1}, "threshold 1"),
    ({"unbonding_delay": 3600}, "does not outlast the challenge window"),
    ({"deploy_mock_stablecoin": True}, "mock stablecoin"),
])
def test_a_public_deployment_refuses_each_unsafe_setting(project, admin, keys, monkeypatch, change, problem):
    """The attack: deploy to a public chain with the devnet defaults (one key is admin, guardian, arbiter
    and treasury, threshold 1, no timelock). Off a local network each such setting is refused before any
    transaction, unless allow_unsafe says otherwise."""
    base = dict(admin=keys["admin"].address, guardian=keys["guardian"].address, arbiter=keys["arbiter"].address,
                treasury=keys["treasury"].address, **SAFE)
    params = DeployParams(**{**base, **change})
    assert any(problem in text for text in unsafe_settings(params, admin.address))
    monkeypatch.setattr(deploy_module, "LOCAL_NETWORKS", frozenset())  # as if on a public network
    nonce = admin.nonce
    with pytest.raises(UnsafeDeployment, match=problem):
        deploy_all(project, admin, params)
    assert admin.nonce == nonce  # refused before sending anything


def test_the_devnet_defaults_are_unsafe_but_allowed_locally_and_with_allow_unsafe(project, admin, monkeypatch):
    defaults = DeployParams()
    assert len(unsafe_settings(defaults, admin.address)) >= 5
    deploy_all(project, admin, defaults)  # the local network takes them
    monkeypatch.setattr(deploy_module, "LOCAL_NETWORKS", frozenset())
    with pytest.raises(UnsafeDeployment):
        deploy_all(project, admin, defaults)
    deploy_all(project, admin, defaults.model_copy(update={"allow_unsafe": True}))


def test_safe_settings_have_no_problems(keys, admin):
    params = DeployParams(admin=keys["admin"].address, guardian=keys["guardian"].address,
                          arbiter=keys["arbiter"].address, treasury=keys["treasury"].address, **SAFE)
    assert unsafe_settings(params, admin.address) == []
