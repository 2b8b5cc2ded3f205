// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {GuardianPausable} from "./GuardianPausable.sol";
import {FlexMarket} from "./FlexMarket.sol";
import {NegawattToken} from "./NegawattToken.sol";
import {RewardDistributor} from "./RewardDistributor.sol";
import {Staking} from "./Staking.sol";
import {Penalty, RequestPayout, SettlementReport} from "./SettlementTypes.sol";

/// @title OracleHub
/// @notice The oracle set, and the path from a signed settlement report to paid rewards.
///         One transaction carries k EIP-712 signatures of distinct oracles over the report
///         (Chainlink OCR style). The report then waits a challenge window (optimistic, as Glow
///         and UMA do): anyone may challenge it with a bond, and the arbiter resolves the
///         challenge. After the window, `finalize` settles the report's requests (payouts to the
///         RewardDistributor, the rest refunded to buyers), applies its stake penalties, mints the
///         epoch's protocol-token emission and installs its cumulative rewards root.
///         Powers are split and bounded (audit M-3): the arbiter (ARBITER_ROLE, a multisig outside
///         the devnet) resolves challenges, and one it leaves unresolved for
///         CHALLENGE_RESOLUTION_WINDOW can be closed by anyone with the safe outcome: the report is
///         discarded without slashing, the bond returned, the requests opened for another report.
///         The guardian can only pause, for at most GuardianPausable.MAX_PAUSE_DURATION, and a
///         pause moves the challenge window on by its length (audit M-2). A pending report that no
///         one manages to finalize within FINALIZE_GRACE of its deadline can be abandoned by anyone
///         (its requests opened again), so nothing keeps the hub in Pending for good (audit H-1).
///         Signers a submitter left out can be recorded later, so they answer for the report too,
///         and a challenge freezes the window, so a rejected challenge cannot run out the time of an
///         honest one (audit L-2).
/// @dev Reports are chained: each names the root it builds on (`previousRoot`) and the next epoch.
///      At most one report is pending at a time; only its EIP-712 digest is stored, and the report
///      and its arrays are passed again as calldata to challenge resolution and finalization.
contract OracleHub is GuardianPausable, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type the oracles sign.
    bytes32 public constant REPORT_TYPEHASH = keccak256(
        "SettlementReport(uint64 epoch,bytes32 previousRoot,bytes32 rewardsRoot,bytes32 requestsHash,bytes32 penaltiesHash,uint256 emission)"
    );
    /// @notice EIP-712 type of a request's clearing result, which k oracles sign (see postAllocation).
    bytes32 public constant ALLOCATION_TYPEHASH =
        keccak256(
        "Allocation(uint256 requestId,bytes32 root,uint64 acceptedW,uint128 clearingPrice,uint128 availabilityPrice)"
    );
    /// @notice Most oracles the set can hold (signers are tracked in a 32-bit map).
    uint256 public constant MAX_ORACLES = 32;
    /// @notice Most requests, and most penalties, one report may carry: bounds the work of finalize
    ///         (each request's transfers are capped by FlexMarket.SETTLEMENT_TRANSFER_GAS).
    uint256 public constant MAX_REPORT_ITEMS = 64;
    /// @notice Longest challenge window an admin can set.
    uint40 public constant MAX_CHALLENGE_WINDOW = 30 days;
    /// @notice Longest oracle URL accepted, in bytes.
    uint256 public constant MAX_URL_LENGTH = 256;
    /// @notice Role that resolves challenges.
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    /// @notice Time the arbiter has to resolve a challenge; after it anyone may close it (discard, no slash).
    uint40 public constant CHALLENGE_RESOLUTION_WINDOW = 7 days;
    /// @notice Time after a pending report's deadline within which it must be finalized; after it
    ///         anyone may abandon the report.
    uint40 public constant FINALIZE_GRACE = 7 days;

    /// @notice Where the current report stands.
    enum ReportStatus {
        None,
        Pending,
        Challenged
    }

    /// @dev Everything submitReport needs in one slot (one cold read): never zero after construction
    ///      (threshold >= 1), so writes stay cheap. `paused` mirrors OpenZeppelin's flag (see paused()).
    ///      `emissionBudget` is what reports may still mint; a pending report's emission is reserved.
    struct State {
        uint8 threshold;
        ReportStatus status;
        bool paused;
        uint40 challengeDeadline;
        uint32 signerBitmap;
        uint32 epoch;
        uint32 challengeWindow;
        uint96 emissionBudget;
    }

    /// @dev Stored in `_pendingDigest` when no report is pending (a non-zero slot is cheaper to rewrite).
    bytes32 private constant NO_REPORT = bytes32(uint256(1));
    /// @dev Stored in `_pendingDigest` instead of NO_REPORT after a report went without finalizing (an
    ///      upheld or timed-out challenge, an abandon), until the next finalize: only then must
    ///      submitReport look the digest up in `discarded`. submitReport
    ///      reads the slot it is about to write anyway, so the check costs nothing in the usual case.
    bytes32 private constant NO_REPORT_AFTER_DISCARD = bytes32(uint256(2));

    /// @notice Where requests and their escrow live.
    FlexMarket public immutable market;
    /// @notice Where payouts and emissions go, behind the cumulative root.
    RewardDistributor public immutable distributor;
    /// @notice Oracle and owner bonds; slashed from here.
    Staking public immutable staking;
    /// @notice The protocol token: emissions and challenge bonds.
    NegawattToken public immutable token;

    /// @notice Receives slashed and forfeited funds not paid to a challenger.
    address public treasury;
    /// @notice Share (basis points) of slashed oracle stake paid to a successful challenger.
    uint16 public challengerRewardBps;
    /// @notice Protocol tokens a challenger must post.
    uint256 public challengeBond;
    /// @notice Stake slashed from each signer of a report whose challenge is upheld.
    uint256 public oracleSlashAmount;
    /// @notice Bond an oracle must hold (and keep locked) to join the set.
    uint256 public minOracleBond;
    /// @notice Root installed by the last finalized report.
    bytes32 public currentRoot;

    State private _state;
    bytes32 private _pendingDigest;
    address private _challenger;
    uint96 private _challengerBond;
    /// @dev The open challenge's timing: the arbiter's deadline and the challenge window it froze.
    uint40 private _resolveBy;
    uint40 private _windowLeft;
    /// @dev Whether the current pause moved the pending report's deadline (undone in part on unpause).
    bool private _pauseMovedDeadline;
    address[] private _oracles;
    mapping(address oracle => uint256) private _oracleSlot;
    mapping(address oracle => string) private _urls;
    /// @notice Digests of reports thrown out by an upheld challenge: never accepted again.
    mapping(bytes32 digest => bool) public discarded;

    /// @notice `oracle` joined the set at `index`.
    event OracleAdded(address indexed oracle, uint256 index);
    /// @notice `oracle` left the set.
    event OracleRemoved(address indexed oracle);
    /// @notice `oracle` published the URL nodes and other oracles reach it at.
    event OracleUrlSet(address indexed oracle, string url);
    /// @notice Reports now need `threshold` signatures.
    event ThresholdSet(uint8 threshold);
    /// @notice Challenge parameters changed.
    event ChallengeParamsSet(uint40 window, uint256 bond, uint256 oracleSlashAmount, uint16 challengerRewardBps);
    /// @notice The oracle bond changed.
    event MinOracleBondSet(uint256 minOracleBond);
    /// @notice The treasury changed.
    event TreasurySet(address treasury);
    /// @notice Reports may mint at most `budget` more protocol tokens.
    event EmissionBudgetSet(uint256 budget);
    /// @notice A report with enough signatures is pending until `challengeDeadline`. Its payouts are in
    ///         the FlexMarket's RequestSettling events of the same transaction.
    event ReportSubmitted(
        uint64 indexed epoch,
        bytes32 indexed digest,
        SettlementReport report,
        Penalty[] penalties,
        address[] signers,
        address submitter,
        uint40 challengeDeadline
    );
    /// @notice `challenger` disputed the pending report, posting `bond`.
    event ReportChallenged(uint64 indexed epoch, bytes32 indexed digest, address indexed challenger, uint256 bond, string reason);
    /// @notice The arbiter resolved a challenge. Upheld: the report is discarded, `slashed` was taken
    ///         from its signers and `reward` paid to the challenger with the bond. Rejected: the bond
    ///         went to the treasury and the report is pending again.
    event ChallengeResolved(
        uint64 indexed epoch, bytes32 indexed digest, bool upheld, address challenger, uint256 slashed, uint256 reward
    );
    /// @notice The arbiter did not resolve the challenge by `resolveBy`; it was closed with the safe
    ///         outcome (report discarded unslashed, bond returned to `challenger`).
    event ChallengeTimedOut(uint64 indexed epoch, bytes32 indexed digest, address challenger, uint40 resolveBy);
    /// @notice The pending report was not finalized within FINALIZE_GRACE of its deadline and was
    ///         abandoned; its requests are open for settlement again.
    event ReportAbandoned(uint64 indexed epoch, bytes32 indexed digest);
    /// @notice More oracles' signatures of the pending report were recorded; they answer for it too.
    event SignersRecorded(uint64 indexed epoch, bytes32 indexed digest, address[] signers);
    /// @notice A report was discarded; its requests are open for settlement again.
    event ReportDiscarded(uint64 indexed epoch, bytes32 indexed digest);
    /// @notice A final report's penalty on `account`: `amount` asked, `slashed` taken (less if the stake was short).
    event PenaltyApplied(uint64 indexed epoch, address indexed account, uint256 amount, uint256 slashed);
    /// @notice The pending report's challenge window was moved to `deadline` by the time the hub was paused.
    event ChallengeWindowExtended(uint64 indexed epoch, bytes32 indexed digest, uint40 deadline);
    /// @notice A report became final: requests settled, penalties applied, `emission` minted, root installed.
    event ReportFinalized(uint64 indexed epoch, bytes32 indexed digest, bytes32 rewardsRoot, uint256 emission);

    /// @notice A report is already pending or challenged.
    error ReportPending(bytes32 digest);
    /// @notice The report's epoch is not the next one.
    error WrongEpoch(uint64 expected, uint64 got);
    /// @notice The report does not build on the current root.
    error PreviousRootMismatch(bytes32 expected, bytes32 got);
    /// @notice The payouts passed do not hash to the report's requestsHash.
    error RequestsHashMismatch(bytes32 expected, bytes32 got);
    /// @notice The penalties passed do not hash to the report's penaltiesHash.
    error PenaltiesHashMismatch(bytes32 expected, bytes32 got);
    /// @notice The report was discarded by an upheld challenge and may not be submitted again.
    error DiscardedReport(bytes32 digest);
    /// @notice A report carries more than MAX_REPORT_ITEMS requests or penalties.
    error TooManyItems(uint256 payouts, uint256 penalties);
    /// @notice Fewer signatures than the threshold.
    error NotEnoughSignatures(uint256 given, uint256 threshold);
    /// @notice Signature `index` is malformed.
    error InvalidSignature(uint256 index);
    /// @notice `signer` is not in the oracle set.
    error NotOracle(address signer);
    /// @notice `signer` signed twice.
    error DuplicateSigner(address signer);
    /// @notice The emission budget would take the token past its cap.
    error EmissionExceedsCap(uint256 budget, uint256 mintable);
    /// @notice The report's emission is more than the remaining emission budget.
    error EmissionExceedsBudget(uint256 emission, uint256 budget);
    /// @notice No report is in the state this needs.
    error NoReportIn(ReportStatus expected, ReportStatus actual);
    /// @notice The report passed is not the pending one.
    error NotPendingReport(bytes32 pending, bytes32 given);
    /// @notice The challenge window has closed.
    error ChallengeWindowClosed(uint40 deadline);
    /// @notice The challenge window is still open.
    error ChallengeWindowOpen(uint40 deadline);
    /// @notice The arbiter's time to resolve the challenge has not run out.
    error ResolutionWindowOpen(uint40 resolveBy);
    /// @notice The pending report may still be finalized until `abandonableAt`.
    error FinalizeGraceOpen(uint256 abandonableAt);
    /// @notice The reason text is longer than MAX_URL_LENGTH * 4 bytes.
    error ReasonTooLong(uint256 length);
    /// @notice The oracle is already in the set.
    error OracleAlreadyAdded(address oracle);
    /// @notice The set is full.
    error TooManyOracles();
    /// @notice The oracle's bonded stake is below the minimum.
    error InsufficientOracleBond(address oracle, uint256 bonded, uint256 required);
    /// @notice The threshold must be between 1 and the number of oracles.
    error InvalidThreshold(uint256 threshold, uint256 oracleCount);
    /// @notice The URL is empty or longer than MAX_URL_LENGTH.
    error InvalidUrl(uint256 length);
    /// @notice A parameter is out of range.
    error InvalidParameter();

    /// @notice Contracts the hub works with.
    struct Contracts {
        FlexMarket market;
        RewardDistributor distributor;
        Staking staking;
        NegawattToken token;
    }

    /// @notice Initial parameters.
    struct Params {
        address treasury;
        uint8 threshold;
        uint40 challengeWindow;
        uint256 challengeBond;
        uint256 oracleSlashAmount;
        uint16 challengerRewardBps;
        uint256 minOracleBond;
    }

    /// @param admin Receives DEFAULT_ADMIN_ROLE (oracle set, parameters).
    /// @param guardian Receives GUARDIAN_ROLE (pause).
    /// @param arbiter Receives ARBITER_ROLE (challenge resolution).
    constructor(address admin, address guardian, address arbiter, Contracts memory contracts, Params memory params)
        GuardianPausable(admin, guardian)
        EIP712("negawatt", "1")
    {
        if (arbiter == address(0)) revert ZeroAddress();
        _grantRole(ARBITER_ROLE, arbiter);
        if (
            address(contracts.market) == address(0) || address(contracts.distributor) == address(0)
                || address(contracts.staking) == address(0) || address(contracts.token) == address(0)
        ) revert ZeroAddress();
        if (params.threshold == 0) revert InvalidThreshold(0, 0);
        market = contracts.market;
        distributor = contracts.distributor;
        staking = contracts.staking;
        token = contracts.token;
        _state.threshold = params.threshold;
        _pendingDigest = NO_REPORT;
        emit ThresholdSet(params.threshold);
        _setTreasury(params.treasury);
        _setChallengeParams(
            params.challengeWindow, params.challengeBond, params.oracleSlashAmount, params.challengerRewardBps
        );
        minOracleBond = params.minOracleBond;
        emit MinOracleBondSet(params.minOracleBond);
    }

    // ------------------------------------------------------------------ reports

    /// @notice Submit the next epoch's report with at least `threshold` signatures of distinct oracles.
    /// @param report The report the oracles signed.
    /// @param payouts The requests it settles; must hash to `report.requestsHash`.
    /// @param penalties The stake penalties it applies; must hash to `report.penaltiesHash`.
    /// @param signatures 65-byte ECDSA signatures of the report's EIP-712 digest.
    /// @return digest The report's EIP-712 digest, its id from now on.
    function submitReport(
        SettlementReport calldata report,
        RequestPayout[] calldata payouts,
        Penalty[] calldata penalties,
        bytes[] calldata signatures
    ) external whenNotPaused returns (bytes32 digest) {
        State memory s = _state;
        if (s.status != ReportStatus.None) revert ReportPending(_pendingDigest);
        if (report.epoch != uint64(s.epoch) + 1) revert WrongEpoch(uint64(s.epoch) + 1, report.epoch);
        if (report.previousRoot != currentRoot) revert PreviousRootMismatch(currentRoot, report.previousRoot);
        _checkArrays(report, payouts, penalties);
        if (signatures.length < s.threshold) revert NotEnoughSignatures(signatures.length, s.threshold);
        if (report.emission > s.emissionBudget) revert EmissionExceedsBudget(report.emission, s.emissionBudget);

        digest = reportDigest(report);
        if (_pendingDigest == NO_REPORT_AFTER_DISCARD && discarded[digest]) revert DiscardedReport(digest);
        (uint32 bitmap, address[] memory signers) = _verifySignatures(digest, signatures);

        uint40 deadline = uint40(block.timestamp) + s.challengeWindow;
        s.paused = false; // not paused (checked above): clears the flag of a pause that expired
        s.emissionBudget -= uint96(report.emission);
        s.status = ReportStatus.Pending;
        s.challengeDeadline = deadline;
        s.signerBitmap = bitmap;
        _state = s;
        _pendingDigest = digest;
        emit ReportSubmitted(report.epoch, digest, report, penalties, signers, msg.sender, deadline);

        market.beginSettlement(payouts);
    }

    /// @notice Post request `requestId`'s allocation (the clearing result of its offers, computed by
    ///         every oracle from the same commitment set) with at least `threshold` signatures of
    ///         distinct oracles over its EIP-712 digest; FlexMarket records it (once, before the start,
    ///         at or below the ceiling). Anyone may submit it. O(1) gas in the number of sites.
    function postAllocation(
        uint256 requestId,
        bytes32 root,
        uint64 acceptedW,
        uint128 clearingPrice,
        uint128 availabilityPrice,
        bytes[] calldata signatures
    ) external whenNotPaused {
        uint8 k = _state.threshold;
        if (signatures.length < k) revert NotEnoughSignatures(signatures.length, k);
        _verifySignatures(allocationDigest(requestId, root, acceptedW, clearingPrice, availabilityPrice), signatures);
        market.recordAllocation(requestId, root, acceptedW, clearingPrice, availabilityPrice);
    }

    /// @notice Dispute the pending report (identified by its digest), posting `challengeBond`
    ///         protocol tokens (approve them first). The arbiter then resolves the dispute; the
    ///         challenge window stands still until it does.
    function challenge(bytes32 digest, string calldata reason) external whenNotPaused {
        State memory s = _state;
        if (s.status != ReportStatus.Pending) revert NoReportIn(ReportStatus.Pending, s.status);
        if (digest != _pendingDigest) revert NotPendingReport(_pendingDigest, digest);
        if (block.timestamp >= s.challengeDeadline) revert ChallengeWindowClosed(s.challengeDeadline);
        if (bytes(reason).length > MAX_URL_LENGTH * 4) revert ReasonTooLong(bytes(reason).length);
        uint256 bond = challengeBond;
        _state.status = ReportStatus.Challenged;
        _challenger = msg.sender;
        _challengerBond = uint96(bond);
        _resolveBy = uint40(block.timestamp) + CHALLENGE_RESOLUTION_WINDOW;
        _windowLeft = s.challengeDeadline - uint40(block.timestamp);
        emit ReportChallenged(s.epoch + 1, digest, msg.sender, bond, reason);
        IERC20(address(token)).safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @notice Resolve the challenge against the pending report. Upheld: the report is discarded,
    ///         each signer is slashed `oracleSlashAmount`, and the challenger gets the bond back plus
    ///         `challengerRewardBps` of what was slashed (the rest goes to the treasury). Rejected:
    ///         the bond goes to the treasury and the report is pending again with the challenge
    ///         window it had left when challenged, so another challenger still has that time.
    function resolveChallenge(SettlementReport calldata report, RequestPayout[] calldata payouts, bool upheld)
        external
        onlyRole(ARBITER_ROLE)
    {
        State memory s = _state;
        bytes32 digest = _requireReport(s, ReportStatus.Challenged, report, payouts);
        uint40 windowLeft = _windowLeft;
        (address challenger, uint256 bond) = _closeChallenge();

        if (upheld) {
            _uphold(report, digest, s.signerBitmap, payouts, challenger, bond);
            return;
        }
        uint40 deadline = uint40(block.timestamp) + windowLeft;
        _state.status = ReportStatus.Pending;
        _state.challengeDeadline = deadline;
        emit ChallengeResolved(report.epoch, digest, false, challenger, 0, 0);
        emit ChallengeWindowExtended(report.epoch, digest, deadline);
        if (bond > 0) IERC20(address(token)).safeTransfer(treasury, bond);
    }

    /// @notice Close a challenge the arbiter left unresolved past CHALLENGE_RESOLUTION_WINDOW, with
    ///         the outcome that moves no one's funds on an unjudged report: it is discarded without
    ///         slashing (and may be submitted again), the challenger's bond is returned, the requests
    ///         are open for another report. Anyone may call.
    function closeExpiredChallenge(SettlementReport calldata report, RequestPayout[] calldata payouts)
        external
        whenNotPaused
    {
        State memory s = _state;
        bytes32 digest = _requireReport(s, ReportStatus.Challenged, report, payouts);
        uint40 resolveBy = _resolveBy;
        if (block.timestamp <= resolveBy) revert ResolutionWindowOpen(resolveBy);
        (address challenger, uint256 bond) = _closeChallenge();
        _clearReport(report.emission);
        emit ChallengeTimedOut(report.epoch, digest, challenger, resolveBy);
        emit ReportDiscarded(report.epoch, digest);
        market.releaseSettlement(payouts);
        if (bond > 0) IERC20(address(token)).safeTransfer(challenger, bond);
    }

    /// @notice Give up the pending report when nobody finalized it within FINALIZE_GRACE after its
    ///         challenge deadline (finalize keeps failing): its requests are open for another report
    ///         and its emission returns to the budget. Anyone may call.
    function abandonReport(SettlementReport calldata report, RequestPayout[] calldata payouts)
        external
        whenNotPaused
    {
        State memory s = _state;
        bytes32 digest = _requireReport(s, ReportStatus.Pending, report, payouts);
        uint256 abandonableAt = uint256(s.challengeDeadline) + FINALIZE_GRACE;
        if (block.timestamp < abandonableAt) revert FinalizeGraceOpen(abandonableAt);
        _clearReport(report.emission);
        emit ReportAbandoned(report.epoch, digest);
        market.releaseSettlement(payouts);
    }

    /// @notice Record more oracles' signatures of the pending (or challenged) report, beyond the ones
    ///         its submitter passed, so every oracle that signed it is slashed if a challenge is upheld.
    ///         Anyone may call; signatures of oracles already recorded are skipped.
    function recordSignatures(bytes[] calldata signatures) external {
        State memory s = _state;
        if (s.status == ReportStatus.None) revert NoReportIn(ReportStatus.Pending, s.status);
        bytes32 digest = _pendingDigest;
        uint32 bitmap = s.signerBitmap;
        address[] memory added = new address[](signatures.length);
        uint256 count = 0;
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, uint32 bit) = _oracleSigner(digest, signatures[i], i);
            if (bitmap & bit != 0) continue;
            bitmap |= bit;
            added[count++] = signer;
        }
        assembly ("memory-safe") {
            mstore(added, count)
        }
        _state.signerBitmap = bitmap;
        emit SignersRecorded(uint64(s.epoch) + 1, digest, added);
    }

    /// @notice Make the pending report final once its challenge window has passed.
    function finalize(SettlementReport calldata report, RequestPayout[] calldata payouts, Penalty[] calldata penalties)
        external
        whenNotPaused
    {
        State memory s = _state;
        if (s.status != ReportStatus.Pending) revert NoReportIn(ReportStatus.Pending, s.status);
        bytes32 digest = reportDigest(report);
        if (digest != _pendingDigest) revert NotPendingReport(_pendingDigest, digest);
        if (block.timestamp < s.challengeDeadline) revert ChallengeWindowOpen(s.challengeDeadline);
        _checkArrays(report, payouts, penalties);

        s.status = ReportStatus.None;
        s.challengeDeadline = 0;
        s.signerBitmap = 0;
        s.epoch = uint32(report.epoch);
        _state = s;
        _pendingDigest = NO_REPORT;
        currentRoot = report.rewardsRoot;
        emit ReportFinalized(report.epoch, digest, report.rewardsRoot, report.emission);

        market.completeSettlement(payouts, address(distributor));
        address treasury_ = treasury;
        for (uint256 i = 0; i < penalties.length; ++i) {
            uint256 taken = staking.slash(penalties[i].account, penalties[i].amount, treasury_);
            emit PenaltyApplied(report.epoch, penalties[i].account, penalties[i].amount, taken);
        }
        if (report.emission > 0) token.mint(address(distributor), report.emission);
        distributor.setRoot(report.rewardsRoot, report.epoch);
    }

    // ------------------------------------------------------------------ oracle set

    /// @notice Add `oracle`; it must have `minOracleBond` bonded, which stays locked while it serves.
    function addOracle(address oracle) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireNoReport();
        if (oracle == address(0)) revert ZeroAddress();
        if (_oracleSlot[oracle] != 0) revert OracleAlreadyAdded(oracle);
        if (_oracles.length >= MAX_ORACLES) revert TooManyOracles();
        uint256 bond = minOracleBond;
        uint256 bonded = staking.bondedOf(oracle);
        if (bonded < bond) revert InsufficientOracleBond(oracle, bonded, bond);
        _oracles.push(oracle);
        _oracleSlot[oracle] = _oracles.length;
        emit OracleAdded(oracle, _oracles.length - 1);
        staking.setLock(oracle, bond);
    }

    /// @notice Remove `oracle`; the threshold must still be reachable. Its bond is unlocked.
    function removeOracle(address oracle) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireNoReport();
        uint256 slot = _oracleSlot[oracle];
        if (slot == 0) revert NotOracle(oracle);
        uint256 remaining = _oracles.length - 1;
        if (remaining < _state.threshold) revert InvalidThreshold(_state.threshold, remaining);
        address last = _oracles[remaining];
        _oracles[slot - 1] = last;
        _oracleSlot[last] = slot;
        _oracles.pop();
        delete _oracleSlot[oracle];
        delete _urls[oracle];
        emit OracleRemoved(oracle);
        staking.setLock(oracle, 0);
    }

    /// @notice Require `threshold` signatures per report (1..number of oracles).
    function setThreshold(uint8 threshold) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireNoReport();
        if (threshold == 0 || threshold > _oracles.length) revert InvalidThreshold(threshold, _oracles.length);
        _state.threshold = threshold;
        emit ThresholdSet(threshold);
    }

    /// @notice Publish the caller's (an oracle's) public URL, where nodes send meter data.
    function setOracleUrl(string calldata url) external {
        if (_oracleSlot[msg.sender] == 0) revert NotOracle(msg.sender);
        uint256 length = bytes(url).length;
        if (length == 0 || length > MAX_URL_LENGTH) revert InvalidUrl(length);
        _urls[msg.sender] = url;
        emit OracleUrlSet(msg.sender, url);
    }

    /// @notice Set the challenge window, bond, per-signer slash and challenger reward share.
    function setChallengeParams(uint40 window, uint256 bond, uint256 slashAmount, uint16 rewardBps)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _requireNoReport(); // a pending or challenged report keeps the terms it was submitted under (L-4)
        _setChallengeParams(window, bond, slashAmount, rewardBps);
    }

    /// @notice Set the bond oracles must hold; every serving oracle's lock moves to it (L-4), so the
    ///         stake at risk is the same for all of them.
    function setMinOracleBond(uint256 bond) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireNoReport();
        minOracleBond = bond;
        emit MinOracleBondSet(bond);
        uint256 count = _oracles.length; // at most MAX_ORACLES
        for (uint256 i = 0; i < count; ++i) {
            staking.setLock(_oracles[i], bond);
        }
    }

    /// @notice Allow reports to mint at most `budget` more protocol tokens (within the token's cap).
    function setEmissionBudget(uint96 budget) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireNoReport();
        uint256 mintable = token.cap() - token.totalSupply();
        if (budget > mintable) revert EmissionExceedsCap(budget, mintable);
        _state.emissionBudget = budget;
        emit EmissionBudgetSet(budget);
    }

    /// @notice Set where forfeited and slashed funds go.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The oracle set and each oracle's published URL ("" until it sets one).
    function oracles() external view returns (address[] memory addresses, string[] memory urls) {
        addresses = _oracles;
        urls = new string[](addresses.length);
        for (uint256 i = 0; i < addresses.length; ++i) {
            urls[i] = _urls[addresses[i]];
        }
    }

    /// @notice Whether `account` is in the oracle set.
    function isOracle(address account) external view returns (bool) {
        return _oracleSlot[account] != 0;
    }

    /// @notice Whether the guardian paused submissions, challenges and finalization (a pause expires
    ///         by itself at `pausedUntil`).
    /// @dev Kept in the packed state slot so submitReport reads pause and state in one cold access.
    function paused() public view override returns (bool) {
        return _state.paused && block.timestamp < pausedUntil;
    }

    /// @notice Seconds a submitted report can be challenged.
    function challengeWindow() external view returns (uint40) {
        return _state.challengeWindow;
    }

    /// @notice Protocol tokens reports may still mint (a pending report's emission is already taken off).
    function emissionBudget() external view returns (uint256) {
        return _state.emissionBudget;
    }

    /// @notice Signatures a report needs.
    function threshold() external view returns (uint8) {
        return _state.threshold;
    }

    /// @notice Epoch of the last finalized report (0 before the first).
    function currentEpoch() external view returns (uint64) {
        return _state.epoch;
    }

    /// @notice The pending report, if any: digest, status, challenge deadline, signers, challenger.
    function pendingReport()
        external
        view
        returns (bytes32 digest, ReportStatus status, uint40 challengeDeadline, address[] memory signers, address challenger)
    {
        State memory s = _state;
        status = s.status;
        if (status == ReportStatus.None) return (bytes32(0), status, 0, signers, address(0));
        digest = _pendingDigest;
        challengeDeadline = s.challengeDeadline;
        challenger = _challenger;
        uint256 count;
        for (uint256 i = 0; i < _oracles.length; ++i) {
            if (_bitSet(s.signerBitmap, i)) ++count;
        }
        signers = new address[](count);
        count = 0;
        for (uint256 i = 0; i < _oracles.length; ++i) {
            if (_bitSet(s.signerBitmap, i)) signers[count++] = _oracles[i];
        }
    }

    /// @notice The EIP-712 digest oracles sign for `report`.
    function reportDigest(SettlementReport calldata report) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REPORT_TYPEHASH, report)));
    }

    /// @notice The EIP-712 digest oracles sign for a request's allocation.
    function allocationDigest(
        uint256 requestId,
        bytes32 root,
        uint64 acceptedW,
        uint128 clearingPrice,
        uint128 availabilityPrice
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(ALLOCATION_TYPEHASH, requestId, root, acceptedW, clearingPrice, availabilityPrice))
        );
    }

    /// @notice The EIP-712 domain separator of reports.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    function _uphold(
        SettlementReport calldata report,
        bytes32 digest,
        uint32 signerBitmap,
        RequestPayout[] calldata payouts,
        address challenger,
        uint256 bond
    ) private {
        _clearReport(report.emission);
        discarded[digest] = true;
        uint64 epoch = report.epoch;

        uint256 slashed = 0;
        uint256 slashEach = oracleSlashAmount;
        uint256 count = _oracles.length;
        for (uint256 i = 0; i < count; ++i) {
            if (_bitSet(signerBitmap, i)) slashed += staking.slashBond(_oracles[i], slashEach, address(this));
        }
        uint256 reward = (slashed * challengerRewardBps) / 10_000;
        emit ChallengeResolved(epoch, digest, true, challenger, slashed, reward);
        emit ReportDiscarded(epoch, digest);
        market.releaseSettlement(payouts);
        IERC20 protocolToken = IERC20(address(token));
        if (bond + reward > 0) protocolToken.safeTransfer(challenger, bond + reward);
        if (slashed > reward) protocolToken.safeTransfer(treasury, slashed - reward);
    }

    function _verifySignatures(bytes32 digest, bytes[] calldata signatures)
        private
        view
        returns (uint32 bitmap, address[] memory signers)
    {
        signers = new address[](signatures.length);
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, uint32 bit) = _oracleSigner(digest, signatures[i], i);
            if (bitmap & bit != 0) revert DuplicateSigner(signer);
            bitmap |= bit;
            signers[i] = signer;
        }
    }

    /// @dev The oracle that made signature `index` of `digest`, and its bit in the signer bitmap.
    function _oracleSigner(bytes32 digest, bytes calldata signature, uint256 index)
        private
        view
        returns (address signer, uint32 bit)
    {
        ECDSA.RecoverError failure;
        (signer, failure,) = ECDSA.tryRecover(digest, signature);
        if (failure != ECDSA.RecoverError.NoError) revert InvalidSignature(index);
        uint256 slot = _oracleSlot[signer];
        if (slot == 0) revert NotOracle(signer);
        bit = uint32(1 << (slot - 1));
    }

    function _checkArrays(
        SettlementReport calldata report,
        RequestPayout[] calldata payouts,
        Penalty[] calldata penalties
    ) private pure {
        if (payouts.length > MAX_REPORT_ITEMS || penalties.length > MAX_REPORT_ITEMS) {
            revert TooManyItems(payouts.length, penalties.length);
        }
        bytes32 requestsHash = keccak256(abi.encode(payouts));
        if (requestsHash != report.requestsHash) revert RequestsHashMismatch(report.requestsHash, requestsHash);
        bytes32 penaltiesHash = keccak256(abi.encode(penalties));
        if (penaltiesHash != report.penaltiesHash) revert PenaltiesHashMismatch(report.penaltiesHash, penaltiesHash);
    }

    /// @dev Checks that the report is in `expected` state and that `report` and `payouts` are it;
    ///      returns its digest.
    function _requireReport(
        State memory s,
        ReportStatus expected,
        SettlementReport calldata report,
        RequestPayout[] calldata payouts
    ) private view returns (bytes32 digest) {
        if (s.status != expected) revert NoReportIn(expected, s.status);
        digest = reportDigest(report);
        if (digest != _pendingDigest) revert NotPendingReport(_pendingDigest, digest);
        bytes32 requestsHash = keccak256(abi.encode(payouts));
        if (requestsHash != report.requestsHash) revert RequestsHashMismatch(report.requestsHash, requestsHash);
    }

    /// @dev Forget the open challenge; returns who posted it and the bond.
    function _closeChallenge() private returns (address challenger, uint256 bond) {
        challenger = _challenger;
        bond = _challengerBond;
        _challenger = address(0);
        _challengerBond = 0;
        _resolveBy = 0;
        _windowLeft = 0;
    }

    /// @dev The pending report is gone without finalizing: its emission goes back to the budget.
    ///      Submissions check `discarded` from now until the next finalize (the epoch stays, so a
    ///      report discarded earlier in it could otherwise come back).
    function _clearReport(uint256 emission) private {
        State storage s = _state;
        s.status = ReportStatus.None;
        s.challengeDeadline = 0;
        s.signerBitmap = 0;
        s.emissionBudget += uint96(emission);
        _pendingDigest = NO_REPORT_AFTER_DISCARD;
    }

    function _requireNoReport() private view {
        if (_state.status != ReportStatus.None) revert ReportPending(_pendingDigest);
    }

    function _setChallengeParams(uint40 window, uint256 bond, uint256 slashAmount, uint16 rewardBps) private {
        if (window == 0 || window > MAX_CHALLENGE_WINDOW || rewardBps > 10_000 || bond == 0 || bond > type(uint96).max) {
            revert InvalidParameter();
        }
        _state.challengeWindow = uint32(window);
        challengeBond = bond;
        oracleSlashAmount = slashAmount;
        challengerRewardBps = rewardBps;
        emit ChallengeParamsSet(window, bond, slashAmount, rewardBps);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @dev OpenZeppelin's pause, mirrored into the packed state slot. A pending report whose
    ///      challenge window is open gets the pause's whole length (until `pausedUntil`) added to its
    ///      window, since nobody can challenge it meanwhile (M-2); a pause that expires needs no call.
    function _pause() internal override {
        super._pause();
        State memory s = _state;
        s.paused = true;
        bool moved = s.status == ReportStatus.Pending && s.challengeDeadline > block.timestamp;
        _pauseMovedDeadline = moved;
        if (moved) {
            s.challengeDeadline += MAX_PAUSE_DURATION;
            emit ChallengeWindowExtended(uint64(s.epoch) + 1, _pendingDigest, s.challengeDeadline);
        }
        _state = s;
    }

    /// @dev OpenZeppelin's unpause, mirrored into the packed state slot. An early unpause takes the
    ///      pause time not used back off the window the pause had moved.
    function _unpause() internal override {
        super._unpause();
        State memory s = _state;
        s.paused = false;
        if (_pauseMovedDeadline && s.status == ReportStatus.Pending) {
            s.challengeDeadline -= pausedUntil - uint40(block.timestamp);
            emit ChallengeWindowExtended(uint64(s.epoch) + 1, _pendingDigest, s.challengeDeadline);
        }
        _pauseMovedDeadline = false;
        _state = s;
    }

    function _bitSet(uint32 bitmap, uint256 index) private pure returns (bool) {
        return bitmap & (uint32(1) << index) != 0;
    }
}
