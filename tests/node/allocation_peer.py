"""A clearing peer for the node tests: one bonded oracle on anvil that clears a request with the
protocol's rule (protocol.clearing), posts the allocation through the OracleHub with its signature
(threshold 1), and serves each device's acceptance proof over real HTTP, as an oracle's
GET /v1/allocations/{id}/devices/{device} does. `tamper` makes it serve proofs of other watts (a
lying oracle), so a test can show the node refuses them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from protocol import eip712
from protocol.chain import Transactor
from protocol.clearing import Allocation, Offer, clear


class AllocationPeer:
    """One oracle (anvil key 3) that clears, posts and serves proofs."""

    def __init__(self, devnet: Any, serve_app: Any):
        self.web3, self.manifest = devnet.web3(), devnet.manifest()
        abis = [entry.abi for entry in self.manifest.contracts.values()]
        self.admin = Transactor(self.web3, devnet.keys[0], abis=abis)
        self.oracle_key = devnet.keys[3]
        self.oracle = Transactor(self.web3, self.oracle_key, abis=abis)
        self.hub = self.manifest.contract(self.web3, "OracleHub")
        self.allocations: dict[int, Allocation] = {}
        self.tamper = 0
        token, staking = self.manifest.contract(self.web3, "NegawattToken"), self.manifest.contract(self.web3, "Staking")
        bond = self.hub.functions.minOracleBond().call()
        role = token.functions.MINTER_ROLE().call()
        self.admin.send(token.functions.grantRole(role, self.admin.address))
        self.admin.send(token.functions.mint(self.oracle.address, bond))
        self.oracle.send(token.functions.approve(staking.address, bond))
        self.oracle.send(staking.functions.stake(bond))
        self.admin.send(self.hub.functions.addOracle(self.oracle.address))
        self.admin.send(self.hub.functions.setThreshold(1))
        self.url = serve_app(self._app())

    def post(self, request_id: int, target_w: int, ceiling: int, offers: list[Offer],
             held_out=lambda site: False) -> Allocation:
        """Clear `offers` for the request and post the allocation on chain."""
        allocation = clear(request_id, target_w, ceiling, offers, {}, 1_000, held_out)
        message = {"requestId": request_id, "root": allocation.root(), "acceptedW": allocation.accepted_w,
                   "clearingPrice": allocation.clearing_price, "availabilityPrice": allocation.availability_price}
        signature = eip712.sign(self.oracle_key, "Allocation", message, self.manifest.chainId, self.hub.address)
        self.oracle.send(self.hub.functions.postAllocation(request_id, allocation.root(), allocation.accepted_w,
                                                           allocation.clearing_price, allocation.availability_price,
                                                           [signature]))
        self.allocations[request_id] = allocation
        return allocation

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/allocations/{request_id}/devices/{device}")
        def acceptance(request_id: int, device: str) -> Any:
            allocation = self.allocations.get(request_id)
            found = allocation.acceptance(device) if allocation else None
            if found is None:
                return JSONResponse({"code": "not_accepted"}, status_code=404)
            return {"requestId": request_id, "device": found.device, "acceptedW": found.watts + self.tamper,
                    "clearingPrice": allocation.clearing_price, "root": "0x" + allocation.root().hex(),
                    "proof": ["0x" + p.hex() for p in allocation.proof(found.device)]}

        return app
