"""Structured logs: a reconcile's log lines carry its controller and key, as JSON or key=value, and nothing leaks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import orjson
import pytest

from nomad_operator.nomad import NomadClient
from nomad_operator.runtime import Controller, ObjectKey, Result, Watch
from nomad_operator.runtime.logging import configure_logging, current_log_context, log_context
from nomad_operator.testing import eventually

if TYPE_CHECKING:
    from nomad_operator.testing.fixtures import OperatorFactory

pytest_plugins = ["nomad_operator.testing.fixtures"]

app_log = logging.getLogger("example.app")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, list[logging.Handler]]]:
    """The root logger's handlers and level, restored after the test."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    yield stream, handlers
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


async def test_a_reconcile_logs_with_its_controller_and_key_as_json(
    captured: tuple[io.StringIO, list[logging.Handler]],
    nomad_client: NomadClient,
    operator_factory: OperatorFactory,
) -> None:
    stream, _ = captured
    configure_logging(level="INFO", log_format="json", stream=stream)

    async def chatty(key: ObjectKey) -> Result:
        app_log.info("looked at it", extra={"attempt": 1})
        return Result()

    await operator_factory([Controller("chatty", reconcile=chatty, watches=[Watch("Job", fields=("Status",))])])
    await nomad_client.register_job(
        {"ID": "web", "Name": "web", "Type": "batch", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [
            {"Name": "t", "Driver": "exec", "Config": {}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}
    )  # fmt: skip

    def reconcile_lines() -> list[dict[str, object]]:
        entries = [orjson.loads(line) for line in stream.getvalue().splitlines() if line]
        return [entry for entry in entries if entry["message"] == "looked at it"]

    entry = (await eventually(reconcile_lines, what="the reconcile's log line"))[0]
    assert entry["controller"] == "chatty"
    assert entry["key"] == "Job/default/web"
    assert entry["attempt"] == 1
    assert entry["logger"] == "example.app"
    assert current_log_context() == {}  # nothing leaked out of the reconcile's task


def test_key_value_lines_quote_what_needs_it_and_context_nests(
    captured: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    stream, _ = captured
    configure_logging(level="DEBUG", log_format="text", stream=stream)
    with log_context(controller="gitops"):
        with log_context(key="Job/default/web"):
            app_log.warning('plan says "replace"')
        app_log.debug("between keys")
    line, between = stream.getvalue().splitlines()
    assert "level=WARNING logger=example.app controller=gitops key=Job/default/web" in line
    assert line.endswith('msg="plan says \\"replace\\""')
    assert "controller=gitops" in between
    assert "key=" not in between


def test_configuring_twice_replaces_our_handler_and_bad_settings_are_refused(
    captured: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    _, before = captured
    configure_logging(log_format="text", stream=io.StringIO())
    configure_logging(log_format="json", stream=io.StringIO())
    assert len(logging.getLogger().handlers) == len(before) + 1
    with pytest.raises(ValueError, match="log format must be one of json, text"):
        configure_logging(log_format="xml")
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging(level="LOUD")
