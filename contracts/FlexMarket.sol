// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {GuardianPausable} from "./GuardianPausable.sol";
import {RequestPayout} from "./SettlementTypes.sol";

/// @title FlexMarket
/// @notice Buyers (DSOs, TSOs, retailers) ask for curtailment in a zone and window, paying per
///         delivered kWh in any ERC-20, with `maxBudget` held in escrow. The OracleHub settles each
///         request once: the payout goes to the RewardDistributor and the rest back to the buyer.
///
///         Market rules for verified flexibility (issue 13): a share `holdoutBps` of each request's
///         committed sites is held out as the control group, and commitments close at the request's
///         gate closure, `gateLeadSeconds` before its start. Both are market-wide, set by the admin,
///         and snapshotted per request in the RequestRules event at opening (the event is the record
///         that oracles and nodes follow; the request's storage does not hold them). With both at 0
///         (the default) a request has no holdout and its gate closes at its start.
///
///         Clearing (issue 14): the buyer's `pricePerKWh` is a ceiling. After the gate closes, the
///         oracles clear the sites' offers in merit order and post, through the OracleHub with k
///         signatures, one allocation per request before its start: the Merkle root of the accepted
///         (device, watts, clearing price) leaves, the accepted power and the uniform clearing price
///         (never above the ceiling). Nodes curtail only what their leaf under that root accepts. An
///         allocated request can no longer be cancelled (the sites it accepted are committed), and its
///         payout can never exceed accepted energy x clearing price: recordAllocation lowers the
///         request's escrow (what settlement may pay) to that amount, and the rest of the deposit goes
///         back to the buyer with the refund. The root, accepted power and clearing price live in the
///         AllocationPosted event (the record nodes check their acceptance against), not in storage:
///         posting costs O(1) gas and writes no new slot.
///
///         Availability (issue 14): a buyer may also pay for accepted capacity being available,
///         `availabilityPricePerKWh` per kW of accepted power per hour of the window (a ceiling, like
///         the utilisation price; openRequestWithAvailability). Then the allocation also posts the
///         uniform availability clearing price (at or below that ceiling) and the escrow drops to
///         acceptedW x window x (clearingPrice + availabilityPrice). A request opened with
///         openRequest pays no availability (its ceiling is 0, so is every availability price).
/// @dev Per request, always: paid + refunded + held + owed == deposited, where `held` is the escrow
///      before settlement (all of the deposit, or the allocation's cap plus the reserved excess).
///      Settlement isolates each request (audit H-1): a payment token that reverts, blacklists the
///      buyer or the distributor, or burns gas cannot block the other requests of the report. Each
///      settlement transfer runs with at most SETTLEMENT_TRANSFER_GAS; one that fails is kept as an
///      amount owed, which anyone can push to its recipient later with `pushOwed`.
contract FlexMarket is GuardianPausable {
    using SafeERC20 for IERC20;

    /// @notice Role of the settlement path (the OracleHub).
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    /// @notice Life cycle of a request.
    enum Status {
        None,
        Open,
        Cancelled,
        Settling,
        Settled,
        Expired
    }

    /// @notice One flexibility request. Amounts in `paymentToken` base units, power in W. Once
    ///         `allocated`, `escrow` is the most the request can still pay (see recordAllocation).
    struct Request {
        address buyer;
        uint40 start;
        uint40 end;
        Status status;
        bool allocated;
        address paymentToken;
        uint32 zone;
        uint64 targetW;
        uint128 pricePerKWh;
        uint128 escrow;
        uint128 deposited;
        uint128 paid;
    }

    /// @notice Shortest window a request may have, in seconds.
    uint40 public minDuration;
    /// @notice Longest window a request may have, in seconds.
    uint40 public maxDuration;
    /// @notice After `end + settlementTimeout` an unsettled request can be refunded to its buyer.
    uint40 public settlementTimeout;
    /// @notice Share of each new request's committed sites held out as the control group, in basis
    ///         points (at most MAX_HOLDOUT_BPS).
    uint16 public holdoutBps;
    /// @notice Seconds before a new request's start at which its gate closes (no commitment is
    ///         accepted after it); at most MAX_GATE_LEAD_SECONDS.
    uint40 public gateLeadSeconds;
    /// @notice Number of requests opened so far; ids are 1..requestCount.
    uint256 public requestCount;
    /// @notice Gas one settlement transfer may use; a token that needs more is treated as failing.
    uint256 public constant SETTLEMENT_TRANSFER_GAS = 100_000;
    /// @notice The largest holdout: half the committed sites (the other half must be dispatched).
    uint16 public constant MAX_HOLDOUT_BPS = 5_000;
    /// @notice The longest gate lead: a week (a day-ahead market closes 12 to 36 hours ahead). A fixed
    ///         bound, independent of the duration limits, so neither setter has to check the other.
    uint40 public constant MAX_GATE_LEAD_SECONDS = 7 days;

    /// @notice An amount a failed settlement transfer still owes, and to whom.
    struct Owed {
        address to;
        uint128 amount;
    }

    mapping(uint256 requestId => Request) private _requests;
    /// @notice The buyer's availability ceiling per kW of accepted power per hour of the window, in
    ///         payment-token base units; 0 for a request that pays no availability.
    mapping(uint256 requestId => uint128) public availabilityPriceOf;
    /// @notice What a request's settlement still owes its payout recipient (the distributor).
    mapping(uint256 requestId => Owed) public owedPayout;
    /// @notice What a request's settlement still owes its buyer (the refund).
    mapping(uint256 requestId => Owed) public owedRefund;

    /// @notice A buyer opened a request and escrowed `maxBudget`.
    event RequestOpened(
        uint256 indexed requestId,
        address indexed buyer,
        uint32 indexed zone,
        uint40 start,
        uint40 end,
        uint64 targetW,
        uint128 pricePerKWh,
        address paymentToken,
        uint128 maxBudget
    );
    /// @notice The market rules request `requestId` was opened under (emitted right after its
    ///         RequestOpened): `holdoutBps` of its committed sites are held out, and commitments close
    ///         at `gateClosure` (its start minus the gate lead).
    event RequestRules(uint256 indexed requestId, uint16 holdoutBps, uint40 gateClosure);
    /// @notice Request `requestId` pays availability, at most `availabilityPricePerKWh` per kW per hour
    ///         (emitted right after its RequestOpened; absent for a request that pays none).
    event RequestAvailability(uint256 indexed requestId, uint128 availabilityPricePerKWh);
    /// @notice The oracles cleared request `requestId`: `acceptedW` accepted at `clearingPrice` per kWh
    ///         and `availabilityPrice` per kW per hour (0 when the request pays no availability), the
    ///         accepted leaves under `root` (OpenZeppelin StandardMerkleTree of
    ///         (uint256 requestId, address device, uint256 acceptedW, uint256 clearingPrice)).
    event AllocationPosted(
        uint256 indexed requestId, bytes32 root, uint64 acceptedW, uint128 clearingPrice, uint128 availabilityPrice
    );
    /// @notice The buyer cancelled before the start and got `refund` back.
    event RequestCancelled(uint256 indexed requestId, uint256 refund);
    /// @notice A pending report claims the request with `payout`; it can no longer expire.
    event RequestSettling(uint256 indexed requestId, uint256 payout);
    /// @notice A discarded report released the request; it is open for settlement again.
    event RequestReleased(uint256 indexed requestId);
    /// @notice Settled: `payout` went to `recipient` (the RewardDistributor), `refund` to the buyer.
    event RequestSettled(uint256 indexed requestId, uint256 payout, uint256 refund, address recipient);
    /// @notice A settlement transfer of `amount` to `to` failed; it is owed and can be pushed later.
    event TransferDeferred(uint256 indexed requestId, address indexed to, uint256 amount, bool isPayout);
    /// @notice An owed amount reached `to`.
    event OwedPaid(uint256 indexed requestId, address indexed to, uint256 amount, bool isPayout);
    /// @notice Never settled within the timeout; the buyer got `refund` back.
    event RequestExpired(uint256 indexed requestId, uint256 refund);
    /// @notice The window and timeout bounds changed.
    event DurationLimitsSet(uint40 minDuration, uint40 maxDuration, uint40 settlementTimeout);
    /// @notice The holdout share and the gate lead of new requests changed.
    event MarketRulesSet(uint16 holdoutBps, uint40 gateLeadSeconds);

    /// @notice The window must start in the future.
    error StartNotInFuture(uint256 start, uint256 nowTimestamp);
    /// @notice The window must end after it starts.
    error InvalidWindow(uint256 start, uint256 end);
    /// @notice The window is shorter or longer than allowed.
    error DurationOutOfRange(uint256 duration, uint256 minDuration, uint256 maxDuration);
    /// @notice Target power must be positive.
    error ZeroTarget();
    /// @notice Price must be positive.
    error ZeroPrice();
    /// @notice Budget must be positive.
    error ZeroBudget();
    /// @notice An amount does not fit in 128 bits.
    error AmountTooLarge(uint256 amount);
    /// @notice The token delivered less than was transferred (fee-on-transfer tokens are not supported).
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice No such request.
    error UnknownRequest(uint256 requestId);
    /// @notice Only the request's buyer may do this.
    error NotBuyer(uint256 requestId, address caller);
    /// @notice The request is not in a state that allows this.
    error WrongStatus(uint256 requestId, Status status);
    /// @notice The request's window has started; it can no longer be cancelled.
    error AlreadyStarted(uint256 requestId, uint256 start);
    /// @notice The request's window has not ended; it cannot be settled yet.
    error NotEnded(uint256 requestId, uint256 end);
    /// @notice The payout is larger than the escrow.
    error PayoutExceedsEscrow(uint256 requestId, uint256 payout, uint256 escrow);
    /// @notice The settlement timeout has not passed.
    error SettlementTimeoutNotReached(uint256 requestId, uint256 expiresAt);
    /// @notice Nothing is owed for this request.
    error NothingOwed(uint256 requestId);
    /// @notice The request already has its allocation (it cannot be cancelled or cleared again).
    error AlreadyAllocated(uint256 requestId);
    /// @notice A clearing price above the buyer's ceiling.
    error ClearingAboveCeiling(uint256 requestId, uint256 clearingPrice, uint256 ceiling);
    /// @notice An allocation's availability price is above the request's availability ceiling.
    error AvailabilityAboveCeiling(uint256 requestId, uint256 availabilityPrice, uint256 ceiling);
    /// @notice Duration limits must satisfy 0 < min <= max.
    error InvalidDurationLimits(uint40 minDuration, uint40 maxDuration);
    /// @notice The request's gate (its start minus the gate lead) has already closed at opening.
    error GateAlreadyClosed(uint256 gateClosure, uint256 nowTimestamp);
    /// @notice The holdout share exceeds MAX_HOLDOUT_BPS.
    error HoldoutTooLarge(uint16 holdoutBps, uint16 maxHoldoutBps);
    /// @notice The gate lead exceeds MAX_GATE_LEAD_SECONDS.
    error GateLeadTooLong(uint40 gateLeadSeconds, uint40 maxGateLeadSeconds);

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param guardian Receives GUARDIAN_ROLE.
    /// @param minDuration_ Shortest window, seconds.
    /// @param maxDuration_ Longest window, seconds.
    /// @param settlementTimeout_ Seconds after the end before an unsettled request can expire.
    constructor(
        address admin,
        address guardian,
        uint40 minDuration_,
        uint40 maxDuration_,
        uint40 settlementTimeout_
    ) GuardianPausable(admin, guardian) {
        _setDurationLimits(minDuration_, maxDuration_, settlementTimeout_);
    }

    /// @notice Ask for `targetW` of curtailment in `zone` during [start, end), paying at most `pricePerKWh`
    ///         per delivered kWh, at most `maxBudget` (escrowed now; approve it first). The request
    ///         takes the market's current holdout and gate lead (see RequestRules); its gate closure,
    ///         `start - gateLeadSeconds`, must still be in the future. It pays no availability.
    /// @return requestId The new request's id.
    function openRequest(
        uint32 zone,
        uint40 start,
        uint40 end,
        uint64 targetW,
        uint128 pricePerKWh,
        IERC20 paymentToken,
        uint256 maxBudget
    ) external whenNotPaused returns (uint256 requestId) {
        return _open(zone, start, end, targetW, pricePerKWh, 0, paymentToken, maxBudget);
    }

    /// @notice openRequest, also paying accepted capacity for being available: at most
    ///         `availabilityPricePerKWh` per kW of accepted power per hour of the window (see the
    ///         contract's notice). `maxBudget` must cover both; settlement never pays more than it.
    /// @return requestId The new request's id.
    function openRequestWithAvailability(
        uint32 zone,
        uint40 start,
        uint40 end,
        uint64 targetW,
        uint128 pricePerKWh,
        uint128 availabilityPricePerKWh,
        IERC20 paymentToken,
        uint256 maxBudget
    ) external whenNotPaused returns (uint256 requestId) {
        if (availabilityPricePerKWh == 0) revert ZeroPrice();
        return _open(zone, start, end, targetW, pricePerKWh, availabilityPricePerKWh, paymentToken, maxBudget);
    }

    /// @notice Cancel an open request before its window starts; the whole escrow is refunded.
    function cancel(uint256 requestId) external whenNotPaused {
        Request storage r = _existing(requestId);
        if (r.buyer != msg.sender) revert NotBuyer(requestId, msg.sender);
        if (r.status != Status.Open) revert WrongStatus(requestId, r.status);
        if (block.timestamp >= r.start) revert AlreadyStarted(requestId, r.start);
        if (r.allocated) revert AlreadyAllocated(requestId);
        uint256 refund = r.escrow;
        r.status = Status.Cancelled;
        r.escrow = 0;
        emit RequestCancelled(requestId, refund);
        IERC20(r.paymentToken).safeTransfer(r.buyer, refund);
    }

    /// @notice Refund an ended request that no report settled within the settlement timeout.
    function expire(uint256 requestId) external whenNotPaused {
        Request storage r = _existing(requestId);
        if (r.status != Status.Open) revert WrongStatus(requestId, r.status);
        uint256 expiresAt = uint256(r.end) + settlementTimeout;
        if (block.timestamp < expiresAt) revert SettlementTimeoutNotReached(requestId, expiresAt);
        uint256 refund = _held(r);
        r.status = Status.Expired;
        r.escrow = 0;
        emit RequestExpired(requestId, refund);
        IERC20(r.paymentToken).safeTransfer(r.buyer, refund);
    }

    /// @notice Claim ended, open requests for a pending report; checks each payout fits the escrow.
    /// @dev Called by the OracleHub when a report is submitted.
    function beginSettlement(RequestPayout[] calldata payouts) external onlyRole(SETTLER_ROLE) {
        for (uint256 i = 0; i < payouts.length; ++i) {
            uint256 requestId = payouts[i].requestId;
            Request storage r = _existing(requestId);
            if (r.status != Status.Open) revert WrongStatus(requestId, r.status);
            if (block.timestamp < r.end) revert NotEnded(requestId, r.end);
            if (payouts[i].payout > r.escrow) revert PayoutExceedsEscrow(requestId, payouts[i].payout, r.escrow);
            r.status = Status.Settling;
            emit RequestSettling(requestId, payouts[i].payout);
        }
    }

    /// @notice Record request `requestId`'s allocation (see AllocationPosted): once, while the request is
    ///         open and before its start, at a clearing price and an availability price no higher than
    ///         their ceilings. The escrow settlement may pay drops to what the allocation can earn,
    ///         acceptedW x window x (clearingPrice + availabilityPrice) (rounded down, as the oracles'
    ///         payouts are); the rest is refunded with the settlement or the expiry.
    /// @dev Called by the OracleHub once k oracles signed the allocation.
    function recordAllocation(
        uint256 requestId,
        bytes32 root,
        uint64 acceptedW,
        uint128 clearingPrice,
        uint128 availabilityPrice
    ) external onlyRole(SETTLER_ROLE) {
        Request storage r = _existing(requestId);
        if (r.status != Status.Open) revert WrongStatus(requestId, r.status);
        if (block.timestamp >= r.start) revert AlreadyStarted(requestId, r.start);
        if (r.allocated) revert AlreadyAllocated(requestId);
        if (clearingPrice > r.pricePerKWh) revert ClearingAboveCeiling(requestId, clearingPrice, r.pricePerKWh);
        if (availabilityPrice != 0) {
            uint128 ceiling = availabilityPriceOf[requestId];
            if (availabilityPrice > ceiling) revert AvailabilityAboveCeiling(requestId, availabilityPrice, ceiling);
        }
        uint256 cap =
            (uint256(acceptedW) * (r.end - r.start) * (uint256(clearingPrice) + availabilityPrice)) / 3_600_000;
        r.allocated = true;
        if (cap < r.escrow) r.escrow = uint128(cap);
        emit AllocationPosted(requestId, root, acceptedW, clearingPrice, availabilityPrice);
    }

    /// @notice Return requests of a discarded report to Open.
    /// @dev Called by the OracleHub when a challenge against the report is upheld.
    function releaseSettlement(RequestPayout[] calldata payouts) external onlyRole(SETTLER_ROLE) {
        for (uint256 i = 0; i < payouts.length; ++i) {
            Request storage r = _requests[payouts[i].requestId];
            if (r.status != Status.Settling) revert WrongStatus(payouts[i].requestId, r.status);
            r.status = Status.Open;
            emit RequestReleased(payouts[i].requestId);
        }
    }

    /// @notice Pay each request's payout to `recipient` and refund the rest of its escrow to its buyer.
    /// @dev Called by the OracleHub when a report is finalized.
    function completeSettlement(RequestPayout[] calldata payouts, address recipient)
        external
        onlyRole(SETTLER_ROLE)
        whenNotPaused
    {
        if (recipient == address(0)) revert ZeroAddress();
        for (uint256 i = 0; i < payouts.length; ++i) {
            uint256 requestId = payouts[i].requestId;
            Request storage r = _requests[requestId];
            if (r.status != Status.Settling) revert WrongStatus(requestId, r.status);
            uint256 payout = payouts[i].payout;
            if (payout > r.escrow) revert PayoutExceedsEscrow(requestId, payout, r.escrow);
            uint256 refund = _held(r) - payout;
            r.status = Status.Settled;
            r.escrow = 0;
            r.paid = uint128(payout);
            emit RequestSettled(requestId, payout, refund, recipient);
            address token = r.paymentToken;
            if (payout > 0 && !_tryTransfer(token, recipient, payout)) {
                owedPayout[requestId] = Owed(recipient, uint128(payout));
                emit TransferDeferred(requestId, recipient, payout, true);
            }
            if (refund > 0 && !_tryTransfer(token, r.buyer, refund)) {
                owedRefund[requestId] = Owed(r.buyer, uint128(refund));
                emit TransferDeferred(requestId, r.buyer, refund, false);
            }
        }
    }

    /// @notice Send what a settled request still owes (its payout, its refund, or both) to whom it is
    ///         owed. Anyone may call; it reverts if the token still refuses the transfer.
    function pushOwed(uint256 requestId) external whenNotPaused {
        Owed memory payout = owedPayout[requestId];
        Owed memory refund = owedRefund[requestId];
        if (payout.amount == 0 && refund.amount == 0) revert NothingOwed(requestId);
        IERC20 token = IERC20(_requests[requestId].paymentToken);
        if (payout.amount > 0) {
            delete owedPayout[requestId];
            emit OwedPaid(requestId, payout.to, payout.amount, true);
            token.safeTransfer(payout.to, payout.amount);
        }
        if (refund.amount > 0) {
            delete owedRefund[requestId];
            emit OwedPaid(requestId, refund.to, refund.amount, false);
            token.safeTransfer(refund.to, refund.amount);
        }
    }

    /// @notice Set the window bounds and the settlement timeout.
    function setDurationLimits(uint40 minDuration_, uint40 maxDuration_, uint40 settlementTimeout_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setDurationLimits(minDuration_, maxDuration_, settlementTimeout_);
    }

    /// @notice Set the holdout share and the gate lead that new requests take (open requests keep
    ///         the rules their RequestRules event recorded).
    /// @param holdoutBps_ Share of committed sites held out, basis points, at most MAX_HOLDOUT_BPS.
    /// @param gateLeadSeconds_ Seconds before the start at which commitments close, at most
    ///        MAX_GATE_LEAD_SECONDS.
    function setMarketRules(uint16 holdoutBps_, uint40 gateLeadSeconds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (holdoutBps_ > MAX_HOLDOUT_BPS) revert HoldoutTooLarge(holdoutBps_, MAX_HOLDOUT_BPS);
        if (gateLeadSeconds_ > MAX_GATE_LEAD_SECONDS) revert GateLeadTooLong(gateLeadSeconds_, MAX_GATE_LEAD_SECONDS);
        holdoutBps = holdoutBps_;
        gateLeadSeconds = gateLeadSeconds_;
        emit MarketRulesSet(holdoutBps_, gateLeadSeconds_);
    }

    /// @notice A request's full record.
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    function _setDurationLimits(uint40 minDuration_, uint40 maxDuration_, uint40 settlementTimeout_) private {
        if (minDuration_ == 0 || minDuration_ > maxDuration_) revert InvalidDurationLimits(minDuration_, maxDuration_);
        minDuration = minDuration_;
        maxDuration = maxDuration_;
        settlementTimeout = settlementTimeout_;
        emit DurationLimitsSet(minDuration_, maxDuration_, settlementTimeout_);
    }

    /// @dev Open a request (both public openers): checks, storage, events, then the escrow transfer.
    function _open(
        uint32 zone,
        uint40 start,
        uint40 end,
        uint64 targetW,
        uint128 pricePerKWh,
        uint128 availabilityPricePerKWh,
        IERC20 paymentToken,
        uint256 maxBudget
    ) private returns (uint256 requestId) {
        if (start <= block.timestamp) revert StartNotInFuture(start, block.timestamp);
        uint40 lead = gateLeadSeconds;
        uint40 gateClosure = start > lead ? start - lead : 0;
        if (gateClosure <= block.timestamp) revert GateAlreadyClosed(gateClosure, block.timestamp);
        if (end <= start) revert InvalidWindow(start, end);
        uint256 duration = end - start;
        if (duration < minDuration || duration > maxDuration) {
            revert DurationOutOfRange(duration, minDuration, maxDuration);
        }
        if (targetW == 0) revert ZeroTarget();
        if (pricePerKWh == 0) revert ZeroPrice();
        if (maxBudget == 0) revert ZeroBudget();
        if (maxBudget > type(uint128).max) revert AmountTooLarge(maxBudget);
        if (address(paymentToken) == address(0)) revert ZeroAddress();

        requestId = ++requestCount;
        _requests[requestId] = Request({
            buyer: msg.sender,
            start: start,
            end: end,
            status: Status.Open,
            allocated: false,
            paymentToken: address(paymentToken),
            zone: zone,
            targetW: targetW,
            pricePerKWh: pricePerKWh,
            escrow: uint128(maxBudget),
            deposited: uint128(maxBudget),
            paid: 0
        });
        emit RequestOpened(
            requestId, msg.sender, zone, start, end, targetW, pricePerKWh, address(paymentToken), uint128(maxBudget)
        );
        emit RequestRules(requestId, holdoutBps, gateClosure);
        if (availabilityPricePerKWh != 0) {
            availabilityPriceOf[requestId] = availabilityPricePerKWh;
            emit RequestAvailability(requestId, availabilityPricePerKWh);
        }

        uint256 before = paymentToken.balanceOf(address(this));
        paymentToken.safeTransferFrom(msg.sender, address(this), maxBudget);
        uint256 received = paymentToken.balanceOf(address(this)) - before;
        if (received != maxBudget) revert TransferAmountMismatch(maxBudget, received);
    }

    /// @dev What the market holds for an unsettled request: its escrow, or after an allocation lowered
    ///      the escrow, the whole deposit (nothing is paid before settlement).
    function _held(Request storage r) private view returns (uint256) {
        return r.allocated ? r.deposited : r.escrow;
    }

    /// @dev ERC-20 transfer with bounded gas that reports failure instead of reverting: false when the
    ///      call reverts, runs out of its gas, or returns anything but nothing or `true`
    ///      (SafeERC20's acceptance rule). The returned data is read only up to 32 bytes.
    function _tryTransfer(address token, address to, uint256 amount) private returns (bool ok) {
        bytes memory data = abi.encodeCall(IERC20.transfer, (to, amount));
        uint256 size;
        uint256 word;
        assembly ("memory-safe") {
            ok := call(SETTLEMENT_TRANSFER_GAS, token, 0, add(data, 0x20), mload(data), 0, 0x20)
            size := returndatasize()
            word := mload(0)
        }
        if (!ok) return false;
        if (size == 0) return token.code.length > 0;
        return size >= 32 && word == 1;
    }

    /// @dev The OracleHub settles.
    function _hubRoles() internal pure override returns (bytes32[] memory roles) {
        roles = new bytes32[](1);
        roles[0] = SETTLER_ROLE;
    }

    function _existing(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == Status.None) revert UnknownRequest(requestId);
    }
}
