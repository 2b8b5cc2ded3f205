"""What the buyer needs to know of a payment token before escrowing it: that it is a contract with
`decimals()`, its symbol, the buyer's balance and allowance, and whether it takes ERC-2612 permits.

Any ERC-20 may pay a request, so the token is reached through a minimal ABI here, not the manifest.
A token counts as permit-capable only when it answers `nonces` and `DOMAIN_SEPARATOR` and its
separator is the one its EIP-712 domain (ERC-5267 `eip712Domain()`, else `name()` and version "1")
gives: a permit signed for any other domain would revert, so such a token is approved instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import is_address, keccak, to_checksum_address

from buyer.checks import BuyerError


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[str], mutability: str = "view") -> dict:
    return {"type": "function", "name": name, "stateMutability": mutability,
            "inputs": [{"name": n, "type": t} for n, t in inputs],
            "outputs": [{"name": "", "type": t} for t in outputs]}


ERC20_PERMIT_ABI: list[dict] = [
    _fn("decimals", [], ["uint8"]),
    _fn("symbol", [], ["string"]),
    _fn("name", [], ["string"]),
    _fn("balanceOf", [("account", "address")], ["uint256"]),
    _fn("allowance", [("owner", "address"), ("spender", "address")], ["uint256"]),
    _fn("approve", [("spender", "address"), ("value", "uint256")], ["bool"], "nonpayable"),
    _fn("nonces", [("owner", "address")], ["uint256"]),
    _fn("DOMAIN_SEPARATOR", [], ["bytes32"]),
    _fn("permit", [("owner", "address"), ("spender", "address"), ("value", "uint256"), ("deadline", "uint256"),
                   ("v", "uint8"), ("r", "bytes32"), ("s", "bytes32")], [], "nonpayable"),
    _fn("eip712Domain", [], ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"]),
]

_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")


@dataclass(frozen=True)
class TokenInfo:
    """A payment token as the buyer sees it."""

    address: str
    decimals: int
    symbol: str
    balance: int
    allowance: int
    permit_domain: dict[str, Any] | None  # the EIP-712 domain of its permits; None: approve instead

    @property
    def has_permit(self) -> bool:
        """Whether the token takes an ERC-2612 permit the buyer can sign."""
        return self.permit_domain is not None


def token_contract(web3: Any, address: str) -> Any:
    """A web3 handle for the ERC-20 at `address` (minimal ABI with permit)."""
    return web3.eth.contract(address=to_checksum_address(address), abi=ERC20_PERMIT_ABI)


def domain_separator(domain: dict[str, Any]) -> bytes:
    """The EIP-712 separator of a (name, version, chainId, verifyingContract) domain."""
    return keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                         [_DOMAIN_TYPEHASH, keccak(text=domain["name"]), keccak(text=domain["version"]),
                          int(domain["chainId"]), domain["verifyingContract"]]))


def inspect_token(web3: Any, address: str, owner: str, spender: str) -> TokenInfo:
    """Read the token at `address` for `owner` paying `spender`; raises BuyerError when it is not an
    address, holds no contract, or answers no `decimals()`."""
    if not isinstance(address, str) or not is_address(address):
        raise BuyerError(f"--token {str(address)[:60]!r} is not an address")
    address = to_checksum_address(address)
    if not web3.eth.get_code(address):
        raise BuyerError(f"unknown token {address}: no contract at that address on this chain")
    token = token_contract(web3, address)
    try:
        decimals = int(token.functions.decimals().call())
    except Exception:  # any revert or undecodable answer means the same thing here
        raise BuyerError(f"unknown token {address}: the contract has no decimals(), it is not an ERC-20 token") \
            from None
    try:
        balance = int(token.functions.balanceOf(owner).call())
        allowance = int(token.functions.allowance(owner, spender).call())
    except Exception:
        raise BuyerError(f"unknown token {address}: balanceOf/allowance fail, it is not an ERC-20 token") from None
    return TokenInfo(address, decimals, _symbol(token), balance, allowance, _permit_domain(web3, token, owner))


def _symbol(token: Any) -> str:
    try:
        symbol = str(token.functions.symbol().call())
    except Exception:
        return "units"
    return symbol[:16] or "units"


def _permit_domain(web3: Any, token: Any, owner: str) -> dict[str, Any] | None:
    try:
        token.functions.nonces(owner).call()
        separator = bytes(token.functions.DOMAIN_SEPARATOR().call())
    except Exception:
        return None
    candidates = []
    try:
        _, name, version, chain_id, verifying, _, _ = token.functions.eip712Domain().call()
        candidates.append({"name": name, "version": version, "chainId": int(chain_id),
                           "verifyingContract": to_checksum_address(verifying)})
    except Exception:
        pass
    try:
        candidates.append({"name": str(token.functions.name().call()), "version": "1",
                           "chainId": int(web3.eth.chain_id), "verifyingContract": token.address})
    except Exception:
        pass
    for domain in candidates:
        if domain_separator(domain) == separator:
            return domain
    return None
