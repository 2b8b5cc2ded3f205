// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title NegawattTimelock
/// @notice The admin of every negawatt contract outside a local devnet: OpenZeppelin's
///         TimelockController, so each change of the oracle set, the parameters or the roles is
///         announced on-chain (CallScheduled) at least `minDelay` before it can run. Owners, buyers
///         and oracles can read what is coming and leave first (cancel open requests, unstake)
///         (audit M-3). The proposers (a multisig) schedule and may cancel; the executors run a
///         change once its delay has passed. The timelock administers itself: no account can skip
///         the delay.
contract NegawattTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and executing a change.
    /// @param proposers Accounts that schedule (and cancel) changes.
    /// @param executors Accounts that execute them (the zero address: anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
