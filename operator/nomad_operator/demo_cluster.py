"""The demo's simulated cluster as its own process: `nomad-operator sim` plus a deployment time scale.

The demo runs the cluster in a child process so that it is broken from outside, exactly like a real one
(`nomad-operator sim unplug pi2` against its address). `nomad-operator sim` has no flag for the simulator's
`deployment_time_scale`, and at Nomad's real `min_healthy_time` (consul's is 30 s, four waves in a row) a first sync
takes about a minute. This entry point takes the same flags as `sim` and that one more, and prints the same
first line, so the demo can switch to `nomad-operator sim` the day it has the flag. It stops on SIGINT or SIGTERM.

Run: `python -m nomad_operator.demo_cluster --listen 127.0.0.1:4646 --nodes 3 --deployment-time-scale 0.2`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from nomad_operator.durations import InvalidDuration, parse_duration, to_seconds
from nomad_operator.sim.config import SimConfig
from nomad_operator.sim.server import start_simulator

EXIT_LISTEN_FAILED = 1


def _duration(text: str) -> float:
    try:
        return to_seconds(parse_duration(text))
    except InvalidDuration as error:
        raise argparse.ArgumentTypeError(f"{error}; use a Go duration such as 10s or 500ms") from None


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"invalid time scale {text!r}; use a number in (0, 1], such as 0.2")
    return value


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}; use HOST:PORT such as 127.0.0.1:4646")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nomad_operator.demo_cluster",
                                     description="The demo's simulated Nomad cluster (see `nomad-operator sim`).")
    parser.add_argument("--listen", type=_listen, required=True, metavar="HOST:PORT")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--heartbeat-ttl", type=_duration, required=True, metavar="DURATION")
    parser.add_argument("--heartbeat-grace", type=_duration, required=True, metavar="DURATION")
    parser.add_argument("--deployment-time-scale", type=_scale, required=True, metavar="FACTOR")
    return parser


async def _serve(config: SimConfig, *, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with start_simulator(config, host=host, port=port) as sim:
        print(f"Nomad simulator listening on {sim.address} with {config.nodes} nodes", flush=True)
        await stop.wait()
    print("Nomad simulator stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    host, port = args.listen
    config = SimConfig(nodes=args.nodes, arch=args.arch, heartbeat_ttl=args.heartbeat_ttl,
                       heartbeat_grace=args.heartbeat_grace,
                       deployment_time_scale=args.deployment_time_scale)  # fmt: skip
    try:
        asyncio.run(_serve(config, host=host, port=port))
    except OSError as error:
        print(f"demo cluster: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_LISTEN_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
