// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title GuardianPausable
/// @notice Role-based access with a bounded emergency stop, and roles that bind once to the hub.
///         The guardian can pause every value-moving function of the inheriting contract, but a
///         pause ends by itself after MAX_PAUSE_DURATION, and a new pause needs PAUSE_COOLDOWN after
///         the last one ended: a guardian (or a stolen guardian key) can hold funds for at most a
///         week at a time, and users always get a day in between to cancel, expire, withdraw and
///         claim (audit M-3). OpenZeppelin's Paused/Unpaused events, plus PausedUntil.
/// @dev Hub roles (the roles the OracleHub holds to move escrow, stake and rewards) have a role
///      admin that nobody holds, so DEFAULT_ADMIN_ROLE can neither grant them to itself nor revoke
///      them: `bindHub` grants them once, at deployment, and never again (audit M-3).
abstract contract GuardianPausable is AccessControl, Pausable {
    /// @notice Role that may pause and unpause.
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @notice Longest a pause lasts; it ends by itself then.
    uint40 public constant MAX_PAUSE_DURATION = 7 days;
    /// @notice Time after a pause ends before the guardian may pause again.
    uint40 public constant PAUSE_COOLDOWN = 1 days;
    /// @dev Role admin of the hub roles: no account holds it, so no one can grant or revoke them.
    bytes32 private constant NO_ADMIN_ROLE = keccak256("negawatt.NO_ADMIN_ROLE");

    /// @notice When the current (or the last) pause ends; 0 before the first pause.
    uint40 public pausedUntil;
    /// @notice The hub the hub roles were bound to (zero until `bindHub`).
    address public hub;

    /// @notice The pause in force ends at `until` (earlier if the guardian unpauses).
    event PausedUntil(uint40 until);
    /// @notice The hub roles were bound to `hub`, for good.
    event HubBound(address indexed hub);

    /// @notice The zero address was given where an account or contract is required.
    error ZeroAddress();
    /// @notice The last pause ended too recently; pausing is possible again at `availableAt`.
    error PauseCooldown(uint256 availableAt);
    /// @notice The hub roles were already bound.
    error HubAlreadyBound(address hub);

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param guardian Receives GUARDIAN_ROLE.
    constructor(address admin, address guardian) {
        if (admin == address(0) || guardian == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, guardian);
        bytes32[] memory roles = _hubRoles();
        for (uint256 i = 0; i < roles.length; ++i) {
            _setRoleAdmin(roles[i], NO_ADMIN_ROLE);
        }
    }

    /// @notice Stop every value-moving function for at most MAX_PAUSE_DURATION.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _requireNotPaused();
        uint256 last = pausedUntil;
        if (last != 0 && block.timestamp < last + PAUSE_COOLDOWN) revert PauseCooldown(last + PAUSE_COOLDOWN);
        _pause(); // checks the pause flag against the last pause's end, which is past
        uint40 until = uint40(block.timestamp) + MAX_PAUSE_DURATION;
        pausedUntil = until;
        emit PausedUntil(until);
    }

    /// @notice End the pause before it expires.
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
        pausedUntil = uint40(block.timestamp);
    }

    /// @notice Grant the hub roles to `hub_` (the OracleHub); possible once, by the admin.
    function bindHub(address hub_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (hub_ == address(0)) revert ZeroAddress();
        if (hub != address(0)) revert HubAlreadyBound(hub);
        hub = hub_;
        emit HubBound(hub_);
        bytes32[] memory roles = _hubRoles();
        for (uint256 i = 0; i < roles.length; ++i) {
            _grantRole(roles[i], hub_);
        }
    }

    /// @notice Whether the contract is paused now: a pause whose time ran out no longer counts.
    function paused() public view virtual override returns (bool) {
        return super.paused() && block.timestamp < pausedUntil;
    }

    /// @dev The roles `bindHub` grants (none by default); each inheriting contract names its own.
    function _hubRoles() internal pure virtual returns (bytes32[] memory roles) {
        return roles;
    }
}
