// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title HostileToken
/// @notice A payment token that turns against the market after the escrow is in, for the audit's
///         H-1 regression tests: it can revert every transfer, refuse one blacklisted address (as a
///         stablecoin issuer can), or burn all the gas it is given.
/// @dev Test-only: anyone can mint and set the mode.
contract HostileToken is ERC20 {
    /// @notice How transfers behave.
    enum Mode {
        Honest,
        RevertAll,
        Blacklist,
        BurnGas
    }

    Mode public mode;
    address public blacklisted;

    /// @notice The token refuses this transfer.
    error Refused(address from, address to);

    constructor() ERC20("Hostile", "HOST") {}

    /// @notice Mint `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Change how later transfers behave.
    function setMode(Mode mode_, address blacklisted_) external {
        mode = mode_;
        blacklisted = blacklisted_;
    }

    function _update(address from, address to, uint256 value) internal override {
        Mode m = mode;
        if (m == Mode.RevertAll) revert Refused(from, to);
        if (m == Mode.Blacklist && (from == blacklisted || to == blacklisted)) revert Refused(from, to);
        if (m == Mode.BurnGas) {
            uint256 spin = 0;
            while (gasleft() > 2_000) {
                spin++;
            }
        }
        super._update(from, to, value);
    }
}
