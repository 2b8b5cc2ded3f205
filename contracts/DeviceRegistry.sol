// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title DeviceRegistry
/// @notice Every flexible device is its own secp256k1 signer key. A device joins the network when
///         its owner submits the device key's EIP-712 `DevicePermit`, which proves the owner holds
///         the device key (as IoTeX ioID does) and fixes the kind, capacity and zone the device
///         declared, so an owner cannot register it bigger or elsewhere (audit M-4). Oracles verify
///         meter batches against this registry. A device changes hands in two steps, offer and
///         acceptance, so nobody is made the owner (and the bearer of the penalties) of a device
///         they did not accept (audit M-4).
/// @dev One storage slot per device (owner, capacity, zone, kind, active flag, permit nonce) plus
///      one running total per zone, so registration stays near the cost of a bare permit check.
contract DeviceRegistry is EIP712 {
    /// @notice Kinds of device the network knows; stored as uint8 (see `kind` in Device).
    /// 0 EV charger, 1 heat pump, 2 HVAC, 3 battery, 4 water heater, 5 other load.
    uint8 public constant MAX_KIND = 5;

    /// @notice EIP-712 type of the device key's consent to be bound to `owner`.
    bytes32 public constant DEVICE_PERMIT_TYPEHASH =
        keccak256(
            "DevicePermit(address owner,address device,uint8 kind,uint32 capacityW,uint32 zone,uint256 nonce,uint256 deadline)"
        );

    /// @notice A device's record. `owner == address(0)` means not registered.
    /// @dev `nonce` survives unregistration, so an old permit can never register the device again.
    struct Device {
        address owner;
        uint32 capacityW;
        uint32 zone;
        uint8 kind;
        bool active;
        uint16 nonce;
    }

    /// @notice Running totals of the active devices in one zone.
    struct ZoneStats {
        uint64 activeDevices;
        uint192 activeCapacityW;
    }

    mapping(address device => Device) private _devices;
    mapping(uint32 zone => ZoneStats) private _zones;
    /// @notice The account a device was offered to and that may accept it (zero when none).
    mapping(address device => address) public pendingOwnerOf;

    /// @notice A device was bound to `owner`.
    event DeviceRegistered(
        address indexed device, address indexed owner, uint8 kind, uint32 capacityW, uint32 indexed zone
    );
    /// @notice The owner stopped (or resumed) offering a device; inactive devices earn nothing.
    event DeviceActiveChanged(address indexed device, address indexed owner, bool active);
    /// @notice The owner offered `device` to `to`, who becomes the owner on accepting (zero `to`: the
    ///         offer was withdrawn).
    event DeviceTransferOffered(address indexed device, address indexed from, address indexed to);
    /// @notice A device moved to a new owner.
    event DeviceTransferred(address indexed device, address indexed from, address indexed to);
    /// @notice A device was removed; it can be registered again with a permit at its next nonce.
    event DeviceUnregistered(address indexed device, address indexed owner);

    /// @notice The permit's deadline has passed.
    error PermitExpired(uint256 deadline, uint256 nowTimestamp);
    /// @notice The signature is not the device key's permit for this owner at the device's nonce
    ///         (wrong signer, tampered fields, or a permit already used).
    error InvalidDeviceSignature(address device, address recovered);
    /// @notice The device is already registered.
    error DeviceAlreadyRegistered(address device, address owner);
    /// @notice The device is not registered.
    error DeviceNotRegistered(address device);
    /// @notice Capacity must be positive.
    error ZeroCapacity();
    /// @notice The kind is not one this registry knows.
    error UnknownKind(uint8 kind);
    /// @notice The caller does not own the device.
    error NotDeviceOwner(address device, address caller);
    /// @notice The device is already in the requested active state.
    error ActiveStateUnchanged(address device, bool active);
    /// @notice The zero address cannot own or be a device.
    error ZeroAddress();
    /// @notice The caller was not offered the device.
    error NotPendingOwner(address device, address caller, address pendingOwner);

    constructor() EIP712("negawatt", "1") {}

    /// @notice Register `device` to the caller, with the device key's permit as proof of possession.
    /// @param device The device's signer address.
    /// @param kind Device kind, 0..MAX_KIND.
    /// @param capacityW The most power the device can curtail, in W.
    /// @param zone The grid zone the device is connected in.
    /// @param deadline Last timestamp at which the permit is valid.
    /// @param deviceSignature The device key's EIP-712 signature of
    ///        DevicePermit(owner = caller, device, kind, capacityW, zone, nonce = nonces(device), deadline).
    function register(
        address device,
        uint8 kind,
        uint32 capacityW,
        uint32 zone,
        uint256 deadline,
        bytes calldata deviceSignature
    ) external {
        if (block.timestamp > deadline) revert PermitExpired(deadline, block.timestamp);
        if (capacityW == 0) revert ZeroCapacity();
        if (kind > MAX_KIND) revert UnknownKind(kind);
        Device storage record = _devices[device];
        if (record.owner != address(0)) revert DeviceAlreadyRegistered(device, record.owner);
        uint16 nonce = record.nonce;
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(DEVICE_PERMIT_TYPEHASH, msg.sender, device, kind, capacityW, zone, nonce, deadline))
        );
        (address recovered, ECDSA.RecoverError failure,) = ECDSA.tryRecover(digest, deviceSignature);
        if (failure != ECDSA.RecoverError.NoError || recovered != device || device == address(0)) {
            revert InvalidDeviceSignature(device, recovered);
        }

        _devices[device] = Device({
            owner: msg.sender, capacityW: capacityW, zone: zone, kind: kind, active: true, nonce: nonce + 1
        });
        ZoneStats storage stats = _zones[zone];
        stats.activeDevices += 1;
        stats.activeCapacityW += capacityW;
        emit DeviceRegistered(device, msg.sender, kind, capacityW, zone);
    }

    /// @notice Stop offering `device`: it no longer counts in its zone and earns nothing.
    function deactivate(address device) external {
        _setActive(device, false);
    }

    /// @notice Offer `device` again after `deactivate`.
    function reactivate(address device) external {
        _setActive(device, true);
    }

    /// @notice Offer `device` to `newOwner` (e.g. the house was sold); it is theirs once they call
    ///         `acceptTransfer`. A new offer replaces the last one.
    function transfer(address device, address newOwner) external {
        if (newOwner == address(0)) revert ZeroAddress();
        _ownedBy(device, msg.sender);
        pendingOwnerOf[device] = newOwner;
        emit DeviceTransferOffered(device, msg.sender, newOwner);
    }

    /// @notice Withdraw the offer of `device`.
    function cancelTransfer(address device) external {
        _ownedBy(device, msg.sender);
        delete pendingOwnerOf[device];
        emit DeviceTransferOffered(device, msg.sender, address(0));
    }

    /// @notice Take `device` that its owner offered to the caller; rewards and penalties accrue to
    ///         the caller from now on.
    function acceptTransfer(address device) external {
        address pending = pendingOwnerOf[device];
        if (pending != msg.sender) revert NotPendingOwner(device, msg.sender, pending); // never zero: no offer
        Device storage record = _devices[device];
        address from = record.owner;
        if (from == address(0)) revert DeviceNotRegistered(device);
        delete pendingOwnerOf[device];
        record.owner = msg.sender;
        emit DeviceTransferred(device, from, msg.sender);
    }

    /// @notice Remove `device`; its permit nonce is kept, so only a fresh permit registers it again.
    function unregister(address device) external {
        Device storage record = _ownedBy(device, msg.sender);
        if (record.active) _removeFromZone(record.zone, record.capacityW);
        uint16 nonce = record.nonce;
        delete _devices[device];
        delete pendingOwnerOf[device];
        _devices[device].nonce = nonce;
        emit DeviceUnregistered(device, msg.sender);
    }

    /// @notice A device's record (owner is zero when it is not registered).
    function deviceInfo(address device) external view returns (Device memory) {
        return _devices[device];
    }

    /// @notice The nonce the device's next permit must carry.
    function nonces(address device) external view returns (uint256) {
        return _devices[device].nonce;
    }

    /// @notice Whether `device` is registered and active.
    function isActive(address device) external view returns (bool) {
        return _devices[device].active;
    }

    /// @notice Number and total capacity (W) of the active devices in `zone`.
    function zoneStats(uint32 zone) external view returns (uint256 activeDevices, uint256 activeCapacityW) {
        ZoneStats storage stats = _zones[zone];
        return (stats.activeDevices, stats.activeCapacityW);
    }

    /// @notice The EIP-712 domain separator that device permits are signed under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _setActive(address device, bool active) private {
        Device storage record = _ownedBy(device, msg.sender);
        if (record.active == active) revert ActiveStateUnchanged(device, active);
        record.active = active;
        if (active) {
            ZoneStats storage stats = _zones[record.zone];
            stats.activeDevices += 1;
            stats.activeCapacityW += record.capacityW;
        } else {
            _removeFromZone(record.zone, record.capacityW);
        }
        emit DeviceActiveChanged(device, msg.sender, active);
    }

    function _removeFromZone(uint32 zone, uint32 capacityW) private {
        ZoneStats storage stats = _zones[zone];
        stats.activeDevices -= 1;
        stats.activeCapacityW -= capacityW;
    }

    function _ownedBy(address device, address caller) private view returns (Device storage record) {
        record = _devices[device];
        if (record.owner == address(0)) revert DeviceNotRegistered(device);
        if (record.owner != caller) revert NotDeviceOwner(device, caller);
    }
}
