// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title GuardianPausable
/// @notice Role-based access with an emergency stop: the guardian can pause and unpause every
///         value-moving function of the inheriting contract (OpenZeppelin's Paused/Unpaused events).
abstract contract GuardianPausable is AccessControl, Pausable {
    /// @notice Role that may pause and unpause (and, in OracleHub, resolve challenges).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    /// @notice The zero address was given where an account or contract is required.
    error ZeroAddress();

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param guardian Receives GUARDIAN_ROLE.
    constructor(address admin, address guardian) {
        if (admin == address(0) || guardian == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, guardian);
    }

    /// @notice Stop every value-moving function until `unpause`.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resume after `pause`.
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
    }
}
