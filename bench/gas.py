"""Gas of every protocol operation, as whole transactions on a fresh anvil chain.

The system is deployed as `ape run deploy` deploys it. Five bonded oracles sign with threshold 3.
Scenario (each figure is the receipt's gasUsed of one transaction):
  register_device            a device joins a zone that already has devices (the common case);
                             register_device_first_in_zone is the zone's first device
  register_site              a site meter (kind 6) joins; it never touches the zone's totals
  register_device_at_site    a controllable device joins a site (DeviceAtSitePermit) in a zone that
                             already has devices; register_device_at_site_first_in_zone is the
                             zone's first (the site's device count is written nonzero to nonzero
                             either way: it lives in the site's own record)
  stake                      a device owner's first bond
  open_request               a buyer's request with escrow, under market rules (holdout and gate
                             lead set, so the RequestRules event is the one a holdout request emits)
  post_allocation            the request's clearing result (root, accepted W, clearing price) with 3
                             oracle signatures, before its start: O(1) whatever the number of sites
  submit_report_k3_of_5      epoch 1: a report settling one request, with an emission, 3 signatures
  finalize                   epoch 1 finalized: payout, refund, emission mint, root installed
  settlement_gas_per_device_10k  (allocation + submit + finalize of epoch 1) / 10,000, its tree holding one
                             leaf per device for 10,000 devices (on-chain work does not depend on it)
  claim_first_depth20        epoch 2's tree has 2^20 leaves; an account claims for the first time
  claim_next_depth20         epoch 3 (2^20 leaves again) grows that account's amount; it claims again
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {
    "register_device": 75_000,
    "register_site": 75_000,
    "register_device_at_site": 75_000,
    "claim_first_depth20": 98_000,
    "claim_next_depth20": 62_000,
    "submit_report_k3_of_5": 90_000,
    "post_allocation": 80_000,
    "settlement_gas_per_device_10k": 50,
}
DEVICES_10K = 10_000
DEPTH20_LEAVES = 2**20


def _random_address() -> str:
    return "0x" + os.urandom(20).hex()


def run(network: str = "ethereum:local:foundry") -> dict:
    """Deploy to a fresh local chain, run each operation once, and return the gas figures."""
    os.chdir(REPO)
    from ape import accounts, chain, networks, project
    from ape.logging import logger

    logger.set_level(logging.ERROR)
    from eth_account import Account

    from negawatt.deploy import TOKEN, DeployParams, deploy_all
    from protocol import eip712
    from protocol.merkle import RewardLeaf, RewardsTree
    from protocol.report import RequestPayout, SettlementReport

    usd_unit = 10**6
    gas: dict[str, int] = {}
    started = time.monotonic()
    with networks.parse_network_choice(network):
        test = accounts.test_accounts
        admin, owner, buyer, claimer, submitter = test[0], test[1], test[2], test[3], test[4]
        oracles = [test[5 + i] for i in range(5)]
        params = DeployParams(threshold=1, challenge_window=60, min_duration=900, min_oracle_bond=10_000 * TOKEN,
                              holdout_bps=1_500, gate_lead_seconds=900)
        system = deploy_all(project, admin, params)["instances"]
        token, registry, staking = system["NegawattToken"], system["DeviceRegistry"], system["Staking"]
        market, distributor, hub, usd = (
            system["FlexMarket"], system["RewardDistributor"], system["OracleHub"], system["MockStablecoin"])
        chain_id = chain.chain_id

        token.grantRole(token.MINTER_ROLE(), admin.address, sender=admin)
        for oracle in oracles:
            token.mint(oracle.address, params.min_oracle_bond, sender=admin)
            token.approve(staking.address, params.min_oracle_bond, sender=oracle)
            staking.stake(params.min_oracle_bond, sender=oracle)
            hub.addOracle(oracle.address, sender=admin)
        hub.setThreshold(3, sender=admin)

        def register(device_key: bytes, zone: int) -> int:
            device = Account.from_key(device_key).address
            deadline = chain.pending_timestamp + 3600
            message = {"owner": owner.address, "device": device, "kind": 0, "capacityW": 7_000, "zone": zone,
                       "nonce": 0, "deadline": deadline}
            signature = eip712.sign(device_key, "DevicePermit", message, chain_id, registry.address)
            return registry.register(device, 0, 7_000, zone, deadline, signature, sender=owner).gas_used

        gas["register_device_first_in_zone"] = register(os.urandom(32), zone=7)
        gas["register_device"] = register(os.urandom(32), zone=7)

        site_key = os.urandom(32)
        site = Account.from_key(site_key).address
        deadline = chain.pending_timestamp + 3600
        message = {"owner": owner.address, "device": site, "kind": 6, "capacityW": 17_250, "zone": 8, "nonce": 0,
                   "deadline": deadline}
        signature = eip712.sign(site_key, "DevicePermit", message, chain_id, registry.address)
        gas["register_site"] = registry.register(site, 6, 17_250, 8, deadline, signature, sender=owner).gas_used

        def register_at_site(device_key: bytes) -> int:
            device = Account.from_key(device_key).address
            deadline = chain.pending_timestamp + 3600
            message = {"owner": owner.address, "device": device, "site": site, "kind": 1, "capacityW": 3_000,
                       "nonce": 0, "deadline": deadline}
            signature = eip712.sign(device_key, "DeviceAtSitePermit", message, chain_id, registry.address)
            return registry.registerAtSite(device, site, 1, 3_000, deadline, signature, sender=owner).gas_used

        gas["register_device_at_site_first_in_zone"] = register_at_site(os.urandom(32))
        gas["register_device_at_site"] = register_at_site(os.urandom(32))

        token.mint(owner.address, 1_000 * TOKEN, sender=admin)
        token.approve(staking.address, 1_000 * TOKEN, sender=owner)
        gas["stake"] = staking.stake(700 * TOKEN, sender=owner).gas_used

        budget = 100_000 * usd_unit
        usd.mint(buyer.address, budget, sender=buyer)
        usd.approve(market.address, budget, sender=buyer)
        start = chain.pending_timestamp + 900 + 120
        gas["open_request"] = market.openRequest(
            7, start, start + 3600, 70_000_000, 200_000, usd.address, budget, sender=buyer).gas_used
        request_id = market.requestCount()
        usd.mint(buyer.address, budget, sender=buyer)  # the same again, for a request that pays availability
        usd.approve(market.address, budget, sender=buyer)
        gas["open_request_with_availability"] = market.openRequestWithAvailability(
            7, start, start + 3600, 70_000_000, 200_000, 40_000, usd.address, budget, sender=buyer).gas_used
        accepted_w, clearing_price, allocation_root = 70_000_000, 150_000, os.urandom(32)
        allocation = {"requestId": request_id, "root": allocation_root, "acceptedW": accepted_w,
                      "clearingPrice": clearing_price, "availabilityPrice": 0}
        allocation_signatures = [eip712.sign(o.private_key, "Allocation", allocation, chain_id, hub.address)
                                 for o in oracles[:3]]
        chain.mine(timestamp=start - 60)
        gas["post_allocation"] = hub.postAllocation(request_id, allocation_root, accepted_w, clearing_price, 0,
                                                    allocation_signatures, sender=submitter).gas_used
        chain.mine(timestamp=start + 3601)

        def settle(leaves_tree: RewardsTree, payouts, emission: int) -> tuple[int, int]:
            report = SettlementReport(
                epoch=hub.currentEpoch() + 1,
                previous_root=bytes(hub.currentRoot()),
                rewards_root=leaves_tree.root,
                payouts=tuple(payouts),
                emission=emission,
            )
            signatures = [report.sign(o.private_key, chain_id, hub.address) for o in oracles[:3]]
            submitted = hub.submitReport(report.as_tuple(), report.payout_tuples(), [], signatures, sender=submitter)
            chain.mine(timestamp=hub.pendingReport().challengeDeadline)
            finalized = hub.finalize(report.as_tuple(), report.payout_tuples(), [], sender=submitter)
            return submitted.gas_used, finalized.gas_used

        # Epoch 1: 10,000 devices' owners paid from one request (10% of the escrow: the most its
        # allocation can earn is 70 MW x 1 h x 0.15 USD/kWh = 10,500 USD), plus emission.
        payout = 10_000 * usd_unit
        per_device = payout // DEVICES_10K
        device_leaves = [RewardLeaf(_random_address(), usd.address, per_device) for _ in range(DEVICES_10K)]
        device_leaves += [RewardLeaf(_random_address(), token.address, TOKEN) for _ in range(10)]
        tree_10k = RewardsTree(device_leaves)
        submit_gas, finalize_gas = settle(tree_10k, [RequestPayout(request_id, payout)], emission=10 * TOKEN)
        gas["submit_report_k3_of_5"] = submit_gas
        gas["finalize"] = finalize_gas
        gas["settlement_gas_per_device_10k"] = (gas["post_allocation"] + submit_gas + finalize_gas) // DEVICES_10K

        # Epochs 2 and 3: trees of 2^20 leaves, so every proof has 20 siblings.
        def big_tree(amount: int) -> tuple[RewardsTree, RewardLeaf]:
            mine = RewardLeaf(claimer.address, usd.address, amount)
            filler = [RewardLeaf(_random_address(), usd.address, 1) for _ in range(DEPTH20_LEAVES - 1)]
            return RewardsTree([mine] + filler), mine

        for name, amount in (("claim_first_depth20", 10 * usd_unit), ("claim_next_depth20", 25 * usd_unit)):
            tree, leaf = big_tree(amount)
            settle(tree, [], emission=0)
            proof = tree.proof(leaf)
            assert len(proof) == 20, len(proof)
            gas[name] = distributor.claim(leaf.account, leaf.token, leaf.amount, proof, sender=claimer).gas_used
        assert usd.balanceOf(claimer.address) == 25 * usd_unit

    return {
        "network": network,
        **gas,
        "targets": TARGETS,
        "meets_targets": all(gas[name] <= limit for name, limit in TARGETS.items()),
        "seconds": round(time.monotonic() - started, 1),
    }
