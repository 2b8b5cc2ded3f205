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

    /// @dev Stands in `_liveRoot` while paused: no proof reaches it (it would need a keccak preimage),
    ///      so claims check pause and root with the one storage read they need anyway.
    bytes32 private constant PAUSED_ROOT = bytes32(type(uint256).max);

    /// @notice The epoch whose report installed the current root.
    uint64 public epoch;

    /// @dev The root claims verify against; PAUSED_ROOT while paused.
    bytes32 private _liveRoot;
    /// @dev The real root while paused (restored to `_liveRoot` on unpause).
    bytes32 private _heldRoot;

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
    /// @notice The root value is reserved.
    error ReservedRoot();

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param guardian Receives GUARDIAN_ROLE.
    constructor(address admin, address guardian) GuardianPausable(admin, guardian) {}

    /// @notice Install the root of a finalized report.
    function setRoot(bytes32 newRoot, uint64 newEpoch) external onlyRole(ROOT_SETTER_ROLE) {
        if (newRoot == PAUSED_ROOT) revert ReservedRoot();
        bytes32 previous = root();
        if (paused()) {
            _heldRoot = newRoot;
        } else {
            if (_liveRoot == PAUSED_ROOT) _heldRoot = bytes32(0); // a pause that expired: unpark
            _liveRoot = newRoot;
        }
        epoch = newEpoch;
        emit RootUpdated(newEpoch, newRoot, previous);
    }

    /// @notice Pay `account` what its leaf (account, token, cumulativeAmount) holds beyond what it
    ///         claimed. Anyone may call it; the tokens only ever go to `account`.
    function claim(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof) external {
        _claim(account, token, cumulativeAmount, proof, false);
    }

    /// @notice `claim` for several tokens of one account in one transaction.
    function claimMany(
        address account,
        address[] calldata tokens,
        uint256[] calldata cumulativeAmounts,
        bytes32[][] calldata proofs
    ) external {
        if (tokens.length != cumulativeAmounts.length || tokens.length != proofs.length) revert LengthMismatch();
        bool any = false;
        for (uint256 i = 0; i < tokens.length; ++i) {
            // A leaf someone already claimed (a front-run claim on the account's behalf) is skipped, so
            // it cannot make the others revert (L-5); the proof is still checked.
            if (_claim(account, tokens[i], cumulativeAmounts[i], proofs[i], true)) any = true;
        }
        if (!any && tokens.length > 0) {
            revert NothingToClaim(account, tokens[0], cumulativeAmounts[0], _claimed[account][tokens[0]]);
        }
    }

    /// @notice The current cumulative rewards root (also while paused).
    function root() public view returns (bytes32) {
        bytes32 live = _liveRoot;
        return live == PAUSED_ROOT ? _heldRoot : live;
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
        return MerkleProof.verifyCalldata(proof, root(), leafHash(account, token, cumulativeAmount));
    }

    /// @notice The StandardMerkleTree leaf hash: keccak256(bytes.concat(keccak256(abi.encode(...)))).
    function leafHash(address account, address token, uint256 cumulativeAmount) public pure returns (bytes32 leaf) {
        // Same bytes as keccak256(bytes.concat(keccak256(abi.encode(account, token, cumulativeAmount)))),
        // hashed in scratch memory past the free-memory pointer, which is left untouched.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, account)
            mstore(add(ptr, 0x20), token)
            mstore(add(ptr, 0x40), cumulativeAmount)
            mstore(0x00, keccak256(ptr, 0x60))
            leaf := keccak256(0x00, 0x20)
        }
    }

    /// @dev The root `proof` leads to from `leaf`, hashing each pair in ascending order: the same
    ///      result as OpenZeppelin's MerkleProof.processProofCalldata (which `verify` uses, and the
    ///      tests compare against), in a tighter loop, since every claim pays for each proof level.
    function _processProof(bytes32[] calldata proof, bytes32 leaf) private pure returns (bytes32 node) {
        assembly ("memory-safe") {
            node := leaf
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let sibling := calldataload(p)
                switch lt(node, sibling)
                case 1 {
                    mstore(0x00, node)
                    mstore(0x20, sibling)
                }
                default {
                    mstore(0x00, sibling)
                    mstore(0x20, node)
                }
                node := keccak256(0x00, 0x40)
            }
        }
    }

    /// @dev Pausing parks the root, so claims see the pause in the root they read anyway. After a
    ///      pause that expired without an unpause the root is still parked, and stays so.
    function _pause() internal override {
        super._pause();
        if (_liveRoot != PAUSED_ROOT) {
            _heldRoot = _liveRoot;
            _liveRoot = PAUSED_ROOT;
        }
    }

    /// @dev The OracleHub installs roots.
    function _hubRoles() internal pure override returns (bytes32[] memory roles) {
        roles = new bytes32[](1);
        roles[0] = ROOT_SETTER_ROLE;
    }

    /// @dev Unpausing brings back the root (including one installed while paused).
    function _unpause() internal override {
        super._unpause();
        _liveRoot = _heldRoot;
        _heldRoot = bytes32(0);
    }

    /// @dev Pays the unclaimed part of a proven leaf. With `skipClaimed`, a leaf with nothing left
    ///      returns false instead of reverting.
    function _claim(
        address account,
        address token,
        uint256 cumulativeAmount,
        bytes32[] calldata proof,
        bool skipClaimed
    ) private returns (bool paid) {
        bytes32 currentRoot = _liveRoot;
        if (currentRoot == PAUSED_ROOT) {
            // Parked by a pause: claims wait while it lasts, and read the held root once it expired.
            if (paused()) revert EnforcedPause();
            currentRoot = _heldRoot;
        }
        if (_processProof(proof, leafHash(account, token, cumulativeAmount)) != currentRoot) {
            revert InvalidProof(account, token, cumulativeAmount);
        }
        uint256 already = _claimed[account][token];
        if (cumulativeAmount <= already) {
            if (skipClaimed) return false;
            revert NothingToClaim(account, token, cumulativeAmount, already);
        }
        _claimed[account][token] = cumulativeAmount;
        uint256 amount = cumulativeAmount - already;
        emit Claimed(account, token, amount, cumulativeAmount);
        IERC20(token).safeTransfer(account, amount);
        return true;
    }
}
