// The few contract functions, events and errors the page uses, in viem's human-readable ABI form
// (signatures as in contracts/*.sol), so reverts decode to their custom error names.

import { parseAbi } from "viem";

export const erc20Abi = parseAbi([
  "function approve(address spender, uint256 amount) returns (bool)",
  "function allowance(address owner, address spender) view returns (uint256)",
  "function balanceOf(address account) view returns (uint256)",
  "error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
  "error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
  "error ERC20InvalidSpender(address spender)",
]);

export const flexMarketAbi = parseAbi([
  "function openRequest(uint32 zone, uint40 start, uint40 end, uint64 targetW, uint128 pricePerKWh, address paymentToken, uint256 maxBudget) returns (uint256)",
  "function openRequestWithAvailability(uint32 zone, uint40 start, uint40 end, uint64 targetW, uint128 pricePerKWh, uint128 availabilityPricePerKWh, address paymentToken, uint256 maxBudget) returns (uint256)",
  "function gateLeadSeconds() view returns (uint40)",
  "function minDuration() view returns (uint40)",
  "function maxDuration() view returns (uint40)",
  "function paused() view returns (bool)",
  "event RequestOpened(uint256 indexed requestId, address indexed buyer, uint32 indexed zone, uint40 start, uint40 end, uint64 targetW, uint128 pricePerKWh, address paymentToken, uint128 maxBudget)",
  "error StartNotInFuture(uint256 start, uint256 nowTimestamp)",
  "error InvalidWindow(uint256 start, uint256 end)",
  "error DurationOutOfRange(uint256 duration, uint256 minDuration, uint256 maxDuration)",
  "error ZeroTarget()",
  "error ZeroPrice()",
  "error ZeroBudget()",
  "error AmountTooLarge(uint256 amount)",
  "error TransferAmountMismatch(uint256 expected, uint256 received)",
  "error GateAlreadyClosed(uint256 gateClosure, uint256 nowTimestamp)",
  "error ZeroAddress()",
  "error EnforcedPause()",
  "error SafeERC20FailedOperation(address token)",
  "error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
  "error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
]);

export const rewardDistributorAbi = parseAbi([
  "function claimMany(address account, address[] tokens, uint256[] cumulativeAmounts, bytes32[][] proofs)",
  "function claimed(address account, address token) view returns (uint256)",
  "event Claimed(address indexed account, address indexed token, uint256 amount, uint256 cumulativeClaimed)",
  "error InvalidProof(address account, address token, uint256 cumulativeAmount)",
  "error NothingToClaim(address account, address token, uint256 cumulativeAmount, uint256 claimed)",
  "error LengthMismatch()",
  "error ReservedRoot()",
  "error EnforcedPause()",
]);
