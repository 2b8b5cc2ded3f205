// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {GuardianPausable} from "./GuardianPausable.sol";

/// @title RewardDistributor
/// @notice Holds every reward (buyer payments and protocol-token emissions) behind one cumulative
///         Merkle root. Each leaf is an OpenZeppelin StandardMerkleTree leaf of
///         (address account, address token, uint256 cumulativeAmount); a claim pays the difference
///         between the leaf's cumulative amount and what the account already claimed of that token,
///         so one claim collects any number of settled events.
contract RewardDistributor is GuardianPausable {
    using SafeERC20 for IERC20;

    /// @notice Role that installs new roots (the OracleHub, when it finalizes a report).
    bytes32 public constant ROOT_SETTER_ROLE = keccak256("ROOT_SETTER_ROLE");

    /// @notice The current cumulative rewards root.
    bytes32 public root;
    /// @notice The epoch whose report installed `root`.
    uint64 public epoch;

    mapping(address account => mapping(address token => uint256)) private _claimed;

    /// @notice A new cumulative root was installed.
    event RootUpdated(uint64 indexed epoch, bytes32 root, bytes32 previousRoot);
    /// @notice `account` received `amount` of `token`; `cumulativeClaimed` is its new total.
    event Claimed(address indexed account, address indexed token, uint256 amount, uint256 cumulativeClaimed);

    /// @notice The proof does not lead from the leaf to the current root.
    error InvalidProof(address account, address token, uint256 cumulativeAmount);
    /// @notice Everything in the leaf was claimed already.
    error NothingToClaim(address account, address token, uint256 cumulativeAmount, uint256 claimed);
    /// @notice `claimMany` arrays differ in length.
    error LengthMismatch();

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param guardian Receives GUARDIAN_ROLE.
    constructor(address admin, address guardian) GuardianPausable(admin, guardian) {}

    /// @notice Install the root of a finalized report.
    function setRoot(bytes32 newRoot, uint64 newEpoch) external onlyRole(ROOT_SETTER_ROLE) {
        bytes32 previous = root;
        root = newRoot;
        epoch = newEpoch;
        emit RootUpdated(newEpoch, newRoot, previous);
    }

    /// @notice Pay `account` what its leaf (account, token, cumulativeAmount) holds beyond what it
    ///         claimed. Anyone may call it; the tokens only ever go to `account`.
    function claim(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        whenNotPaused
    {
        _claim(account, token, cumulativeAmount, proof);
    }

    /// @notice `claim` for several tokens of one account in one transaction.
    function claimMany(
        address account,
        address[] calldata tokens,
        uint256[] calldata cumulativeAmounts,
        bytes32[][] calldata proofs
    ) external whenNotPaused {
        if (tokens.length != cumulativeAmounts.length || tokens.length != proofs.length) revert LengthMismatch();
        for (uint256 i = 0; i < tokens.length; ++i) {
            _claim(account, tokens[i], cumulativeAmounts[i], proofs[i]);
        }
    }

    /// @notice How much of `token` `account` has claimed in total.
    function claimed(address account, address token) external view returns (uint256) {
        return _claimed[account][token];
    }

    /// @notice Whether (account, token, cumulativeAmount) with `proof` is a leaf of the current root.
    function verify(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, root, leafHash(account, token, cumulativeAmount));
    }

    /// @notice The StandardMerkleTree leaf hash: keccak256(bytes.concat(keccak256(abi.encode(...)))).
    function leafHash(address account, address token, uint256 cumulativeAmount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, token, cumulativeAmount))));
    }

    function _claim(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof) private {
        if (!MerkleProof.verifyCalldata(proof, root, leafHash(account, token, cumulativeAmount))) {
            revert InvalidProof(account, token, cumulativeAmount);
        }
        uint256 already = _claimed[account][token];
        if (cumulativeAmount <= already) revert NothingToClaim(account, token, cumulativeAmount, already);
        _claimed[account][token] = cumulativeAmount;
        uint256 amount = cumulativeAmount - already;
        emit Claimed(account, token, amount, cumulativeAmount);
        IERC20(token).safeTransfer(account, amount);
    }
}
