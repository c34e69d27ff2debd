"""A webhook that reaches a standby replica is passed on to the leader, so a push behind a load balancer is applied at
once instead of at the leader's next poll.

Every replica serves `/hooks/<source>` (fabio balances across them), but only the leader applies. The leader records
the address its HTTP server is reachable at in the Variable `nomad-operator/leader-endpoint` (a CAS write, through the
write guard: only a leader can); a standby that verified a push re-sends it to that address as a generic HMAC webhook
(`X-Signature: sha256=...` over `{"ref", "after"}`), signed with the source's own webhook secret, so the leader trusts
it for the same reason it trusts the git host, and no new credential exists between replicas. The hazards:
- **loops**: a forwarded request carries `X-Delivery: nomad-operator-forwarded:<identity>` and is never forwarded again
  (a replica that is not the leader any more only wakes itself);
- **no reachable leader** (an election in progress, a stale address): the push is refused with an error, so the sender
  sees a failed delivery and can redeliver, rather than a 202 for a push nobody will apply soon;
- **a slow leader** never holds the standby's request long: the forward has a short timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

import aiohttp
import orjson

from nomad_operator.nomad import Conflict, NomadError, NotFound, NotLeader, QueryResult
from nomad_operator.nomad.results import JSONObject
from nomad_operator.server.webhooks import PushEvent

log = logging.getLogger(__name__)

LEADER_ENDPOINT_PATH: Final = "nomad-operator/leader-endpoint"
ADDRESS_ITEM: Final = "address"
IDENTITY_ITEM: Final = "identity"
FORWARDED_PREFIX: Final = "nomad-operator-forwarded:"
FORWARD_TIMEOUT_SECONDS: Final = 3.0
ENDPOINT_CACHE_SECONDS: Final = 1.0
PUBLISH_ATTEMPTS: Final = 3


class ForwardFailed(Exception):
    """No leader could be told of the push; the webhook answers with an error so the sender can redeliver."""


class VariableAccess(Protocol):
    async def read_variable(self, path: str) -> QueryResult[JSONObject]: ...

    async def put_variable(self, path: str, items: dict[str, str], *, cas: int | None = None) -> JSONObject: ...


def is_forwarded(event: PushEvent) -> bool:
    return (event.delivery or "").startswith(FORWARDED_PREFIX)


def forwarded_request(event: PushEvent, secret: bytes, *, identity: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a generic signed webhook that says the same as `event`. Pure."""
    body = orjson.dumps({"ref": event.ref, "after": event.after})
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature": signature,
               "X-Delivery": f"{FORWARDED_PREFIX}{identity}"[:128]}  # fmt: skip
    return body, headers


class LeaderEndpoint:
    """Publishes this replica's address while it leads; tells a standby where the leader listens."""

    def __init__(
        self,
        nomad: VariableAccess,
        *,
        identity: str,
        advertise: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nomad = nomad
        self.identity = identity
        self.advertise = advertise.rstrip("/") if advertise else None
        self._clock = clock
        self._seen: tuple[float, str | None] | None = None

    async def publish(self) -> bool:
        """Record our address (call when leadership is won); False when it could not be written."""
        if self.advertise is None:
            return False
        items = {ADDRESS_ITEM: self.advertise, IDENTITY_ITEM: self.identity}
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                try:
                    current = (await self._nomad.read_variable(LEADER_ENDPOINT_PATH)).value
                    index = int(current.get("ModifyIndex") or 0)
                    if current.get("Items") == items:
                        return True
                except NotFound:
                    index = 0
                await self._nomad.put_variable(LEADER_ENDPOINT_PATH, items, cas=index)
                log.info("leader endpoint recorded: %s", self.advertise)
                return True
            except Conflict:
                continue
            except (NotLeader, NomadError) as exc:
                log.warning("cannot record the leader endpoint: %s", exc)
                return False
        return False

    async def leader_address(self) -> str | None:
        """The leader's address as last recorded, unless it is our own (then no other leader is known)."""
        now = self._clock()
        if self._seen is not None and now - self._seen[0] < ENDPOINT_CACHE_SECONDS:
            return self._seen[1]
        address: str | None = None
        try:
            items = (await self._nomad.read_variable(LEADER_ENDPOINT_PATH)).value.get("Items") or {}
            if items.get(IDENTITY_ITEM) != self.identity and items.get(ADDRESS_ITEM):
                address = str(items[ADDRESS_ITEM])
        except NotFound:
            address = None
        except NomadError as exc:
            log.warning("cannot read the leader endpoint: %s", exc)
        self._seen = (now, address)
        return address


class WebhookForwarder:
    """Re-sends a verified push to the leader as a generic signed webhook."""

    def __init__(self, endpoint: LeaderEndpoint) -> None:
        self._endpoint = endpoint
        self.forwarded = 0

    async def forward(self, hook_name: str, event: PushEvent, secret: bytes) -> None:
        address = await self._endpoint.leader_address()
        if address is None:
            raise ForwardFailed("this replica is a standby and no leader address is known; redeliver later")
        body, headers = forwarded_request(event, secret, identity=self._endpoint.identity)
        url = f"{address}/hooks/{hook_name}"
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, data=body,
                                                                                       headers=headers) as answer:
                if answer.status >= 300:
                    raise ForwardFailed(f"the leader at {address} answered {answer.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ForwardFailed(f"the leader at {address} cannot be reached: {type(exc).__name__}") from None
        self.forwarded += 1
        log.info("webhook %r: forwarded to the leader at %s", hook_name, address)
