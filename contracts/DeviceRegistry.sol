// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title DeviceRegistry
/// @notice Every flexible device is its own secp256k1 signer key. A device joins the network when
///         its owner submits the device key's EIP-712 permit, which proves the owner holds the
///         device key (as IoTeX ioID does) and fixes the kind, capacity and zone the device
///         declared, so an owner cannot register it bigger or elsewhere (audit M-4). Oracles verify
///         meter batches against this registry. A device changes hands in two steps, offer and
///         acceptance, so nobody is made the owner (and the bearer of the penalties) of a device
///         they did not accept (audit M-4).
///
///         Sites. A site meter (kind SITE_METER) is the meter at a premises' boundary, the
///         connection to the grid; it registers with `register` like any device (its capacity is
///         the connection's rating), is metered and never dispatched, and is not counted in its
///         zone's totals (those are flexible capacity). A controllable device registered with
///         `registerAtSite` belongs to the site: its zone is the site's zone, its owner is always
///         the site's owner (a site transfer moves its devices with it, without touching them), it
///         cannot be transferred on its own, and the site's owner manages it. A site with devices
///         cannot be unregistered. Devices registered with `register` (not at a site) keep working
///         as before: they are metered on their own.
/// @dev One storage slot per device or site (Record) plus one running total per zone, so
///      registration stays near the cost of a bare permit check. A device at a site stores the site
///      in place of its owner (the AT_SITE flag says so) and resolves its owner through the site's
///      record; a site meter, which has no flags (it is never at a site and has no active state),
///      keeps its number of devices in the flags byte instead. Nothing loops over devices.
contract DeviceRegistry is EIP712 {
    /// @notice Kinds of device the network knows; stored as uint8 (see `kind` in Device).
    /// 0 EV charger, 1 heat pump, 2 HVAC, 3 battery, 4 water heater, 5 other load, 6 site meter.
    uint8 public constant MAX_KIND = 6;
    /// @notice The kind of a site meter: the premises' boundary meter, metered and never dispatched.
    uint8 public constant SITE_METER = 6;
    /// @notice The most devices one site may hold (the count is one byte of the site's record).
    uint8 public constant MAX_DEVICES_PER_SITE = type(uint8).max;

    /// @notice EIP-712 type of the device key's consent to be bound to `owner`.
    bytes32 public constant DEVICE_PERMIT_TYPEHASH =
        keccak256(
            "DevicePermit(address owner,address device,uint8 kind,uint32 capacityW,uint32 zone,uint256 nonce,uint256 deadline)"
        );
    /// @notice EIP-712 type of the device key's consent to be bound to `site`, which `owner` owns;
    ///         the device takes the site's zone.
    bytes32 public constant DEVICE_AT_SITE_PERMIT_TYPEHASH =
        keccak256(
            "DeviceAtSitePermit(address owner,address device,address site,uint8 kind,uint32 capacityW,uint256 nonce,uint256 deadline)"
        );

    /// @notice A device's record as `deviceInfo` reports it. `owner == address(0)` means not
    ///         registered. For a device at a site, `owner` is the site's current owner and `zone`
    ///         the site's zone; for a site meter, `capacityW` is the connection's rating and
    ///         `active` is true while it is registered (a site meter has no active state).
    /// @dev `nonce` survives unregistration, so an old permit can never register the device again.
    struct Device {
        address owner;
        uint32 capacityW;
        uint32 zone;
        uint8 kind;
        bool active;
        uint16 nonce;
    }

    /// @notice Running totals of the active controllable devices in one zone (site meters excluded).
    struct ZoneStats {
        uint64 activeDevices;
        uint192 activeCapacityW;
    }

    /// @dev The stored record of a device or a site, one slot. `holder` is the owner, or for a device
    ///      at a site (AT_SITE set) the site. `state` holds the flag bits ACTIVE and AT_SITE for a
    ///      controllable device, and the number of devices at the site for a site meter.
    struct Record {
        address holder;
        uint32 capacityW;
        uint32 zone;
        uint8 kind;
        uint8 state;
        uint16 nonce;
    }

    /// @dev Flag bit of a controllable device's `state`: it is offered (counts in its zone).
    uint8 private constant ACTIVE = 1;
    /// @dev Flag bit of a controllable device's `state`: `holder` is its site, not its owner.
    uint8 private constant AT_SITE = 2;

    mapping(address device => Record) private _records;
    mapping(uint32 zone => ZoneStats) private _zones;
    /// @notice The account a device (or site) was offered to and that may accept it (zero when none).
    mapping(address device => address) public pendingOwnerOf;

    /// @notice A device (or site meter) was bound to `owner`.
    event DeviceRegistered(
        address indexed device, address indexed owner, uint8 kind, uint32 capacityW, uint32 indexed zone
    );
    /// @notice The device just registered (DeviceRegistered comes first, in the same transaction)
    ///         belongs to `site`: its owner is the site's owner from now on, whoever that is.
    event DeviceSited(address indexed device, address indexed site);
    /// @notice The owner stopped (or resumed) offering a device; inactive devices earn nothing.
    event DeviceActiveChanged(address indexed device, address indexed owner, bool active);
    /// @notice The owner offered `device` to `to`, who becomes the owner on accepting (zero `to`: the
    ///         offer was withdrawn).
    event DeviceTransferOffered(address indexed device, address indexed from, address indexed to);
    /// @notice A device (or a site, and with it every device at the site) moved to a new owner.
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
    /// @notice A site meter is metered, never dispatched: it cannot be registered at a site, and has
    ///         no active state to change.
    error NotControllable(address device, uint8 kind);
    /// @notice `site` is not a registered site meter.
    error NotASite(address site);
    /// @notice Only the site's owner may register devices at it.
    error NotSiteOwner(address site, address caller);
    /// @notice The site holds MAX_DEVICES_PER_SITE devices already.
    error SiteFull(address site, uint256 devices);
    /// @notice The site still has devices; unregister them first.
    error SiteHasDevices(address site, uint256 devices);
    /// @notice A device at a site changes hands only with its site.
    error DeviceAtSite(address device, address site);

    constructor() EIP712("negawatt", "1") {}

    /// @notice Register `device` to the caller, with the device key's permit as proof of possession.
    ///         A site meter (kind SITE_METER) registers here too, with `capacityW` the connection's
    ///         rating; it does not count in the zone's totals.
    /// @param device The device's signer address.
    /// @param kind Device kind, 0..MAX_KIND.
    /// @param capacityW The most power the device can curtail, in W (site meter: the connection's rating).
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
        Record storage record = _records[device];
        if (record.holder != address(0)) revert DeviceAlreadyRegistered(device, _ownerOf(record));
        uint16 nonce = record.nonce;
        _requireDeviceSignature(
            keccak256(abi.encode(DEVICE_PERMIT_TYPEHASH, msg.sender, device, kind, capacityW, zone, nonce, deadline)),
            device,
            deviceSignature
        );

        bool site = kind == SITE_METER;
        _records[device] = Record({
            holder: msg.sender, capacityW: capacityW, zone: zone, kind: kind, state: site ? 0 : ACTIVE, nonce: nonce + 1
        });
        if (!site) _addToZone(zone, capacityW);
        emit DeviceRegistered(device, msg.sender, kind, capacityW, zone);
    }

    /// @notice Register the controllable `device` at `site`, a site meter the caller owns, with the
    ///         device key's permit. The device takes the site's zone and counts in its totals; its
    ///         owner is the site's owner for as long as it is registered.
    /// @param device The device's signer address.
    /// @param site The site meter's address.
    /// @param kind Device kind, 0..MAX_KIND except SITE_METER.
    /// @param capacityW The most power the device can curtail, in W.
    /// @param deadline Last timestamp at which the permit is valid.
    /// @param deviceSignature The device key's EIP-712 signature of DeviceAtSitePermit(owner = caller,
    ///        device, site, kind, capacityW, nonce = nonces(device), deadline).
    function registerAtSite(
        address device,
        address site,
        uint8 kind,
        uint32 capacityW,
        uint256 deadline,
        bytes calldata deviceSignature
    ) external {
        if (block.timestamp > deadline) revert PermitExpired(deadline, block.timestamp);
        if (capacityW == 0) revert ZeroCapacity();
        if (kind > MAX_KIND) revert UnknownKind(kind);
        if (kind == SITE_METER) revert NotControllable(device, kind);
        Record storage siteRecord = _records[site];
        if (siteRecord.holder == address(0) || siteRecord.kind != SITE_METER) revert NotASite(site);
        if (siteRecord.holder != msg.sender) revert NotSiteOwner(site, msg.sender);
        uint8 devices = siteRecord.state;
        if (devices == MAX_DEVICES_PER_SITE) revert SiteFull(site, devices);
        Record storage record = _records[device];
        if (record.holder != address(0)) revert DeviceAlreadyRegistered(device, _ownerOf(record));
        uint16 nonce = record.nonce;
        _requireDeviceSignature(
            keccak256(
                abi.encode(DEVICE_AT_SITE_PERMIT_TYPEHASH, msg.sender, device, site, kind, capacityW, nonce, deadline)
            ),
            device,
            deviceSignature
        );

        uint32 zone = siteRecord.zone;
        siteRecord.state = devices + 1;
        _records[device] = Record({
            holder: site, capacityW: capacityW, zone: zone, kind: kind, state: ACTIVE | AT_SITE, nonce: nonce + 1
        });
        _addToZone(zone, capacityW);
        emit DeviceRegistered(device, msg.sender, kind, capacityW, zone);
        emit DeviceSited(device, site);
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
    ///         `acceptTransfer`. A new offer replaces the last one. A site is offered with every
    ///         device at it; a device at a site cannot be offered on its own.
    function transfer(address device, address newOwner) external {
        if (newOwner == address(0)) revert ZeroAddress();
        _requireNotAtSite(device, _ownedBy(device, msg.sender));
        pendingOwnerOf[device] = newOwner;
        emit DeviceTransferOffered(device, msg.sender, newOwner);
    }

    /// @notice Withdraw the offer of `device`.
    function cancelTransfer(address device) external {
        _requireNotAtSite(device, _ownedBy(device, msg.sender));
        delete pendingOwnerOf[device];
        emit DeviceTransferOffered(device, msg.sender, address(0));
    }

    /// @notice Take `device` that its owner offered to the caller; rewards and penalties accrue to
    ///         the caller from now on. Taking a site takes every device at it.
    function acceptTransfer(address device) external {
        address pending = pendingOwnerOf[device];
        if (pending != msg.sender) revert NotPendingOwner(device, msg.sender, pending); // never zero: no offer
        Record storage record = _records[device];
        // Only a device not at a site (or a site) is ever offered, so `holder` is its owner.
        address from = record.holder;
        if (from == address(0)) revert DeviceNotRegistered(device);
        delete pendingOwnerOf[device];
        record.holder = msg.sender;
        emit DeviceTransferred(device, from, msg.sender);
    }

    /// @notice Remove `device`; its permit nonce is kept, so only a fresh permit registers it again.
    ///         A site can be removed only once it has no devices.
    function unregister(address device) external {
        Record storage record = _ownedBy(device, msg.sender);
        uint8 state = record.state;
        if (record.kind == SITE_METER) {
            if (state != 0) revert SiteHasDevices(device, state);
        } else {
            if (state & ACTIVE != 0) _removeFromZone(record.zone, record.capacityW);
            if (state & AT_SITE != 0) _records[record.holder].state -= 1;
        }
        _records[device] = Record({holder: address(0), capacityW: 0, zone: 0, kind: 0, state: 0, nonce: record.nonce});
        delete pendingOwnerOf[device];
        emit DeviceUnregistered(device, msg.sender);
    }

    /// @notice A device's record (owner is zero when it is not registered; see Device for what the
    ///         fields mean for a site meter and for a device at a site).
    function deviceInfo(address device) external view returns (Device memory) {
        Record storage record = _records[device];
        return Device({
            owner: _ownerOf(record),
            capacityW: record.capacityW,
            zone: record.zone,
            kind: record.kind,
            active: _isActive(record),
            nonce: record.nonce
        });
    }

    /// @notice Who owns `device` now (zero when it is not registered): for a device at a site, the
    ///         site's current owner.
    function ownerOf(address device) external view returns (address) {
        return _ownerOf(_records[device]);
    }

    /// @notice The site `device` is registered at (zero when it is not registered at a site).
    function siteOf(address device) external view returns (address) {
        Record storage record = _records[device];
        return _atSite(record) ? record.holder : address(0);
    }

    /// @notice How many devices are registered at `site` (zero for anything but a site meter).
    function siteDevices(address site) external view returns (uint256) {
        Record storage record = _records[site];
        return record.kind == SITE_METER && record.holder != address(0) ? record.state : 0;
    }

    /// @notice The nonce the device's next permit (of either type) must carry.
    function nonces(address device) external view returns (uint256) {
        return _records[device].nonce;
    }

    /// @notice Whether `device` is registered and active (a site meter: whether it is registered).
    function isActive(address device) external view returns (bool) {
        return _isActive(_records[device]);
    }

    /// @notice Number and total capacity (W) of the active controllable devices in `zone`; site
    ///         meters are not counted.
    function zoneStats(uint32 zone) external view returns (uint256 activeDevices, uint256 activeCapacityW) {
        ZoneStats storage stats = _zones[zone];
        return (stats.activeDevices, stats.activeCapacityW);
    }

    /// @notice The EIP-712 domain separator that device permits are signed under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev Change a controllable device's active flag and its zone's totals; the owner (for a device
    ///      at a site, the site's owner) only.
    function _setActive(address device, bool active) private {
        Record storage record = _ownedBy(device, msg.sender);
        uint8 kind = record.kind;
        if (kind == SITE_METER) revert NotControllable(device, kind);
        uint8 state = record.state;
        if ((state & ACTIVE != 0) == active) revert ActiveStateUnchanged(device, active);
        record.state = active ? state | ACTIVE : state & ~ACTIVE;
        if (active) {
            _addToZone(record.zone, record.capacityW);
        } else {
            _removeFromZone(record.zone, record.capacityW);
        }
        emit DeviceActiveChanged(device, msg.sender, active);
    }

    /// @dev Count an active controllable device in its zone.
    function _addToZone(uint32 zone, uint32 capacityW) private {
        ZoneStats storage stats = _zones[zone];
        stats.activeDevices += 1;
        stats.activeCapacityW += capacityW;
    }

    /// @dev Stop counting an active controllable device in its zone.
    function _removeFromZone(uint32 zone, uint32 capacityW) private {
        ZoneStats storage stats = _zones[zone];
        stats.activeDevices -= 1;
        stats.activeCapacityW -= capacityW;
    }

    /// @dev Revert unless the device key signed the EIP-712 struct `structHash`. Only the signer and
    ///      the RecoverError of tryRecover matter; its errorArg (diagnostics of an error that reverts
    ///      anyway) is dropped.
    function _requireDeviceSignature(bytes32 structHash, address device, bytes calldata signature) private view {
        (address recovered, ECDSA.RecoverError failure,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (failure != ECDSA.RecoverError.NoError || recovered != device || device == address(0)) {
            revert InvalidDeviceSignature(device, recovered);
        }
    }

    /// @dev Revert if `record` (of `device`) is a device at a site, which changes hands only with it.
    function _requireNotAtSite(address device, Record storage record) private view {
        if (_atSite(record)) revert DeviceAtSite(device, record.holder);
    }

    /// @dev The registered record of `device`, which `caller` must own (through its site, if any).
    function _ownedBy(address device, address caller) private view returns (Record storage record) {
        record = _records[device];
        if (record.holder == address(0)) revert DeviceNotRegistered(device);
        if (_ownerOf(record) != caller) revert NotDeviceOwner(device, caller);
    }

    /// @dev The owner a record stands for: its holder, or for a device at a site the site's holder.
    function _ownerOf(Record storage record) private view returns (address) {
        return _atSite(record) ? _records[record.holder].holder : record.holder;
    }

    /// @dev Whether the record is a controllable device at a site (a site meter's `state` is a count,
    ///      not flags, so its kind is checked first).
    function _atSite(Record storage record) private view returns (bool) {
        return record.kind != SITE_METER && record.state & AT_SITE != 0;
    }

    /// @dev Whether the record is an active controllable device, or a registered site meter.
    function _isActive(Record storage record) private view returns (bool) {
        if (record.kind == SITE_METER) return record.holder != address(0);
        return record.state & ACTIVE != 0;
    }
}
