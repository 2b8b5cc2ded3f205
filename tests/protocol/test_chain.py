"""protocol.chain against a real anvil: transactions from eth-account keys, decoded custom errors."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from protocol import eip712
from protocol.chain import ChainError, Transactor


def test_transactor_registers_a_device_and_decodes_a_revert(devnet):
    web3, manifest = devnet.web3(), devnet.manifest()
    registry = manifest.contract(web3, "DeviceRegistry")
    owner = Transactor(web3, devnet.keys[1], abis=[manifest.contracts["DeviceRegistry"].abi])
    device = Account.create()
    deadline = int(time.time()) + 3600
    message = {"owner": owner.address, "device": device.address, "kind": 1, "capacityW": 3_000, "zone": 4,
               "nonce": 0, "deadline": deadline}
    signature = eip712.sign(device.key, "DevicePermit", message, manifest.chainId, registry.address)
    receipt = owner.send(registry.functions.register(device.address, 1, 3_000, 4, deadline, signature))
    assert receipt.gas_used > 21_000
    assert registry.functions.deviceInfo(device.address).call()[0] == owner.address

    with pytest.raises(ChainError) as error:
        owner.send(registry.functions.register(device.address, 1, 3_000, 4, deadline, signature))
    assert error.value.error == "DeviceAlreadyRegistered"
    assert error.value.error_args == (device.address, owner.address)
