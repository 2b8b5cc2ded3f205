// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title NegawattToken
/// @notice The protocol token: bonded in Staking by device owners and oracles, and emitted as a
///         reward per verified kWh. ERC-20 with ERC-2612 permit and a hard supply cap.
/// @dev Only accounts holding MINTER_ROLE (the OracleHub, for emissions) can mint.
contract NegawattToken is ERC20, ERC20Capped, ERC20Permit, AccessControl {
    /// @notice Role allowed to mint new tokens, up to the cap.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants and revokes MINTER_ROLE).
    /// @param supplyCap The most tokens that can ever exist, in base units.
    constructor(address admin, uint256 supplyCap)
        ERC20("negawatt", "NEGA")
        ERC20Capped(supplyCap)
        ERC20Permit("negawatt")
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Mint `amount` base units to `to`; reverts past the cap (ERC20ExceededCap).
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
