"""The loader's pool workers exit when the operator that started them is killed without a chance to clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DEADLINE_S = 30.0

OWNER = textwrap.dedent(
    """
    import asyncio, multiprocessing, sys
    from pathlib import Path
    from nomad_operator.jobspec import JobLoader

    async def main() -> None:
        loader = JobLoader(max_workers=2, pool_threshold_bytes=0)
        results = await loader.load_many([Path(sys.argv[1])])
        assert not isinstance(results[0], Exception), results[0]
        print(" ".join(str(child.pid) for child in multiprocessing.active_children()), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_pool_workers_exit_after_the_owner_is_sigkilled(tmp_path: Path) -> None:
    job = tmp_path / "web.nomad"
    job.write_text('job "web" {\n  group "g" {\n    task "t" {\n      driver = "docker"\n    }\n  }\n}\n')
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(job)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    workers = [int(pid) for pid in line.split()]
    assert workers, f"the owner printed no pool processes: {line!r}"
    assert all(alive(pid) for pid in workers)

    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)
    owner.stdout.close()

    deadline = time.monotonic() + DEADLINE_S
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"pool processes outlived their owner: {[p for p in workers if alive(p)]}"
        time.sleep(0.1)
