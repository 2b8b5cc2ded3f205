"""NegawattToken: the capped supply, minting reserved to MINTER_ROLE, plain ERC-20 transfers, and
ERC-2612 permits signed off-chain with eth-account (as a wallet or node would sign them)."""

from __future__ import annotations


import ape
import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from negawatt.deploy import TOKEN
from contract_asserts import logs, reverts

ZERO = "0x0000000000000000000000000000000000000000"
DEFAULT_ADMIN_ROLE = b"\x00" * 32
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

PERMIT_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def permit_document(token_address, chain_id, owner, spender, value, nonce, deadline, name="negawatt"):
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Permit": PERMIT_FIELDS},
        "primaryType": "Permit",
        "domain": {"name": name, "version": "1", "chainId": chain_id, "verifyingContract": token_address},
        "message": {"owner": owner, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline},
    }


def sign_permit(private_key, document):
    signed = Account.sign_message(encode_typed_data(full_message=document), private_key)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def signer_of(document, v, r, s):
    """Who the contract will recover for `document` from this signature."""
    return Account.recover_message(encode_typed_data(full_message=document), vrs=(v, r, s))


@pytest.fixture
def holder(token, minter, owner):
    token.mint(owner.address, 1_000 * TOKEN, sender=minter)
    return owner


@pytest.fixture
def spender(other):
    return other


@pytest.fixture
def relayer(buyer):
    return buyer


@pytest.fixture
def grantee(accounts):
    return accounts[11]


@pytest.fixture
def permit_for(token, chain_id, holder, spender):
    """An eth-account ERC-2612 permit from `holder` to `spender` at the holder's current nonce."""

    def make(value, deadline, **overrides):
        fields = {
            "token_address": token.address,
            "chain_id": chain_id,
            "owner": holder.address,
            "spender": spender.address,
            "value": value,
            "nonce": token.nonces(holder.address),
            "deadline": deadline,
        }
        key = overrides.pop("key", holder.private_key)
        fields.update(overrides)
        document = permit_document(**fields)
        return document, sign_permit(key, document)

    return make


def submitted(token, holder, spender, value, deadline):
    """The Permit message the token checks for this call (at the holder's current nonce)."""
    return permit_document(
        token.address,
        ape.chain.chain_id,
        holder.address,
        spender.address,
        value,
        token.nonces(holder.address),
        deadline,
    )


def test_metadata_and_cap(token, params):
    assert (token.name(), token.symbol(), token.decimals()) == ("negawatt", "NEGA", 18)
    assert token.cap() == params.token_cap == 1_000_000_000 * TOKEN


def test_admin_holds_admin_role_and_only_oracle_hub_is_deployed_as_minter(token, admin, hub, other):
    assert token.hasRole(DEFAULT_ADMIN_ROLE, admin.address)
    assert token.hasRole(token.MINTER_ROLE(), hub.address)
    assert not token.hasRole(token.MINTER_ROLE(), other.address)
    assert token.MINTER_ROLE() == keccak(text="MINTER_ROLE")


def test_minter_mints_to_an_account(token, minter, other):
    supply = token.totalSupply()
    tx = token.mint(other.address, 42 * TOKEN, sender=minter)
    assert logs(tx) == [(token.address, "Transfer", {"from": ZERO, "to": other.address, "value": 42 * TOKEN})]
    assert token.balanceOf(other.address) == 42 * TOKEN
    assert token.totalSupply() == supply + 42 * TOKEN


def test_mint_without_minter_role_reverts(token, other):
    supply = token.totalSupply()
    with reverts(
        token.AccessControlUnauthorizedAccount, account=other.address, neededRole=token.MINTER_ROLE()
    ):
        token.mint(other.address, 1, sender=other)
    assert token.totalSupply() == supply


def test_admin_grants_and_revokes_minter_role(token, admin, grantee, other):
    role = token.MINTER_ROLE()
    tx = token.grantRole(role, grantee.address, sender=admin)
    assert logs(tx) == [
        (token.address, "RoleGranted", {"role": role, "account": grantee.address, "sender": admin.address})
    ]
    token.mint(other.address, 7, sender=grantee)
    assert token.balanceOf(other.address) == 7

    tx = token.revokeRole(role, grantee.address, sender=admin)
    assert logs(tx) == [
        (token.address, "RoleRevoked", {"role": role, "account": grantee.address, "sender": admin.address})
    ]
    with reverts(token.AccessControlUnauthorizedAccount, account=grantee.address, neededRole=role):
        token.mint(other.address, 7, sender=grantee)


def test_granting_minter_role_requires_admin(token, other, grantee):
    with reverts(
        token.AccessControlUnauthorizedAccount, account=other.address, neededRole=DEFAULT_ADMIN_ROLE
    ):
        token.grantRole(token.MINTER_ROLE(), grantee.address, sender=other)
    assert not token.hasRole(token.MINTER_ROLE(), grantee.address)


def test_mint_up_to_the_cap_exactly(token, minter, other):
    remaining = token.cap() - token.totalSupply()
    token.mint(other.address, remaining, sender=minter)
    assert token.totalSupply() == token.cap()


def test_mint_past_the_cap_reverts(token, minter, other):
    cap = token.cap()
    remaining = cap - token.totalSupply()
    with reverts(token.ERC20ExceededCap, increasedSupply=cap + 1, cap=cap):
        token.mint(other.address, remaining + 1, sender=minter)
    assert token.totalSupply() == cap - remaining


def test_one_unit_past_a_full_cap_reverts(token, minter, other):
    cap = token.cap()
    token.mint(other.address, cap - token.totalSupply(), sender=minter)
    with reverts(token.ERC20ExceededCap, increasedSupply=cap + 1, cap=cap):
        token.mint(other.address, 1, sender=minter)


def test_mint_to_zero_address_reverts(token, minter):
    with reverts(token.ERC20InvalidReceiver, receiver=ZERO):
        token.mint(ZERO, 1, sender=minter)


def test_deploying_with_zero_cap_reverts(project, admin):
    with reverts(project.NegawattToken.ERC20InvalidCap, cap=0):
        admin.deploy(project.NegawattToken, admin.address, 0)


def test_deploying_grants_admin_role_and_sets_cap(project, admin, other):
    fresh = admin.deploy(project.NegawattToken, other.address, 5 * TOKEN)
    assert fresh.cap() == 5 * TOKEN
    assert fresh.totalSupply() == 0
    assert fresh.hasRole(DEFAULT_ADMIN_ROLE, other.address)
    assert not fresh.hasRole(DEFAULT_ADMIN_ROLE, admin.address)


def test_transfer_moves_balance(token, holder, other):
    tx = token.transfer(other.address, 10 * TOKEN, sender=holder)
    assert logs(tx) == [
        (token.address, "Transfer", {"from": holder.address, "to": other.address, "value": 10 * TOKEN})
    ]
    assert token.balanceOf(holder.address) == 990 * TOKEN
    assert token.balanceOf(other.address) == 10 * TOKEN


def test_transfer_above_balance_reverts(token, holder, other):
    with reverts(
        token.ERC20InsufficientBalance, sender=holder.address, balance=1_000 * TOKEN, needed=1_000 * TOKEN + 1
    ):
        token.transfer(other.address, 1_000 * TOKEN + 1, sender=holder)


def test_transfer_to_zero_address_reverts(token, holder):
    with reverts(token.ERC20InvalidReceiver, receiver=ZERO):
        token.transfer(ZERO, 1, sender=holder)


def test_approve_then_transfer_from_spends_allowance(token, holder, spender, other):
    tx = token.approve(spender.address, 30 * TOKEN, sender=holder)
    assert logs(tx) == [
        (
            token.address,
            "Approval",
            {"owner": holder.address, "spender": spender.address, "value": 30 * TOKEN},
        )
    ]
    tx = token.transferFrom(holder.address, other.address, 20 * TOKEN, sender=spender)
    assert logs(tx) == [
        (token.address, "Transfer", {"from": holder.address, "to": other.address, "value": 20 * TOKEN})
    ]
    assert token.allowance(holder.address, spender.address) == 10 * TOKEN
    assert token.balanceOf(other.address) == 20 * TOKEN


def test_transfer_from_above_allowance_reverts(token, holder, spender, other):
    token.approve(spender.address, 5, sender=holder)
    with reverts(token.ERC20InsufficientAllowance, spender=spender.address, allowance=5, needed=6):
        token.transferFrom(holder.address, other.address, 6, sender=spender)


def test_approve_zero_spender_reverts(token, holder):
    with reverts(token.ERC20InvalidSpender, spender=ZERO):
        token.approve(ZERO, 1, sender=holder)


def test_domain_matches_the_one_eth_account_signs_under(token, chain_id):
    domain = token.eip712Domain()
    assert (domain.name, domain.version, domain.chainId) == ("negawatt", "1", chain_id)
    assert domain.verifyingContract == token.address
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak(text="negawatt"),
                keccak(text="1"),
                chain_id,
                token.address,
            ],
        )
    )
    assert token.DOMAIN_SEPARATOR() == expected


def test_permit_sets_allowance_and_bumps_nonce(token, holder, spender, relayer, permit_for, now):
    deadline = now() + 3600
    nonce = token.nonces(holder.address)
    _, (v, r, s) = permit_for(100 * TOKEN, deadline)
    tx = token.permit(holder.address, spender.address, 100 * TOKEN, deadline, v, r, s, sender=relayer)
    assert logs(tx) == [
        (
            token.address,
            "Approval",
            {"owner": holder.address, "spender": spender.address, "value": 100 * TOKEN},
        )
    ]
    assert token.allowance(holder.address, spender.address) == 100 * TOKEN
    assert token.nonces(holder.address) == nonce + 1


def test_permitted_spender_can_transfer_from(token, holder, spender, relayer, other, permit_for, now):
    deadline = now() + 3600
    _, (v, r, s) = permit_for(60 * TOKEN, deadline)
    token.permit(holder.address, spender.address, 60 * TOKEN, deadline, v, r, s, sender=relayer)
    token.transferFrom(holder.address, other.address, 60 * TOKEN, sender=spender)
    assert token.balanceOf(other.address) == 60 * TOKEN
    assert token.allowance(holder.address, spender.address) == 0


def test_permit_is_valid_at_its_deadline(token, chain, holder, spender, relayer, permit_for, now):
    deadline = now() + 600
    _, (v, r, s) = permit_for(1, deadline)
    chain.pending_timestamp = deadline
    tx = token.permit(holder.address, spender.address, 1, deadline, v, r, s, sender=relayer)
    assert tx.timestamp == deadline
    assert token.allowance(holder.address, spender.address) == 1


def test_expired_permit_reverts(token, chain, holder, spender, relayer, permit_for, now):
    deadline = now() + 600
    _, (v, r, s) = permit_for(1, deadline)
    chain.pending_timestamp = deadline + 1
    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(holder.address, spender.address, 1, deadline, v, r, s, sender=relayer)
    assert token.allowance(holder.address, spender.address) == 0


def test_permit_signed_by_another_key_reverts(token, holder, spender, relayer, other, permit_for, now):
    deadline = now() + 3600
    nonce = token.nonces(holder.address)
    _, (v, r, s) = permit_for(1, deadline, key=other.private_key)
    with reverts(token.ERC2612InvalidSigner, signer=other.address, owner=holder.address):
        token.permit(holder.address, spender.address, 1, deadline, v, r, s, sender=relayer)
    assert token.nonces(holder.address) == nonce
    assert token.allowance(holder.address, spender.address) == 0


def test_replayed_permit_reverts(token, holder, spender, relayer, permit_for, now):
    deadline = now() + 3600
    _, (v, r, s) = permit_for(5, deadline)
    token.permit(holder.address, spender.address, 5, deadline, v, r, s, sender=relayer)
    token.approve(spender.address, 0, sender=holder)
    recovered = signer_of(submitted(token, holder, spender, 5, deadline), v, r, s)
    assert recovered != holder.address
    with reverts(token.ERC2612InvalidSigner, signer=recovered, owner=holder.address):
        token.permit(holder.address, spender.address, 5, deadline, v, r, s, sender=relayer)
    assert token.allowance(holder.address, spender.address) == 0


@pytest.mark.parametrize("field", ["value", "spender", "deadline"])
def test_permit_with_a_tampered_field_reverts(
    token, holder, spender, relayer, grantee, permit_for, now, field
):
    deadline = now() + 3600
    _, (v, r, s) = permit_for(5, deadline)
    call = {"spender": spender, "value": 5, "deadline": deadline}
    call[field] = {"value": 5_000, "spender": grantee, "deadline": deadline + 1}[field]
    recovered = signer_of(submitted(token, holder, call["spender"], call["value"], call["deadline"]), v, r, s)
    with reverts(token.ERC2612InvalidSigner, signer=recovered, owner=holder.address):
        token.permit(
            holder.address, call["spender"].address, call["value"], call["deadline"], v, r, s, sender=relayer
        )
    assert token.allowance(holder.address, call["spender"].address) == 0


@pytest.mark.parametrize(
    "domain",
    [{"chain_id": 1}, {"name": "Mock USD"}, {"token_address": "0x000000000000000000000000000000000000dEaD"}],
)
def test_permit_signed_under_another_domain_reverts(token, holder, spender, relayer, permit_for, now, domain):
    deadline = now() + 3600
    _, (v, r, s) = permit_for(5, deadline, **domain)
    recovered = signer_of(submitted(token, holder, spender, 5, deadline), v, r, s)
    with reverts(token.ERC2612InvalidSigner, signer=recovered, owner=holder.address):
        token.permit(holder.address, spender.address, 5, deadline, v, r, s, sender=relayer)


def test_permit_with_invalid_v_reverts(token, holder, spender, relayer, permit_for, now):
    deadline = now() + 3600
    _, (_, r, s) = permit_for(5, deadline)
    with reverts(token.ECDSAInvalidSignature):
        token.permit(holder.address, spender.address, 5, deadline, 29, r, s, sender=relayer)


def test_permit_with_malleated_high_s_reverts(token, holder, spender, relayer, permit_for, now):
    deadline = now() + 3600
    _, (v, r, s) = permit_for(5, deadline)
    high_s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
    with reverts(token.ECDSAInvalidSignatureS, s=high_s):
        token.permit(holder.address, spender.address, 5, deadline, 55 - v, r, high_s, sender=relayer)
