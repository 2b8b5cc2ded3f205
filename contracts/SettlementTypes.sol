// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice What one settled request pays: `payout` (payment-token base units) goes to the
///         RewardDistributor; the rest of the request's escrow goes back to its buyer.
struct RequestPayout {
    uint256 requestId;
    uint256 payout;
}

/// @notice A stake penalty for proven under-delivery: up to `amount` of `account`'s stake is slashed.
struct Penalty {
    address account;
    uint256 amount;
}

/// @notice The oracles' settlement of one epoch, signed as EIP-712
///         SettlementReport(uint64 epoch,bytes32 previousRoot,bytes32 rewardsRoot,bytes32 requestsHash,
///                          bytes32 penaltiesHash,uint256 emission).
/// @dev `requestsHash` = keccak256(abi.encode(RequestPayout[])), `penaltiesHash` =
///      keccak256(abi.encode(Penalty[])): the arrays travel as calldata next to the report.
///      `rewardsRoot` is the new cumulative Merkle root over (account, token, cumulativeAmount);
///      `emission` is the protocol-token amount minted to the distributor for this epoch.
struct SettlementReport {
    uint64 epoch;
    bytes32 previousRoot;
    bytes32 rewardsRoot;
    bytes32 requestsHash;
    bytes32 penaltiesHash;
    uint256 emission;
}
