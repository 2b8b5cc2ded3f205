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
///         A penalty (`slash`) takes only what is above the account's lock, so an owner penalty can
///         never eat an oracle's operating bond; only an upheld challenge (`slashBond`) reaches the
///         locked part (audit M-4). What a slash could not take is kept as debt, paid first out of
///         the account's next stake (audit L-3), and unbonding lasts at least MIN_UNBONDING_DELAY.
contract Staking is GuardianPausable {
    using SafeERC20 for IERC20;

    /// @notice Role of the settlement/challenge path that may slash.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice Role that may lock part of a bond (the OracleHub, for oracle operator bonds).
    bytes32 public constant LOCKER_ROLE = keccak256("LOCKER_ROLE");
    /// @notice Upper bound on the unbonding delay an admin can set.
    uint256 public constant MAX_UNBONDING_DELAY = 365 days;
    /// @notice Lower bound on the unbonding delay: stake stays slashable at least this long after an
    ///         unstake request (the deployment sets it longer than the challenge window).
    uint256 public constant MIN_UNBONDING_DELAY = 1 hours;

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

    /// @notice What slashes could not take from an account, and where it goes once paid.
    struct Debt {
        uint96 amount;
        address recipient;
    }

    mapping(address account => Debt) private _debts;

    /// @notice `account` bonded `amount` more; `bonded` is the new total.
    event Staked(address indexed account, uint256 amount, uint256 bonded);
    /// @notice `account` started unbonding `amount`, withdrawable from `releaseAt`.
    event UnstakeRequested(address indexed account, uint256 amount, uint256 unbonding, uint64 releaseAt);
    /// @notice `account` withdrew `amount` after unbonding.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `amount` of `account`'s stake was slashed to `recipient`; `bonded` and `unbonding` are
    ///         what the account has left (so a mirror needs no copy of the lock rule).
    event Slashed(
        address indexed account,
        uint256 amount,
        address indexed recipient,
        uint256 requested,
        uint256 bonded,
        uint256 unbonding
    );
    /// @notice A slash of `account` fell `shortfall` short; `debt` is now owed to `recipient`.
    event DebtRecorded(address indexed account, uint256 shortfall, uint256 debt, address indexed recipient);
    /// @notice `amount` of `account`'s new stake paid its debt to `recipient`; `debt` remains.
    event DebtPaid(address indexed account, uint256 amount, uint256 debt, address indexed recipient);
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
    /// @notice The delay is shorter than MIN_UNBONDING_DELAY.
    error UnbondingDelayTooShort(uint64 delay);

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
        _checkUnbondingDelay(unbondingDelay_);
        stakingToken = token_;
        unbondingDelay = unbondingDelay_;
        bondPerKW = bondPerKW_;
        emit UnbondingDelaySet(unbondingDelay_);
        emit BondPerKWSet(bondPerKW_);
    }

    /// @notice Bond `amount` tokens (approve or permit them to this contract first). An account with
    ///         debt pays it first; only the rest is bonded.
    function stake(uint256 amount) external whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        Debt memory debt = _debts[msg.sender];
        uint256 repaid = debt.amount < amount ? debt.amount : amount;
        Stake storage s = _stakes[msg.sender];
        uint256 bonded = uint256(s.bonded) + amount - repaid;
        if (bonded > type(uint128).max) revert AmountTooLarge(amount);
        s.bonded = uint128(bonded);
        if (repaid > 0) {
            uint256 left = debt.amount - repaid;
            _debts[msg.sender].amount = uint96(left);
            emit DebtPaid(msg.sender, repaid, left, debt.recipient);
        }
        emit Staked(msg.sender, amount - repaid, bonded);
        stakingToken.safeTransferFrom(msg.sender, address(this), amount);
        if (repaid > 0) stakingToken.safeTransfer(debt.recipient, repaid);
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

    /// @notice A penalty: take up to `amount` from `account`'s stake above its lock (bonded first,
    ///         then unbonding) and send it to `recipient`; what is missing becomes debt.
    /// @return slashed The amount actually taken now.
    function slash(address account, uint256 amount, address recipient)
        external
        onlyRole(SLASHER_ROLE)
        whenNotPaused
        returns (uint256 slashed)
    {
        return _slash(account, amount, recipient, _locked[account]);
    }

    /// @notice An upheld challenge: take up to `amount` from `account`'s whole stake, its locked
    ///         operating bond included, and send it to `recipient`; what is missing becomes debt.
    /// @return slashed The amount actually taken now.
    function slashBond(address account, uint256 amount, address recipient)
        external
        onlyRole(SLASHER_ROLE)
        whenNotPaused
        returns (uint256 slashed)
    {
        return _slash(account, amount, recipient, 0);
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
        _checkUnbondingDelay(delay);
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

    /// @notice Whether `account`'s bond covers committing `watts`: its bonded stake above its lock
    ///         (an oracle's operating bond covers no commitment) reaches `requiredBond(watts)`.
    function coversCommitment(address account, uint256 watts) external view returns (bool) {
        uint256 bonded = _stakes[account].bonded;
        uint256 locked = _locked[account];
        uint256 free = bonded > locked ? bonded - locked : 0;
        return free >= requiredBond(watts);
    }

    /// @notice What slashes could not take from `account` yet, and where it goes once paid.
    function debtOf(address account) external view returns (Debt memory) {
        return _debts[account];
    }

    /// @dev Take up to `amount` from the stake above `keep` (bonded above `keep` first, then all
    ///      unbonding); record the shortfall as debt to `recipient`. Emits Slashed even for 0.
    function _slash(address account, uint256 amount, address recipient, uint256 keep)
        private
        returns (uint256 slashed)
    {
        if (recipient == address(0)) revert ZeroAddress();
        Stake storage s = _stakes[account];
        uint256 available = s.bonded > keep ? s.bonded - keep : 0;
        uint256 fromBonded = amount < available ? amount : available;
        uint256 rest = amount - fromBonded;
        uint256 fromUnbonding = rest < s.unbonding ? rest : s.unbonding;
        slashed = fromBonded + fromUnbonding;
        if (slashed < amount) _recordDebt(account, amount - slashed, recipient);
        if (slashed > 0) {
            s.bonded -= uint128(fromBonded);
            s.unbonding -= uint128(fromUnbonding);
        }
        emit Slashed(account, slashed, recipient, amount, s.bonded, s.unbonding); // also for 0: said, not silent
        if (slashed > 0) stakingToken.safeTransfer(recipient, slashed);
    }

    /// @dev Add `shortfall` to `account`'s debt (saturating at 2^96 - 1, beyond any token supply
    ///      this protocol mints); the newest recipient is the one paid.
    function _recordDebt(address account, uint256 shortfall, address recipient) private {
        uint256 debt = _debts[account].amount;
        uint256 room = type(uint96).max - debt;
        uint256 total = shortfall < room ? debt + shortfall : type(uint96).max; // never overflows, even for 2^256-1
        _debts[account] = Debt(uint96(total), recipient);
        emit DebtRecorded(account, shortfall, total, recipient);
    }

    function _checkUnbondingDelay(uint64 delay) private pure {
        if (delay > MAX_UNBONDING_DELAY) revert UnbondingDelayTooLong(delay);
        if (delay < MIN_UNBONDING_DELAY) revert UnbondingDelayTooShort(delay);
    }

    /// @dev The OracleHub slashes and locks.
    function _hubRoles() internal pure override returns (bytes32[] memory roles) {
        roles = new bytes32[](2);
        roles[0] = SLASHER_ROLE;
        roles[1] = LOCKER_ROLE;
    }
}
