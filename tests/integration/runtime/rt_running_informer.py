"""What the informer tests share: an informer run as a task for a block, and a reconciler that does nothing.

Why: an informer left running after its block keeps streaming from a simulator that is going away; the block
cancels it and waits for it to end on the way out, whatever happened inside.
"""

from __future__ import annotations

import asyncio

from nomad_operator.runtime import ObjectKey, Result
from nomad_operator.runtime.informer import Informer


async def noop_reconcile(key: ObjectKey) -> Result:
    return Result()


class RunningInformer:
    """Runs an informer as a task for the block, and cancels it after."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Informer:
        self.task = asyncio.create_task(self.informer.run())
        return self.informer

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
