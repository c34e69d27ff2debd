"""`nomad-operator sim`: run a simulated Nomad cluster, or unplug and plug one of its nodes.

The demo and the end-to-end tests run the simulator as a process and break it from outside, the way a person pulls a
Raspberry Pi's power cord. The hazards: a simulator that ignores SIGTERM or hangs on an open event stream (it stops
on SIGINT/SIGTERM with a short shutdown), and a fault command that fails obscurely (it says whether the simulator could
not be reached, refused the token, or does not know the node, and exits non-zero).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

from nomad_operator.cli_arguments import go_duration_seconds, time_scale, whole_number
from nomad_operator.sim.config import (
    DEFAULT_ARCH,
    DEFAULT_HEARTBEAT_GRACE_S,
    DEFAULT_HEARTBEAT_TTL_S,
    DEFAULT_NODE_COUNT,
    SimConfig,
)

DEFAULT_LISTEN = "127.0.0.1:4646"
DEFAULT_ADDRESS = "http://127.0.0.1:4646"
REQUEST_TIMEOUT_S = 10.0


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}; use HOST:PORT such as 127.0.0.1:4646")
    return host, int(port)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated Nomad cluster, or unplug/plug one of its nodes",
        description="Run a Nomad-API-compatible simulated cluster until SIGINT or SIGTERM. It prints its address "
        "(and, with --acl, the management token) on start. `sim unplug NODE` and `sim plug NODE` stop and resume "
        "a running simulator's node heartbeats.",
    )
    parser.add_argument("--nodes", type=whole_number("node count", low=1), default=DEFAULT_NODE_COUNT,
                        help=f"number of client nodes, named pi1..piN (default {DEFAULT_NODE_COUNT})")
    parser.add_argument("--listen", type=_listen, default=_listen(DEFAULT_LISTEN), metavar="HOST:PORT",
                        help=f"address to serve the Nomad API on (default {DEFAULT_LISTEN}; port 0 picks one)")
    parser.add_argument("--acl", action="store_true", help="require a management token (printed on start)")
    parser.add_argument("--heartbeat-ttl", type=go_duration_seconds, default=DEFAULT_HEARTBEAT_TTL_S,
                        metavar="DURATION", help="node heartbeat TTL, Nomad's min_heartbeat_ttl (default 10s)")
    parser.add_argument("--heartbeat-grace", type=go_duration_seconds, default=DEFAULT_HEARTBEAT_GRACE_S,
                        metavar="DURATION",
                        help="grace after the TTL before a silent node is marked down (default 10s)")
    parser.add_argument("--arch", default=DEFAULT_ARCH,
                        help=f"cpu.arch attribute of the nodes (default {DEFAULT_ARCH})")
    parser.add_argument("--deployment-time-scale", type=time_scale, default=1.0, metavar="FACTOR",
                        help="scale deployment timings (min_healthy_time, healthy and progress deadlines) by this "
                        "factor in (0, 1], for demos and tests (default 1: Nomad's own timings)")
    parser.set_defaults(handler=run_command)
    actions = parser.add_subparsers(dest="sim_command", metavar="ACTION")
    for name, verb in (("unplug", "stop"), ("plug", "resume")):
        action = actions.add_parser(name, help=f"{verb} a node's heartbeats in a running simulator",
                                    description=f"{verb.capitalize()} the heartbeats of NODE (its name, such as pi2, "
                                    "or its ID) in a running simulator.")
        action.add_argument("node", metavar="NODE", help="node name (pi1..piN) or node ID")
        action.add_argument("--address", default=os.environ.get("NOMAD_ADDR") or DEFAULT_ADDRESS,
                            help="simulator address (default $NOMAD_ADDR or http://127.0.0.1:4646)")
        action.add_argument("--token", default=os.environ.get("NOMAD_TOKEN"),
                            help="management token when the simulator runs with --acl (default $NOMAD_TOKEN)")
        action.set_defaults(handler=fault_command, fault=name)


def run_command(args: argparse.Namespace) -> int:
    host, port = args.listen
    config = SimConfig(nodes=args.nodes, acl=args.acl, heartbeat_ttl=args.heartbeat_ttl,
                       heartbeat_grace=args.heartbeat_grace, arch=args.arch,
                       deployment_time_scale=args.deployment_time_scale)
    try:
        asyncio.run(_serve(config, host=host, port=port))
    except OSError as error:
        print(f"nomad-operator sim: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: SimConfig, *, host: str, port: int) -> None:
    from nomad_operator.sim.server import start_simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with start_simulator(config, host=host, port=port) as sim:
        print(f"Nomad simulator listening on {sim.address} with {config.nodes} nodes", flush=True)
        if sim.management_token is not None:
            print(f"Management token: {sim.management_token}", flush=True)
        await stop.wait()
    print("Nomad simulator stopped", flush=True)


def fault_command(args: argparse.Namespace) -> int:
    address = args.address.rstrip("/")
    url = f"{address}/v1/sim/node/{urllib.parse.quote(args.node, safe='')}/{args.fault}"
    request = urllib.request.Request(url, data=b"", method="POST")
    if args.token:
        request.add_header("X-Nomad-Token", args.token)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace").strip()
        if error.code == 404:
            print(f"nomad-operator sim {args.fault}: unknown node {args.node!r} ({text})", file=sys.stderr)
        elif error.code == 403:
            print(f"nomad-operator sim {args.fault}: permission denied; pass the management token with --token "
                  "or $NOMAD_TOKEN", file=sys.stderr)
        else:
            print(f"nomad-operator sim {args.fault}: the simulator answered {error.code}: {text}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(f"nomad-operator sim {args.fault}: cannot reach the simulator at {address}: {reason}", file=sys.stderr)
        return 1
    print(f"{'plugged' if args.fault == 'plug' else 'unplugged'} {args.node}")
    return 0
