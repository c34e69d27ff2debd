"""Errors, retries, the write guard and secrecy of the client, against a fake Nomad over real HTTP."""

from __future__ import annotations

import logging
import socket

import pytest
from nomad_fake_server import FAST_RETRY, TOKEN, FakeNomad

from nomad_operator.nomad import (
    APIError,
    BadRequest,
    Conflict,
    InvalidResponse,
    NomadClient,
    NomadSettings,
    NomadUnreachable,
    NotFound,
    NotLeader,
    PermissionDenied,
    ServerError,
    TooManyRequests,
    WriteRefused,
)

ENFORCE_TEXT = "Enforcing job modify index 5: job exists with conflicting job modify index: 9"


@pytest.mark.parametrize(
    ("status", "text", "error_class"),
    [
        (400, "Job ID hasn't been provided", BadRequest),
        (403, "Permission denied", PermissionDenied),
        (404, "job not found", NotFound),
        (429, "rate limit exceeded", TooManyRequests),
        (500, "1 error occurred:\n\t* Task group web validation failed", ServerError),
        (405, "Invalid method", APIError),
    ],
)
async def test_status_maps_to_error_class_with_nomads_text(
    fake_nomad: FakeNomad, client: NomadClient, status: int, text: str, error_class: type[APIError]
) -> None:
    fake_nomad.reply("GET", "/v1/job/web", (status, text))

    with pytest.raises(error_class) as raised:
        await client.read_job("web")

    assert type(raised.value) is error_class
    assert (raised.value.status, raised.value.message, raised.value.path) == (status, text.strip(), "/v1/job/web")


async def test_register_enforce_index_500_is_a_conflict_and_not_retried_as_5xx(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    fake_nomad.reply("PUT", "/v1/jobs", (500, ENFORCE_TEXT))

    with pytest.raises(Conflict) as raised:
        await client.register_job({"ID": "web"}, enforce_index=True, job_modify_index=5)

    assert raised.value.current is None
    assert raised.value.message == ENFORCE_TEXT
    assert len(fake_nomad.requests) == 1


async def test_variable_cas_409_is_a_conflict_carrying_the_current_variable(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    current = {"Path": "op/status", "ModifyIndex": 77, "Items": {"phase": "other"}}
    fake_nomad.reply("PUT", "/v1/var/op/status", (409, current, {"X-Nomad-Index": "77"}))

    with pytest.raises(Conflict) as raised:
        await client.put_variable("op/status", {"phase": "mine"}, cas=70)

    assert raised.value.current == current
    assert "77" in raised.value.message
    assert len(fake_nomad.requests) == 1


async def test_lock_conflict_with_a_text_body(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/var/op/leader", (409, "attempting to modify locked variable"))

    with pytest.raises(Conflict) as raised:
        await client.lock_acquire("op/leader")

    assert (raised.value.current, raised.value.message) == (None, "attempting to modify locked variable")


async def test_reads_retry_on_500_502_and_429_then_succeed(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply(
        "GET", "/v1/jobs", (500, "rpc error: No cluster leader"), (502, "Bad Gateway"), (429, "slow down"), (200, [])
    )

    result = await client.list_jobs()

    assert result.value == []
    assert len(fake_nomad.requests) == 4


async def test_retries_are_bounded_and_the_last_error_is_raised(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (503, "No cluster leader"))

    with pytest.raises(ServerError, match="No cluster leader"):
        await client.list_jobs()

    assert len(fake_nomad.requests) == FAST_RETRY.max_attempts


async def test_permanent_500_is_not_retried(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/node/n1/drain", (500, "node not found"))

    with pytest.raises(ServerError):
        await client.drain_node("n1", deadline_ns=0)

    assert len(fake_nomad.requests) == 1


async def test_connection_refused_is_retried_then_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    settings = NomadSettings(address=f"http://127.0.0.1:{port}", token=TOKEN)
    caplog.set_level(logging.DEBUG, logger="nomad_operator.nomad.retry")

    async with NomadClient(settings, retry=FAST_RETRY) as nomad:
        with pytest.raises(NomadUnreachable) as raised:
            await nomad.read_variable("op/status")

    retries = [r for r in caplog.records if r.getMessage().startswith("retrying GET /v1/var/op/status")]
    assert len(retries) == FAST_RETRY.max_attempts - 1
    assert TOKEN not in str(raised.value)


async def test_register_without_enforce_index_is_never_retried(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/jobs", (502, "Bad Gateway"), (200, {"EvalID": "e1"}))

    with pytest.raises(ServerError):
        await client.register_job({"ID": "web"})

    assert len(fake_nomad.requests) == 1


async def test_register_with_enforce_index_is_retried(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/jobs", (502, "Bad Gateway"), (200, {"EvalID": "e1", "JobModifyIndex": 3}))

    result = await client.register_job({"ID": "web"}, enforce_index=True, job_modify_index=0)

    assert result.eval_id == "e1"
    assert len(fake_nomad.requests) == 2


async def test_lock_acquire_and_evaluate_are_never_retried(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("PUT", "/v1/var/op/leader", (503, "No cluster leader"))
    fake_nomad.reply("PUT", "/v1/job/web/evaluate", (503, "No cluster leader"))

    with pytest.raises(ServerError):
        await client.lock_acquire("op/leader")
    with pytest.raises(ServerError):
        await client.evaluate_job("web")

    assert len(fake_nomad.requests) == 2


class RefuseAll:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def check_write(self, method: str, path: str) -> None:
        self.asked.append((method, path))
        raise NotLeader(f"not the leader: refusing {method} {path}")


class AllowOnce:
    """Leadership lost between two attempts of the same call."""

    def __init__(self) -> None:
        self.calls = 0

    def check_write(self, method: str, path: str) -> None:
        self.calls += 1
        if self.calls > 1:
            raise NotLeader("lost the lock")


async def test_write_guard_refuses_writes_before_anything_is_sent(fake_nomad: FakeNomad, client: NomadClient) -> None:
    guard = RefuseAll()
    client.write_guard = guard

    with pytest.raises(NotLeader):
        await client.register_job({"ID": "web"}, enforce_index=True)
    with pytest.raises(WriteRefused):
        await client.put_variable("op/status", {"a": "b"}, cas=0)
    with pytest.raises(WriteRefused):
        await client.drain_node("n1", deadline_ns=0)

    assert fake_nomad.requests == []
    assert guard.asked == [("PUT", "/v1/jobs"), ("PUT", "/v1/var/op/status"), ("PUT", "/v1/node/n1/drain")]


async def test_write_guard_does_not_block_lock_calls_reads_plans_or_parses(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    guard = RefuseAll()
    client.write_guard = guard
    fake_nomad.reply("PUT", "/v1/var/op/leader", (200, {"Path": "op/leader", "Lock": {"ID": "l1"}}))
    fake_nomad.reply("GET", "/v1/jobs", (200, []))
    fake_nomad.reply("PUT", "/v1/job/web/plan", (200, {"Diff": None}))
    fake_nomad.reply("PUT", "/v1/jobs/parse", (200, {"ID": "web"}))

    await client.lock_acquire("op/leader")
    await client.lock_renew("op/leader", "l1")
    await client.lock_release("op/leader", "l1")
    await client.list_jobs()
    await client.plan_job({"ID": "web"})
    await client.parse_job('job "web" {}')

    assert len(fake_nomad.requests) == 6
    assert guard.asked == []


async def test_write_guard_is_asked_again_before_a_retry(fake_nomad: FakeNomad, client: NomadClient) -> None:
    client.write_guard = AllowOnce()
    fake_nomad.reply("PUT", "/v1/var/op/status", (503, "No cluster leader"), (200, {"Path": "op/status"}))

    with pytest.raises(NotLeader):
        await client.put_variable("op/status", {"a": "b"})

    assert len(fake_nomad.requests) == 1


async def test_token_never_appears_in_repr_or_error_texts(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/acl/token/self", (403, f"ACL token {TOKEN} not found: Permission denied"))

    with pytest.raises(PermissionDenied) as raised:
        await client.acl_token_self()

    assert TOKEN not in str(raised.value)
    assert TOKEN not in raised.value.message
    assert "<redacted>" in raised.value.message
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client.settings)
    assert fake_nomad.requests[0].headers["X-Nomad-Token"] == TOKEN


async def test_long_error_bodies_are_cut(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/job/web", (404, "<html>" + "x" * 100_000 + "</html>"))

    with pytest.raises(NotFound) as raised:
        await client.read_job("web")

    assert len(raised.value.message) <= 500
    assert raised.value.message.startswith("<html>")


async def test_success_with_a_non_json_body_is_an_invalid_response(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, b"<html>proxy login</html>"))

    with pytest.raises(InvalidResponse, match="not JSON"):
        await client.list_jobs()


async def test_a_body_over_the_limit_is_refused(fake_nomad: FakeNomad) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, [{"ID": f"job-{n}"} for n in range(1000)]))

    async with NomadClient(NomadSettings(address=fake_nomad.url), max_response_bytes=1024) as nomad:
        with pytest.raises(InvalidResponse, match="exceeds 1024 bytes"):
            await nomad.list_jobs()


async def test_a_malformed_index_header_is_an_invalid_response(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, [], {"X-Nomad-Index": "forty"}))

    with pytest.raises(InvalidResponse, match="X-Nomad-Index"):
        await client.list_jobs()


async def test_redirects_are_not_followed(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (307, "", {"Location": f"{fake_nomad.url}/elsewhere"}))

    with pytest.raises(APIError) as raised:
        await client.list_jobs()

    assert raised.value.status == 307
    assert fake_nomad.sent("GET", "/elsewhere") == []


async def test_bad_arguments_are_refused_before_sending(fake_nomad: FakeNomad, client: NomadClient) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await client.lock_acquire("op/leader", ttl=5)
    with pytest.raises(ValueError, match="no ID"):
        await client.plan_job({"Name": "web"})
    with pytest.raises(ValueError, match="empty"):
        await client.read_job("")
    with pytest.raises(ValueError, match="empty"):
        await client.read_variable("/")
    with pytest.raises(TypeError, match="strings"):
        await client.put_variable("op/status", {"count": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="negative"):
        await client.scale_job("web", group="web", count=-1)
    assert fake_nomad.requests == []


async def test_a_client_that_is_not_open_says_so() -> None:
    nomad = NomadClient(NomadSettings())
    with pytest.raises(RuntimeError, match="async with"):
        await nomad.list_jobs()
