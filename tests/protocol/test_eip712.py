"""protocol.eip712: messages sign and recover with eth-account under the negawatt domain."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from protocol import eip712

CONTRACT = "0x" + "ab" * 20


@pytest.mark.parametrize(
    "primary, message",
    [
        ("DevicePermit", {"owner": "0x" + "11" * 20, "device": "0x" + "22" * 20, "kind": 1, "capacityW": 3_000,
                          "zone": 4, "nonce": 0, "deadline": 10**10}),
        ("MeterBatch", {"device": "0x" + "22" * 20, "start": 1_700_000_000, "intervalSeconds": 900,
                        "readingsHash": b"\x01" * 32, "sequence": 7}),
        ("Commitment", {"requestId": 3, "device": "0x" + "22" * 20, "watts": 2_500, "minPricePerKWh": 150_000, "extraWatts": 500, "extraMinPricePerKWh": 200_000, "minAvailabilityPricePerKWh": 30_000}),
        ("SettlementReport", {"epoch": 1, "previousRoot": bytes(32), "rewardsRoot": b"\x02" * 32,
                              "requestsHash": b"\x03" * 32, "penaltiesHash": b"\x04" * 32, "emission": 5}),
    ],
)
def test_every_message_type_signs_and_recovers(primary, message):
    signer = Account.create()
    signature = eip712.sign(signer.key, primary, message, 31337, CONTRACT)
    assert len(signature) == 65
    assert eip712.recover(primary, message, signature, 31337, CONTRACT) == signer.address


def test_signature_is_bound_to_chain_and_contract():
    signer = Account.create()
    message = {"requestId": 3, "device": "0x" + "22" * 20, "watts": 2_500, "minPricePerKWh": 150_000, "extraWatts": 500, "extraMinPricePerKWh": 200_000, "minAvailabilityPricePerKWh": 30_000}
    signature = eip712.sign(signer.key, "Commitment", message, 1, CONTRACT)
    assert eip712.recover("Commitment", message, signature, 2, CONTRACT) != signer.address
    assert eip712.recover("Commitment", message, signature, 1, "0x" + "cd" * 20) != signer.address
    assert eip712.recover("Commitment", {**message, "watts": 2_501}, signature, 1, CONTRACT) != signer.address
    assert eip712.recover("Commitment", {**message, "minPricePerKWh": 1}, signature, 1, CONTRACT) != signer.address


def test_unknown_message_type_is_rejected():
    with pytest.raises(ValueError, match="unknown negawatt message type 'Bogus'"):
        eip712.typed_data("Bogus", {}, 1, CONTRACT)


def test_domain_is_negawatt_version_1():
    assert eip712.domain(5, CONTRACT) == {
        "name": "negawatt", "version": "1", "chainId": 5, "verifyingContract": to_checksum_address(CONTRACT),
    }


def test_digest_is_what_the_signature_recovers_from():
    from protocol.fast_verify import recover_digest

    signer = Account.create()
    message = {"requestId": 9, "device": "0x" + "22" * 20, "watts": 10, "minPricePerKWh": 0, "extraWatts": 0,
               "extraMinPricePerKWh": 0, "minAvailabilityPricePerKWh": 0}
    signature = eip712.sign(signer.key, "Commitment", message, 7, CONTRACT)
    assert recover_digest(eip712.digest("Commitment", message, 7, CONTRACT), signature) == signer.address
