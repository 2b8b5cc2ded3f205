// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {GuardianPausable} from "./GuardianPausable.sol";

/// @title Staking
/// @notice Bonds of the protocol token. Device owners bond per committed kW (oracles only count a
///         commitment the owner's bond covers, see `requiredBond`); oracle operators bond to
///         operate (the OracleHub locks their minimum). Unstaking waits an unbonding delay during
///         which the tokens can still be slashed. Slashing is reserved to the settlement and
///         challenge path (SLASHER_ROLE, held by the OracleHub), which names where slashed tokens go
///         (its treasury, or itself to reward a successful challenger).
contract Staking is GuardianPausable {
    using SafeERC20 for IERC20;

    /// @notice Role of the settlement/challenge path that may slash.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice Role that may lock part of a bond (the OracleHub, for oracle operator bonds).
    bytes32 public constant LOCKER_ROLE = keccak256("LOCKER_ROLE");
    /// @notice Upper bound on the unbonding delay an admin can set.
    uint256 public constant MAX_UNBONDING_DELAY = 365 days;

    /// @notice One account's stake.
    /// @dev `bonded` counts for commitments; `unbonding` waits for `releaseAt` but stays slashable.
    struct Stake {
        uint128 bonded;
        uint128 unbonding;
        uint64 releaseAt;
    }

    /// @notice The token that is bonded.
    IERC20 public immutable stakingToken;
    /// @notice Seconds between an unstake request and the withdrawal.
    uint64 public unbondingDelay;
    /// @notice Bond required per committed kW, in token base units.
    uint256 public bondPerKW;

    mapping(address account => Stake) private _stakes;
    mapping(address account => uint256) private _locked;

    /// @notice `account` bonded `amount` more; `bonded` is the new total.
    event Staked(address indexed account, uint256 amount, uint256 bonded);
    /// @notice `account` started unbonding `amount`, withdrawable from `releaseAt`.
    event UnstakeRequested(address indexed account, uint256 amount, uint256 unbonding, uint64 releaseAt);
    /// @notice `account` withdrew `amount` after unbonding.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `amount` of `account`'s stake was slashed to `recipient` (bonded first, then unbonding).
    event Slashed(address indexed account, uint256 amount, address indexed recipient, uint256 requested);
    /// @notice `account` must keep at least `amount` bonded.
    event LockSet(address indexed account, uint256 amount);
    /// @notice The bond required per committed kW changed.
    event BondPerKWSet(uint256 bondPerKW);
    /// @notice The unbonding delay changed (applies to later unstake requests).
    event UnbondingDelaySet(uint64 delay);

    /// @notice Amounts must be positive.
    error ZeroAmount();
    /// @notice The amount does not fit the stake's 128-bit fields.
    error AmountTooLarge(uint256 amount);
    /// @notice Unstaking `requested` would leave less bonded than the locked minimum.
    error InsufficientUnlockedStake(uint256 requested, uint256 unlocked);
    /// @notice There is nothing unbonding to withdraw.
    error NothingToWithdraw();
    /// @notice The unbonding delay has not passed.
    error StillUnbonding(uint64 releaseAt);
    /// @notice The delay is longer than MAX_UNBONDING_DELAY.
    error UnbondingDelayTooLong(uint64 delay);

    /// @param admin Receives DEFAULT_ADMIN_ROLE (parameters, roles).
    /// @param guardian Receives GUARDIAN_ROLE (pause).
    /// @param token_ The token to bond.
    /// @param unbondingDelay_ Seconds an unstake waits.
    /// @param bondPerKW_ Bond per committed kW, in token base units.
    constructor(
        address admin,
        address guardian,
        IERC20 token_,
        uint64 unbondingDelay_,
        uint256 bondPerKW_
    ) GuardianPausable(admin, guardian) {
        if (address(token_) == address(0)) revert ZeroAddress();
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) revert UnbondingDelayTooLong(unbondingDelay_);
        stakingToken = token_;
        unbondingDelay = unbondingDelay_;
        bondPerKW = bondPerKW_;
        emit UnbondingDelaySet(unbondingDelay_);
        emit BondPerKWSet(bondPerKW_);
    }

    /// @notice Bond `amount` tokens (approve or permit them to this contract first).
    function stake(uint256 amount) external whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakes[msg.sender];
        uint256 bonded = uint256(s.bonded) + amount;
        if (bonded > type(uint128).max) revert AmountTooLarge(amount);
        s.bonded = uint128(bonded);
        emit Staked(msg.sender, amount, bonded);
        stakingToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Start unbonding `amount`; the whole unbonding balance is withdrawable after the delay
    ///         (a new request restarts the clock for it).
    function requestUnstake(uint256 amount) external whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakes[msg.sender];
        uint256 locked = _locked[msg.sender];
        uint256 unlocked = s.bonded > locked ? s.bonded - locked : 0;
        if (amount > unlocked) revert InsufficientUnlockedStake(amount, unlocked);
        s.bonded -= uint128(amount);
        s.unbonding += uint128(amount);
        uint64 releaseAt = uint64(block.timestamp) + unbondingDelay;
        s.releaseAt = releaseAt;
        emit UnstakeRequested(msg.sender, amount, s.unbonding, releaseAt);
    }

    /// @notice Withdraw everything that finished unbonding.
    function withdraw() external whenNotPaused {
        Stake storage s = _stakes[msg.sender];
        uint256 amount = s.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < s.releaseAt) revert StillUnbonding(s.releaseAt);
        s.unbonding = 0;
        s.releaseAt = 0;
        emit Withdrawn(msg.sender, amount);
        stakingToken.safeTransfer(msg.sender, amount);
    }

    /// @notice Take up to `amount` from `account` (bonded first, then unbonding) and send it to
    ///         `recipient`. Never takes more than the account has.
    /// @return slashed The amount actually taken.
    function slash(address account, uint256 amount, address recipient)
        external
        onlyRole(SLASHER_ROLE)
        whenNotPaused
        returns (uint256 slashed)
    {
        if (recipient == address(0)) revert ZeroAddress();
        Stake storage s = _stakes[account];
        uint256 fromBonded = amount < s.bonded ? amount : s.bonded;
        uint256 rest = amount - fromBonded;
        uint256 fromUnbonding = rest < s.unbonding ? rest : s.unbonding;
        slashed = fromBonded + fromUnbonding;
        if (slashed == 0) {
            emit Slashed(account, 0, recipient, amount); // nothing left to take: said, not silent
            return 0;
        }
        s.bonded -= uint128(fromBonded);
        s.unbonding -= uint128(fromUnbonding);
        emit Slashed(account, slashed, recipient, amount);
        stakingToken.safeTransfer(recipient, slashed);
    }

    /// @notice Require `account` to keep at least `amount` bonded (0 removes the lock).
    function setLock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) {
        _locked[account] = amount;
        emit LockSet(account, amount);
    }

    /// @notice Set the bond required per committed kW.
    function setBondPerKW(uint256 bondPerKW_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        bondPerKW = bondPerKW_;
        emit BondPerKWSet(bondPerKW_);
    }

    /// @notice Set the unbonding delay for later unstake requests.
    function setUnbondingDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (delay > MAX_UNBONDING_DELAY) revert UnbondingDelayTooLong(delay);
        unbondingDelay = delay;
        emit UnbondingDelaySet(delay);
    }

    /// @notice Tokens `account` has bonded (not counting what is unbonding).
    function bondedOf(address account) external view returns (uint256) {
        return _stakes[account].bonded;
    }

    /// @notice The full stake record of `account`.
    function stakeOf(address account) external view returns (Stake memory) {
        return _stakes[account];
    }

    /// @notice The minimum `account` must keep bonded.
    function lockedOf(address account) external view returns (uint256) {
        return _locked[account];
    }

    /// @notice Bond needed to commit `watts` of curtailment: ceil(watts * bondPerKW / 1000).
    function requiredBond(uint256 watts) public view returns (uint256) {
        return (watts * bondPerKW + 999) / 1000;
    }

    /// @notice Whether `account`'s bond covers committing `watts`.
    function coversCommitment(address account, uint256 watts) external view returns (bool) {
        return _stakes[account].bonded >= requiredBond(watts);
    }
}
