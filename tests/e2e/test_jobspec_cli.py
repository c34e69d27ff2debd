"""`nomad-operator render` and `validate` as real processes: output, exit codes, and the check against a server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from nomad_operator.jobspec.loader import parse_for_api

JOB = """variable "image" {
  type    = string
  default = "redis:7"
}

job "cache" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "db" {
        to = 6379
      }
    }
    task "redis" {
      driver = "docker"
      config {
        image = var.image
        args  = ["<&>"]
      }
    }
  }
}
"""
BROKEN = 'job "bad" {\n  group "g" {\n    count = "many"\n    colour = 1\n  }\n}\n'


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nomad_operator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_render_prints_the_job_like_nomad_job_run_output(tmp_path: Path) -> None:
    result = cli("render", str(write(tmp_path / "cache.nomad", JOB)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        '{\n    "Job": {\n        "Region": null,\n        "Namespace": null,\n        "ID": "cache",'
    )
    assert result.stdout.endswith("}\n")
    assert '"\\u003c\\u0026\\u003e"' in result.stdout  # Go escapes <, & and >
    job = json.loads(result.stdout)["Job"]
    assert job["TaskGroups"][0]["Tasks"][0]["Config"] == {"args": ["<&>"], "image": "redis:7"}
    assert job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] == 6379


def test_render_with_variables_and_canonicalize(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    var_file = write(tmp_path / "prod.hcl", 'image = "from-file"\n')
    from_file = json.loads(cli("render", str(path), "-var-file", str(var_file)).stdout)["Job"]
    assert from_file["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "from-file"
    result = cli("render", str(path), "-var-file", str(var_file), "-var", "image=from-flag", "--canonicalize")
    job = json.loads(result.stdout)["Job"]
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "from-flag"
    assert (job["Region"], job["Priority"], job["TaskGroups"][0]["Count"]) == ("global", 50, 1)


def test_render_of_a_broken_file_lists_its_errors_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.nomad", BROKEN)
    result = cli("render", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{path}:3,5: Incorrect attribute value type; Inappropriate value for attribute "count": a number is required.',
        f'{path}:4,5: Unsupported argument; An argument named "colour" is not expected here.',
    ]


def test_render_usage_errors_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    bad_var = cli("render", str(path), "-var", "no-equals-sign")
    assert bad_var.returncode == 2
    assert "expected KEY=VALUE" in bad_var.stderr
    assert cli("render").returncode == 2


def test_validate_walks_trees_lists_every_error_and_summarises(tmp_path: Path) -> None:
    good = write(tmp_path / "repo" / "apps" / "cache.nomad", JOB)
    write(tmp_path / "repo" / "apps" / "web.nomad.hcl", JOB.replace('"cache"', '"web"'))
    write(tmp_path / "repo" / "vars" / "prod.hcl", 'image = "x"\n')  # .hcl without a job block: not a job file
    write(tmp_path / "repo" / ".git" / "x.nomad", BROKEN)  # hidden folders are skipped
    bad = write(tmp_path / "repo" / "broken" / "bad.nomad", BROKEN)
    result = cli("validate", str(tmp_path / "repo"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f'{bad}:3,5: Incorrect attribute value type; Inappropriate value for attribute "count": a number is required.',
        f'{bad}:4,5: Unsupported argument; An argument named "colour" is not expected here.',
        "3 job files checked: 2 valid, 1 invalid, 2 errors",
    ]
    ok = cli("validate", str(good), str(tmp_path / "repo" / "apps"))
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.splitlines()[-1] == "3 job files checked: 3 valid, 0 invalid, 0 errors"


def test_validate_of_a_missing_path_or_an_empty_tree_fails(tmp_path: Path) -> None:
    missing = cli("validate", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stdout.splitlines()[0] == f"{tmp_path / 'nope'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    empty = cli("validate", str(tmp_path / "empty"))
    assert empty.returncode == 1
    assert "no job files found" in empty.stdout


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nomad_operator", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_validate_against_server_prints_field_differences(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    ours = parse_for_api(JOB, variables='image = "v"', canonicalize=False)
    answers: list[dict[str, Any]] = [json.loads(json.dumps(ours)), json.loads(json.dumps(ours))]
    answers[1]["Priority"] = 70
    answers[1]["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "other"
    received: list[tuple[dict[str, Any], str | None]] = []

    async def parse(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get("X-Nomad-Token")))
        return web.json_response(answers[len(received) - 1])

    app = web.Application()
    app.router.add_post("/v1/jobs/parse", parse)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        env = {"NOMAD_ADDR": f"http://127.0.0.1:{port}", "NOMAD_TOKEN": "secret-token"}
        same_code, same_out = await run_cli("validate", "--against-server", str(path), "-var", "image=v", env=env)
        diff_code, diff_out = await run_cli("validate", "--against-server", str(path), "-var", "image=v", env=env)
    finally:
        await runner.cleanup()
    assert (same_code, same_out.splitlines()) == (
        0,
        ["1 job files checked: 1 valid, 0 invalid, 0 errors; 0 differ from Nomad"],
    )
    assert diff_code == 1
    assert diff_out.splitlines() == [
        f"{path}: Job.Priority: ours null, Nomad 70",
        f'{path}: Job.TaskGroups[0].Tasks[0].Config.image: ours "v", Nomad "other"',
        "1 job files checked: 1 valid, 0 invalid, 0 errors; 1 differ from Nomad",
    ]
    body, token = received[0]
    assert token == "secret-token"
    assert body == {"JobHCL": JOB, "Canonicalize": False, "Variables": 'image = "v"'}


async def test_validate_against_an_unreachable_server_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    code, output = await run_cli(
        "validate", "--against-server", str(path), env={"NOMAD_ADDR": f"http://127.0.0.1:{port}"}
    )
    assert code == 1
    assert f"{path}: cannot check against Nomad at http://127.0.0.1:{port}" in output
