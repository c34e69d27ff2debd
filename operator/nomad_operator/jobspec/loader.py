"""`JobLoader`: job files to API jobs for the long-running controller, with a content-hash cache and a process pool.

The GitOps controller converts every job file of a repository on every revision, and most files never change.
Parsing is slow (python-hcl2 costs about 0.15 ms a line) and holds the GIL, so two hazards shape this module:
- an unchanged file must never be parsed twice: results are cached by the file's content hash and every input
  that can change the result (variables, var file contents, NOMAD_VAR_* environment, filesystem options), and the
  content hash itself is memoised by the file's stat signature, so a warm pass is a stat and a dict lookup;
- a big parse must never stall the event loop: `load_many` sends a large pass to a process pool whose workers live
  as long as the loader (the grammar is built once per worker) and shuts it down cleanly on `close()`.
A file that calls filesystem functions (`file()`, `fileset()` ...) also keys its cache entry on the stat signatures
of the tree it may read, so editing a file it reads re-renders the job. Errors are values in `load_many`'s result,
one per file: one bad file never hides the others. The conversion of one file itself is `job_file`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from nomad_operator.jobspec.errors import JobspecError, JobspecErrors, SourcePos
from nomad_operator.jobspec.job_file import (
    LoadedJob,
    convert_text,
    job_environment,
    load_job,
    parse_for_api,
    read_job_text,
    spec_hash,
)

# Callers import the single-file conversion from here too; it lives in `job_file`.
__all__ = ["JobLoader", "LoadedJob", "convert_text", "load_job", "parse_for_api", "read_job_text", "spec_hash"]

# How often a pool worker checks that the operator that started it still lives.
ORPHAN_CHECK_SECONDS: Final = 1.0
POOL_THRESHOLD_BYTES: Final = 2048  # uncached text of one pass from which it goes to the pool, not a thread
CACHE_SIZE: Final = 4096  # results kept per loader
DEFAULT_WORKERS: Final = max(1, min(4, os.cpu_count() or 1))
TASKS_PER_WORKER: Final = 4  # files go to the pool in chunks: one round trip per chunk, not per file
_FS_FUNCTION_CALL: Final = re.compile(r"\b(file|filebase64|filebase64sha256|templatefile|fileset|fileexists)\s*\(")


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a conversion depends on besides the job file itself; the same for every file of one call."""

    variables: Mapping[str, str]
    var_files: Sequence[Path]
    environ: Mapping[str, str]
    root_dir: Path | None
    allow_fs: bool


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything one conversion depends on; picklable, for the pool."""

    path: str
    text: str
    variables: tuple[tuple[str, str], ...]
    var_files: tuple[tuple[str, str], ...]
    environ: tuple[tuple[str, str], ...]
    root_dir: str | None
    allow_fs: bool


_ErrorRecord = tuple[str, str | None, int, int]


def _convert_request(request: _Request) -> LoadedJob | list[_ErrorRecord]:
    """Run one conversion; errors come back as plain tuples because exceptions with extra fields don't pickle."""
    try:
        return convert_text(
            request.text,
            filename=request.path,
            variables=dict(request.variables),
            var_files=request.var_files,
            environ=dict(request.environ),
            base_dir=Path(request.path).parent,
            root_dir=Path(request.root_dir) if request.root_dir else None,
            allow_fs=request.allow_fs,
        )
    except JobspecErrors as errors:
        return [_record(error) for error in errors.errors]
    except JobspecError as error:
        return [_record(error)]


def _convert_requests(requests: list[_Request]) -> list[LoadedJob | list[_ErrorRecord]]:
    return [_convert_request(request) for request in requests]


def _record(error: JobspecError) -> _ErrorRecord:
    pos = error.pos
    return (error.message, pos.file if pos else None, pos.line if pos else 0, pos.column if pos else 0)


def _rebuild(records: list[_ErrorRecord]) -> JobspecError:
    errors = [
        JobspecError(message, SourcePos(file, line, column) if file else None)
        for message, file, line, column in records
    ]
    return errors[0] if len(errors) == 1 else JobspecErrors(errors)


def _warm_worker(owner_pid: int) -> None:
    """Pool initializer: exit with the operator, and build the parser once per worker, not once per file."""
    _exit_with_owner(owner_pid)
    with contextlib.suppress(JobspecError):
        convert_text('job "warm" {}', filename="warm.nomad", allow_fs=False)


def _exit_with_owner(owner_pid: int) -> None:
    """A worker outlives an operator killed with SIGKILL (no time to shut the pool down), and so does the forkserver:
    each worker holds the forkserver's liveness pipe open. Watch the operator itself and exit when it is gone."""

    def watch() -> None:
        while _process_alive(owner_pid):
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process whose parent has not reaped it yet is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class JobLoader:
    """Converts job files for the long-running controller: cached, and parallel in a process pool.

    Use as a context manager (sync or async) or call `close()`: the pool's workers are real processes.
    `max_workers=0` converts everything inline (no processes), for tools and tests that want no pool.
    """

    def __init__(
        self,
        *,
        max_workers: int = DEFAULT_WORKERS,
        pool_threshold_bytes: int = POOL_THRESHOLD_BYTES,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._max_workers = max_workers
        self._pool_threshold = pool_threshold_bytes
        self._cache_size = cache_size
        self._results: OrderedDict[str, LoadedJob | list[_ErrorRecord]] = OrderedDict()
        self._digests: OrderedDict[str, tuple[tuple[int, ...], str, str, bool]] = OrderedDict()
        self._pool: Executor | None = None
        self._closed = False
        self.conversions = 0  # how many files were actually parsed: the cache's hit rate is visible in tests

    def load(
        self,
        path: Path,
        *,
        variables: Mapping[str, str] = {},
        var_files: Sequence[Path] = (),
        environ: Mapping[str, str] = {},
        root_dir: Path | None = None,
        allow_fs: bool = True,
    ) -> LoadedJob:
        """One file, inline, through the cache; raises JobspecError."""
        inputs = _Inputs(variables, var_files, environ, root_dir, allow_fs)
        key, request = self._plan(path, inputs, tree_stamps={})
        result = self._results.get(key) if request is None else self._store(key, _convert_request(request))
        assert result is not None
        if isinstance(result, LoadedJob):
            return result
        raise _rebuild(result)

    async def load_many(
        self,
        paths: Iterable[Path],
        *,
        variables: Mapping[str, str] = {},
        var_files: Sequence[Path] = (),
        environ: Mapping[str, str] = {},
        root_dir: Path | None = None,
        allow_fs: bool = True,
    ) -> list[LoadedJob | JobspecError]:
        """Many files, in the given order; each result is the job or the error of that file."""
        if self._closed:
            raise RuntimeError("JobLoader is closed")
        inputs = _Inputs(variables, var_files, environ, root_dir, allow_fs)
        plans = await asyncio.to_thread(self._plan_all, list(paths), inputs)
        misses: dict[str, _Request] = {}
        for key, request in plans:
            if isinstance(request, _Request):
                misses.setdefault(key, request)
        requests = list(misses.values())
        converted: list[LoadedJob | list[_ErrorRecord]]
        if self._max_workers > 0 and sum(len(r.text) for r in requests) >= self._pool_threshold:
            loop = asyncio.get_running_loop()
            executor = self._executor()
            size = max(1, min(64, -(-len(requests) // (self._max_workers * TASKS_PER_WORKER))))
            chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
            done = await asyncio.gather(*(loop.run_in_executor(executor, _convert_requests, c) for c in chunks))
            converted = [result for chunk in done for result in chunk]
        else:
            # A few small files: a thread is cheaper than a round trip to the pool.
            converted = await asyncio.to_thread(_convert_requests, requests)
        fresh = {key: self._store(key, result) for key, result in zip(misses, converted, strict=True)}
        results: list[LoadedJob | JobspecError] = []
        for key, request in plans:
            if isinstance(request, JobspecError):
                results.append(request)
                continue
            result = fresh.get(key) or self._results[key]
            results.append(result if isinstance(result, LoadedJob) else _rebuild(result))
        return results

    def _plan_all(self, paths: list[Path], inputs: _Inputs) -> list[tuple[str, _Request | JobspecError | None]]:
        tree_stamps: dict[str, str] = {}
        plans: list[tuple[str, _Request | JobspecError | None]] = []
        for path in paths:
            try:
                plans.append(self._plan(path, inputs, tree_stamps=tree_stamps))
            except JobspecError as error:
                plans.append((f"error:{path}", error))
        return plans

    def _plan(self, path: Path, inputs: _Inputs, *, tree_stamps: dict[str, str]) -> tuple[str, _Request | None]:
        """The cache key of a file with its inputs, and the request to run when the key is not cached."""
        digest, text, reads_files = self._digest(path)
        variables = tuple(sorted(inputs.variables.items()))
        var_texts = tuple((str(p), self._digest(p)[1]) for p in inputs.var_files)
        job_environ = tuple(sorted(job_environment(inputs.environ).items()))
        key_parts = [str(path), digest, repr(list(variables)), repr(var_texts), repr(job_environ)]
        key_parts += [str(inputs.root_dir), str(inputs.allow_fs)]
        if inputs.allow_fs and reads_files:
            tree = inputs.root_dir or path.parent
            if str(tree) not in tree_stamps:
                tree_stamps[str(tree)] = _tree_stamp(tree)
            key_parts.append(tree_stamps[str(tree)])
        key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()
        if key in self._results:
            self._results.move_to_end(key)
            return key, None
        root_dir = str(inputs.root_dir) if inputs.root_dir else None
        return key, _Request(str(path), text, variables, var_texts, job_environ, root_dir, inputs.allow_fs)

    def _digest(self, path: Path) -> tuple[str, str, bool]:
        """Content hash, text, and whether it calls filesystem functions; re-read only when its stat changed."""
        try:
            stat = path.stat()
        except OSError as error:
            raise JobspecError(f"cannot read file: {error.strerror or error}", SourcePos(str(path))) from None
        signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        known = self._digests.get(str(path))
        if known is not None and known[0] == signature:
            return known[1], known[2], known[3]
        data, text = read_job_text(path)
        digest = hashlib.sha256(data).hexdigest()
        reads_files = bool(_FS_FUNCTION_CALL.search(text))
        self._digests[str(path)] = (signature, digest, text, reads_files)
        if len(self._digests) > self._cache_size:
            self._digests.popitem(last=False)
        return digest, text, reads_files

    def _store(self, key: str, result: LoadedJob | list[_ErrorRecord]) -> LoadedJob | list[_ErrorRecord]:
        self.conversions += 1
        self._results[key] = result
        if len(self._results) > self._cache_size:
            self._results.popitem(last=False)
        return result

    def _executor(self) -> Executor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["nomad_operator.jobspec.loader"])
            self._pool = ProcessPoolExecutor(
                self._max_workers, mp_context=context, initializer=_warm_worker, initargs=(os.getpid(),)
            )
        return self._pool

    def close(self) -> None:
        """Stop the pool's workers and wait for them; idempotent."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> JobLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> JobLoader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)


def _tree_stamp(tree: Path) -> str:
    """The stat signatures of every file under `tree`: changes when any file a job may read changes."""
    entries: list[str] = []
    for folder, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            entries.append(f"{folder}/{name}:{stat.st_mtime_ns}:{stat.st_size}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()
