"""The one HTTP session to Nomad, and the request path every API call goes through.

Everything that must hold for every call is done here, once: the token header (re-read when its file changes), the
`namespace` and `region` defaults, blocking-query parameters with a read timeout longer than Nomad's wait plus its
jitter, bounded response bodies, Nomad's plain-text errors mapped to the exception tree, retries for idempotent calls
only, and the write guard asked before every attempt of a state-changing call. Hazards handled: redirects are not
followed (they would carry the token to another host), the token never reaches an exception text, a blocking read is
never cut by a timeout shorter than the wait it asked for, and event-stream lines of several MiB fit the read buffer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from nomad_operator.durations import SECOND, format_duration
from nomad_operator.nomad.defaults import (
    BLOCKING_DEFAULT_WAIT,
    BLOCKING_JITTER_FRACTION,
    BLOCKING_READ_MARGIN,
    CONNECT_TIMEOUT,
    MAX_ERROR_BODY_BYTES,
    MAX_RESPONSE_BYTES,
    READ_BUFSIZE,
    REQUEST_TIMEOUT,
    USER_AGENT,
)
from nomad_operator.nomad.errors import (
    APIError,
    InvalidResponse,
    NomadUnreachable,
    error_from_response,
)
from nomad_operator.nomad.results import QueryResult, WriteAnswer
from nomad_operator.nomad.retry import DEFAULT_RETRY, RetryPolicy
from nomad_operator.nomad.settings import NomadSettings, build_ssl_context
from nomad_operator.nomad.token_source import TokenSource
from nomad_operator.nomad.write_guard import WriteGuard


class CallOptions(TypedDict, total=False):
    """Per-call overrides of the settings' defaults, accepted by every call."""

    namespace: str | None
    region: str | None


class ReadOptions(CallOptions, total=False):
    """Per-call options of reads: the overrides, plus a blocking query (`index` = last X-Nomad-Index, `wait` in s)."""

    index: int | None
    wait: float | None


class ListOptions(ReadOptions, total=False):
    """Per-call options of list reads: the read options, plus one page (`per_page`, `next_token`) and a `filter`."""

    per_page: int | None
    next_token: str | None
    filter: str | None


class NomadTransport:
    """Owns the aiohttp session and sends requests; the API methods live in the `*_api` modules on top of it."""

    def __init__(
        self,
        settings: NomadSettings | None = None,
        *,
        write_guard: WriteGuard | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        request_timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_bufsize: int = READ_BUFSIZE,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        user_agent: str = USER_AGENT,
    ) -> None:
        # A replica's own User-Agent (e.g. "nomad-operator/0.1.0 replica=pi1-1234") lets Nomad's audit log, and the
        # simulator's write log, tell which replica wrote.
        self.user_agent = user_agent
        self.settings = settings if settings is not None else NomadSettings.from_env()
        self.write_guard = write_guard
        self.retry = retry
        self._tokens = TokenSource(token=self.settings.token, token_file=self.settings.token_file)
        self._connect_timeout = connect_timeout
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=connect_timeout)
        self._read_bufsize = read_bufsize
        self._max_response_bytes = max_response_bytes
        self._base_url = self.settings.base_url
        self._ssl = build_ssl_context(self.settings)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    async def __aenter__(self) -> Self:
        if self._session is None:
            socket_path = self.settings.unix_socket
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=socket_path) if socket_path else aiohttp.TCPConnector(ssl=self._ssl or True)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                read_bufsize=self._read_bufsize,
                headers={"User-Agent": self.user_agent},
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections (open event streams end with it)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- the calls the API modules use ---

    async def _query(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        namespaced: bool = True,
        **options: Unpack[ReadOptions],
    ) -> QueryResult[Any]:
        """A GET, blocking when `index` is given: Nomad answers once its index is above `index`, or after `wait` s."""
        query = self._params(
            params, namespace=options.get("namespace"), region=options.get("region"), namespaced=namespaced
        )
        index, wait = options.get("index"), options.get("wait")
        timeout = self._timeout
        if index is not None and index > 0:
            query["index"] = str(index)
            if wait is not None:
                query["wait"] = format_duration(round(wait * SECOND))
            blocked = wait if wait is not None else BLOCKING_DEFAULT_WAIT
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self._connect_timeout,
                sock_read=blocked * (1 + BLOCKING_JITTER_FRACTION) + BLOCKING_READ_MARGIN,
            )
        _, headers, payload = await self._call(
            "GET", path, params=query, body=None, client_timeout=timeout, retryable=True, guarded=False
        )
        return QueryResult(
            value=self._decode(payload, "GET", path),
            index=_header_int(headers, "X-Nomad-Index", path),
            known_leader=headers.get("X-Nomad-KnownLeader", "").lower() == "true",
            last_contact_ms=_header_int(headers, "X-Nomad-LastContact", path),
            next_token=headers.get("X-Nomad-NextToken", ""),
        )

    async def _list(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        namespaced: bool = True,
        **options: Unpack[ListOptions],
    ) -> QueryResult[Any]:
        """A list read: the whole list, or one page of it with `per_page` (`next_token` says where the next starts)."""
        query: dict[str, str | int] = dict(params or {})
        for name, value in (
            ("per_page", options.get("per_page")), ("next_token", options.get("next_token")),
            ("filter", options.get("filter")),
        ):  # fmt: skip
            if value is not None and value != "":
                query[name] = value
        return await self._query(
            path, params=query, namespaced=namespaced, namespace=options.get("namespace"),
            region=options.get("region"), index=options.get("index"), wait=options.get("wait"),
        )  # fmt: skip

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        namespaced: bool = True,
        idempotent: bool,
        changes_state: bool = True,
        guarded: bool = True,
        **options: Unpack[CallOptions],
    ) -> WriteAnswer:
        """A PUT/POST/DELETE. `guarded=False` is only for the leader-election lock calls (see `write_guard.py`)."""
        query = self._params(
            params, namespace=options.get("namespace"), region=options.get("region"), namespaced=namespaced
        )
        data = orjson.dumps(body) if body is not None else None
        _, headers, payload = await self._call(
            method,
            path,
            params=query,
            body=data,
            client_timeout=self._timeout,
            retryable=idempotent,
            guarded=guarded and changes_state,
        )
        return WriteAnswer(body=self._decode(payload, method, path), index=_header_int(headers, "X-Nomad-Index", path))

    @asynccontextmanager
    async def open_stream(self, path: str, params: Sequence[tuple[str, str]]) -> AsyncIterator[aiohttp.StreamReader]:
        """A long-lived GET whose body the caller reads (the event stream); the caller keeps its own idle timeout.

        Errors while opening or reading come out as the client's exceptions (`NomadUnreachable`, `APIError`...).
        """
        session = self._require_session()
        headers = self._headers()
        # Compression would make a proxy or Nomad's gzip writer hold heartbeats back until a buffer fills.
        headers["Accept-Encoding"] = "identity"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=None)
        try:
            async with session.get(
                self._base_url + path,
                params=[*params, *self._params(None, namespace=None, region=None, namespaced=False).items()],
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                server_hostname=self.settings.tls_server_name,
            ) as response:
                if response.status != 200:
                    raise self._error(response.status, await _read_bounded(response, MAX_ERROR_BODY_BYTES), path)
                yield response.content
        except (aiohttp.ClientError, OSError) as error:
            raise NomadUnreachable(f"GET {path}: {_describe(error)}") from error

    # --- internals ---

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
        retryable: bool,
        guarded: bool,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        async def attempt() -> tuple[int, CIMultiDictProxy[str], bytes]:
            return await self._attempt(
                method, path, params=params, body=body, client_timeout=client_timeout, guarded=guarded
            )

        if not retryable:
            return await attempt()
        return await self.retry.call(attempt, description=f"{method} {path}")

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
        guarded: bool,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        if guarded and self.write_guard is not None:
            self.write_guard.check_write(method, path)
        session = self._require_session()
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(
                method,
                self._base_url + path,
                params=params,
                data=body,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
                server_hostname=self.settings.tls_server_name,
            ) as response:
                if response.status >= 300:
                    raise self._error(response.status, await _read_bounded(response, MAX_ERROR_BODY_BYTES), path)
                payload = await _read_bounded(response, self._max_response_bytes, refuse_larger=True)
                return response.status, response.headers, payload
        except TimeoutError as error:
            raise NomadUnreachable(f"{method} {path}: no answer in time") from error
        except (aiohttp.ClientError, OSError) as error:
            raise NomadUnreachable(f"{method} {path}: {_describe(error)}") from error
        except _BodyTooLarge as error:
            raise InvalidResponse(
                f"{method} {path}: the answer exceeds {self._max_response_bytes} bytes; refused to hold it"
            ) from error

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the Nomad client is not open: use `async with NomadClient(...) as client:`")
        return self._session

    def _headers(self) -> dict[str, str]:
        token = self._tokens.current()
        return {"X-Nomad-Token": token} if token else {}

    def _params(
        self, params: Mapping[str, str | int] | None, *, namespace: str | None, region: str | None, namespaced: bool
    ) -> dict[str, str]:
        query = {key: str(value) for key, value in params.items()} if params else {}
        if namespaced:
            chosen_namespace = namespace if namespace is not None else self.settings.namespace
            if chosen_namespace is not None:
                query["namespace"] = chosen_namespace
        chosen_region = region if region is not None else self.settings.region
        if chosen_region is not None:
            query["region"] = chosen_region
        return query

    def _error(self, status: int, body: bytes, path: str) -> APIError:
        error = error_from_response(status, body, path)
        redacted = self._tokens.redact(error.message)
        if redacted != error.message:
            error = error_from_response(status, redacted.encode(), path)
        return error

    @staticmethod
    def _decode(payload: bytes, method: str, path: str) -> Any:
        if not payload:
            return None
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise InvalidResponse(f"{method} {path}: the answer is not JSON ({len(payload)} bytes)") from error


class _BodyTooLarge(Exception):
    pass


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, *, refuse_larger: bool = False) -> bytes:
    """The body, at most `limit` bytes: longer ones are refused (`refuse_larger`) or cut (error texts)."""
    length = response.content_length
    if length is not None and length <= limit:
        return await response.read()
    if length is not None and refuse_larger:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            if refuse_larger:
                raise _BodyTooLarge
            break
    return b"".join(chunks)[:limit]


def _header_int(headers: Mapping[str, str], name: str, path: str) -> int:
    raw = headers.get(name)
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise InvalidResponse(f"{path}: header {name} is not an integer: {raw[:40]!r}") from None


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"
