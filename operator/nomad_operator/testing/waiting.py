"""Waiting with deadlines: `await eventually(...)` and the common waits on Nomad state, for tests of controllers.

Tests of an eventually-consistent system fail in two bad ways: a fixed sleep (slow when generous, flaky when not) and
a poll loop that times out saying only "assert False". These helpers poll until a condition holds or a deadline
passes, and then raise `WaitTimeout` naming what was awaited, for how long, and the last value or error seen, so a
failure explains itself. The deadline is a safety net, not a measurement: never assert on how long a wait took.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar, overload

from nomad_operator.nomad import JSONObject, NomadClient, NotFound

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_INTERVAL_SECONDS: Final = 0.02
"""Polls are cheap against the in-process simulator; 20 ms keeps a passing test fast without spinning the loop."""
MAX_REPR_CHARS: Final = 600


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline. An AssertionError, so pytest shows it as a test failure."""


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    what: str | None = ...,
    ignore: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    what: str | None = ...,
    ignore: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109 - a deadline the message quotes, not a cancel scope
    interval: float = DEFAULT_INTERVAL_SECONDS,
    what: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call `check` (plain or async) until it returns something truthy, and return that.

    An `AssertionError` from `check` means "not yet", as do the exception types in `ignore`; any other exception is
    raised at once (a bug in the check should not hide behind the deadline).
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be positive, got {timeout} and {interval}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_value: Any = None
    last_error: BaseException | None = None
    attempts = 0
    not_yet: tuple[type[BaseException], ...] = (AssertionError, *ignore)
    while True:
        attempts += 1
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except not_yet as error:
            last_error, last_value = error, None
        else:
            if value:
                return value
            last_error, last_value = None, value
        if loop.time() >= deadline:
            break
        await asyncio.sleep(interval)
    described = what or _describe(check)
    seen = f"last error: {type(last_error).__name__}: {last_error}" if last_error else f"last value: {last_value!r}"
    raise WaitTimeout(f"timed out after {timeout:g}s ({attempts} checks) waiting for {described}; {_cut(seen)}")


def _describe(check: Callable[..., Any]) -> str:
    name = getattr(check, "__qualname__", None) or repr(check)
    return f"{name} to be true" if "<lambda>" not in name else "the condition to be true (pass what= to name it)"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REPR_CHARS else text[:MAX_REPR_CHARS] + "…"


async def wait_for_job_status(
    client: NomadClient,
    job_id: str,
    status: str,
    *,
    namespace: str = "default",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
) -> JSONObject:
    """Wait until the job's `Status` is `status` ("pending", "running", "dead"); returns the job."""

    async def job_in_status() -> JSONObject | None:
        job = (await client.read_job(job_id, namespace=namespace)).value
        return job if job.get("Status") == status else None

    return await eventually(
        job_in_status, timeout=timeout, what=f"job {namespace}/{job_id} to be {status!r}", ignore=(NotFound,)
    )


async def wait_for_job_gone(
    client: NomadClient,
    job_id: str,
    *,
    namespace: str = "default",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
) -> None:
    """Wait until reading the job answers 404."""

    async def gone() -> bool:
        try:
            await client.read_job(job_id, namespace=namespace)
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=timeout, what=f"job {namespace}/{job_id} to be gone")


async def wait_for_allocs(
    client: NomadClient,
    job_id: str,
    *,
    count: int,
    client_status: str = "running",
    namespace: str = "default",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
) -> list[JSONObject]:
    """Wait until exactly `count` allocations of the job have `ClientStatus == client_status` and are meant to run
    (`DesiredStatus == "run"`); returns them."""

    async def matching() -> list[JSONObject] | None:
        allocs = (await client.job_allocations(job_id, namespace=namespace)).value
        chosen = [alloc for alloc in allocs if _is(alloc, client_status)]
        return chosen if len(chosen) == count else None

    return await eventually(
        matching, timeout=timeout, what=f"{count} {client_status} allocations of job {namespace}/{job_id}"
    )


def _is(alloc: Mapping[str, Any], client_status: str) -> bool:
    return alloc.get("ClientStatus") == client_status and alloc.get("DesiredStatus", "run") == "run"
