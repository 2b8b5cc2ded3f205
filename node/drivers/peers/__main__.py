"""`python -m node.drivers.peers`: run simulated device peers until SIGINT/SIGTERM.

    --modbus-port P          a Modbus TCP battery inverter listening on --host:P
    --ocpp-url URL           an EV charger connecting to the node's Central System at URL/<id>
      --charge-point-id ID   (default negawatt-cp-1)  --ocpp-version 1.6|2.0.1 (default 1.6)
    --mqtt-port P            a smart plug on the MQTT broker at --mqtt-host:P (default host: --host)
      --mqtt-topic T         (default negawatt-plug-1)  --mqtt-style shelly_gen2|tasmota|generic
    --sunspec-port P         a SunSpec site meter (Modbus TCP) listening on --host:P
      --sunspec-model M      201|202|203|204 (default 203)
    --shelly-port P          a Shelly Pro 3EM site meter on the MQTT broker at --mqtt-host:P
      --shelly-topic T       (default negawatt-em-1)
    --p1-port P              a DSMR 5 site meter's P1 telegrams on --host:P (a P1-to-TCP adapter)
    --ready-file F           written once the servers listen and the MQTT peers reached their broker

Each peer's state is logged every 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path

log = logging.getLogger("negawatt.peers")


async def _main(args: argparse.Namespace) -> None:
    peers = []
    if args.modbus_port:
        from node.drivers.peers.modbus_inverter import InverterPeer

        inverter = InverterPeer(args.host, args.modbus_port)
        await inverter.start()
        peers.append(("inverter", inverter))
    if args.ocpp_url:
        from node.drivers.peers.ocpp_charger import ChargerPeer

        charger = ChargerPeer(args.ocpp_url, args.charge_point_id, version=args.ocpp_version,
                              meter_seconds=args.meter_seconds)
        await charger.start()
        peers.append(("charger", charger))
    if args.mqtt_port:
        from node.drivers.peers.mqtt_plug import PlugPeer

        plug = PlugPeer(args.mqtt_host or args.host, args.mqtt_port, args.mqtt_topic, style=args.mqtt_style,
                        publish_seconds=args.meter_seconds)
        await plug.start()
        deadline = time.monotonic() + 20
        while not plug.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not plug.connected:
            raise SystemExit(f"the plug could not reach the MQTT broker at {args.mqtt_host or args.host}:{args.mqtt_port}")
        peers.append(("plug", plug))
    if args.sunspec_port:
        from node.drivers.peers.sunspec_meter import SunSpecMeterPeer

        sunspec = SunSpecMeterPeer(args.host, args.sunspec_port, model=args.sunspec_model)
        await sunspec.start()
        peers.append(("sunspec meter", sunspec))
    if args.shelly_port:
        from node.drivers.peers.shelly_em import ShellyEmPeer

        shelly = ShellyEmPeer(args.mqtt_host or args.host, args.shelly_port, args.shelly_topic,
                              publish_seconds=args.meter_seconds)
        await shelly.start()
        deadline = time.monotonic() + 20
        while not shelly.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not shelly.connected:
            raise SystemExit(f"the Shelly meter could not reach the MQTT broker at {args.mqtt_host or args.host}:"
                             f"{args.shelly_port}")
        peers.append(("shelly meter", shelly))
    if args.p1_port:
        from node.drivers.peers.dsmr_p1 import P1MeterPeer

        p1 = P1MeterPeer(args.host, args.p1_port)
        await p1.start()
        peers.append(("p1 meter", p1))
    if not peers:
        raise SystemExit("nothing to run: give --modbus-port, --ocpp-url, --mqtt-port, --sunspec-port, --shelly-port "
                         "and/or --p1-port")
    if args.ready_file:
        Path(args.ready_file).write_text("ready\n")
    log.info("peers running: %s", ", ".join(name for name, _ in peers))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 30)
        except TimeoutError:
            for name, peer in peers:
                log.info("%s: %s", name, {k: v for k, v in peer.snapshot().items()
                                          if k not in ("profiles", "last", "requests")})
    for _, peer in peers:
        await peer.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the peers."""
    parser = argparse.ArgumentParser(prog="python -m node.drivers.peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--modbus-port", type=int)
    parser.add_argument("--ocpp-url")
    parser.add_argument("--charge-point-id", default="negawatt-cp-1")
    parser.add_argument("--ocpp-version", choices=("1.6", "2.0.1"), default="1.6")
    parser.add_argument("--mqtt-host")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--mqtt-topic", default="negawatt-plug-1")
    parser.add_argument("--mqtt-style", choices=("shelly_gen2", "tasmota", "generic"), default="shelly_gen2")
    parser.add_argument("--sunspec-port", type=int)
    parser.add_argument("--sunspec-model", type=int, choices=(201, 202, 203, 204), default=203)
    parser.add_argument("--shelly-port", type=int)
    parser.add_argument("--shelly-topic", default="negawatt-em-1")
    parser.add_argument("--p1-port", type=int)
    parser.add_argument("--meter-seconds", type=float, default=2.0,
                        help="charger, plug and Shelly meter reporting period")
    parser.add_argument("--ready-file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
