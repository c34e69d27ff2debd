"""SIGTERM to a real operator process: the in-flight reconcile finishes, then the process exits cleanly in time."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

from nomad_operator.nomad import NomadClient
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import eventually

pytest_plugins = ["nomad_operator.testing.fixtures"]

EXIT_DEADLINE_SECONDS = 15.0  # a safety net for a hung child, far above the operator's own shutdown timeout

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from nomad_operator.nomad import NomadClient, NomadSettings
    from nomad_operator.runtime import Controller, Result, Watch
    from nomad_operator.runtime.logging import configure_logging
    from nomad_operator.runtime.operator import Operator, OperatorSettings

    address, marks = sys.argv[1], Path(sys.argv[2])

    async def slow(key):
        with marks.open("a") as out:
            out.write(f"started {key.name}\\n")
        await asyncio.sleep(1.0)
        with marks.open("a") as out:
            out.write(f"finished {key.name}\\n")
        return Result()

    async def main():
        configure_logging(level="INFO", log_format="json")
        client = NomadClient(NomadSettings(address=address))
        await client.__aenter__()
        controller = Controller("slow", reconcile=slow, watches=[Watch("Job", fields=("Status",))])
        await Operator(client=client, controllers=[controller], settings=OperatorSettings(shutdown_timeout=4.0)).run()

    asyncio.run(main())
    """
)


async def test_sigterm_lets_the_in_flight_reconcile_finish_and_exits_cleanly(
    nomad_sim: RunningSimulator, nomad_client: NomadClient, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    marks.touch()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, nomad_sim.address, str(marks),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await nomad_client.register_job(
            {"ID": "busy", "Name": "busy", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g",
             "Tasks": [{"Name": "t", "Driver": "exec", "Config": {}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
        )  # fmt: skip
        await eventually(lambda: "started busy" in marks.read_text(), timeout=30, what="the child to start a reconcile")
        child.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(child.communicate(), EXIT_DEADLINE_SECONDS)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, stderr.decode()[-2000:]
    assert marks.read_text().splitlines() == ["started busy", "finished busy"]
    log = stderr.decode()
    assert '"message":"operator: received SIGTERM, shutting down"' in log
    assert '"message":"operator stopped"' in log
