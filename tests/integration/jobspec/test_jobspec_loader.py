"""Loading job files from disk: identity and spec hash, the content-hash cache, the process pool, the API parse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nomad_operator.jobspec.errors import JobspecError, JobspecErrors
from nomad_operator.jobspec.loader import JobLoader, LoadedJob, load_job, parse_for_api

JOB = """
variable "image" {
  type    = string
  default = "redis:7"
}

job "cache" {
  namespace = "apps"
  group "g" {
    task "redis" {
      driver = "docker"
      config {
        image = var.image
      }
    }
  }
}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def broken(name: str) -> str:
    return f'job "{name}" {{\n  group "g" {{\n    count = "many"\n  }}\n}}\n'


def test_load_job_returns_the_job_and_its_identity(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    loaded = load_job(path, variables={"image": "redis:8"})
    assert (loaded.job_id, loaded.namespace, loaded.source_path) == ("cache", "apps", str(path))
    assert loaded.job["TaskGroups"][0]["Tasks"][0]["Config"] == {"image": "redis:8"}
    assert loaded.source_text == JOB
    assert len(loaded.spec_hash) == 64


def test_spec_hash_ignores_spelled_out_defaults_but_not_changes(tmp_path: Path) -> None:
    plain = load_job(write(tmp_path / "a.nomad", JOB))
    spelled = load_job(write(tmp_path / "b.nomad", JOB.replace('group "g" {', 'group "g" {\n    count = 1')))
    changed = load_job(write(tmp_path / "c.nomad", JOB.replace('group "g" {', 'group "g" {\n    count = 2')))
    assert plain.spec_hash == spelled.spec_hash
    assert plain.spec_hash != changed.spec_hash


def test_spec_hash_is_stable_across_processes(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    code = "import sys; from pathlib import Path; from nomad_operator.jobspec import load_job; "
    code += "print(load_job(Path(sys.argv[1])).spec_hash)"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == load_job(path).spec_hash


def test_environment_supplies_nomad_var_values(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    loaded = load_job(path, environ={"NOMAD_VAR_image": "redis:6", "HOME": "/x"})
    assert loaded.job["TaskGroups"][0]["Tasks"][0]["Config"] == {"image": "redis:6"}


def test_cache_hits_until_content_or_inputs_change(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    with JobLoader(max_workers=0) as loader:
        first = loader.load(path)
        assert loader.load(path) is first
        assert loader.load(path, environ={"HOME": "/elsewhere"}) is first  # irrelevant environment
        assert loader.conversions == 1
        assert loader.load(path, variables={"image": "x"}) is not first
        assert loader.load(path, environ={"NOMAD_VAR_image": "y"}).job != first.job
        assert loader.conversions == 3
        write(path, JOB.replace("redis:7", "redis:9"))
        assert loader.load(path).job["TaskGroups"][0]["Tasks"][0]["Config"] == {"image": "redis:9"}
        assert loader.conversions == 4


def test_var_file_contents_are_part_of_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "cache.nomad", JOB)
    var_file = write(tmp_path / "vars.hcl", 'image = "a"\n')
    with JobLoader(max_workers=0) as loader:
        assert loader.load(path, var_files=[var_file]).job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "a"
        write(var_file, 'image = "bb"\n')
        assert loader.load(path, var_files=[var_file]).job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "bb"


def test_a_changed_template_file_reconverts_the_job(tmp_path: Path) -> None:
    job = JOB.replace(
        "config {",
        'template {\n        data = file("conf/app.conf")\n        destination = "local/a"\n      }\n      config {',
    )
    path = write(tmp_path / "repo" / "cache.nomad", job)
    template = write(tmp_path / "repo" / "conf" / "app.conf", "one\n")
    with JobLoader(max_workers=0) as loader:
        assert (
            loader.load(path, root_dir=tmp_path / "repo").job["TaskGroups"][0]["Tasks"][0]["Templates"][0][
                "EmbeddedTmpl"
            ]
            == "one\n"
        )
        write(template, "two, longer\n")
        again = loader.load(path, root_dir=tmp_path / "repo")
        assert again.job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] == "two, longer\n"


def test_errors_are_raised_with_positions(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.nomad", broken("bad"))
    with JobLoader(max_workers=0) as loader, pytest.raises(JobspecError) as caught:
        loader.load(path)
    detail = 'Inappropriate value for attribute "count": a number is required.'
    assert str(caught.value) == f"{path}:3,5: Incorrect attribute value type; {detail}"


async def test_load_many_in_the_pool_keeps_order_and_returns_errors_as_values(tmp_path: Path) -> None:
    big_task = "".join(f'    task "t{i}" {{\n      driver = "exec"\n    }}\n' for i in range(40))
    paths = [
        write(tmp_path / "a.nomad", JOB),
        write(tmp_path / "b.nomad", broken("b")),
        write(tmp_path / "c.nomad", f'job "big" {{\n  group "g" {{\n{big_task}  }}\n}}\n'),
        tmp_path / "missing.nomad",
    ]
    async with JobLoader(max_workers=2, pool_threshold_bytes=100) as loader:
        results = await loader.load_many(paths)
        assert isinstance(results[0], LoadedJob)
        assert results[0].job_id == "cache"
        assert isinstance(results[1], JobspecError)
        assert results[1].pos is not None
        assert (results[1].pos.file, results[1].pos.line) == (str(paths[1]), 3)
        assert isinstance(results[2], LoadedJob)
        assert len(results[2].job["TaskGroups"][0]["Tasks"]) == 40
        assert isinstance(results[3], JobspecError)
        assert "cannot read file" in str(results[3])
        conversions = loader.conversions
        again = await loader.load_many(paths)
        assert loader.conversions == conversions  # warm: nothing parsed again
        assert [type(r) for r in again] == [type(r) for r in results]
        pool = loader._pool
        assert pool is not None
    assert loader._pool is None
    with pytest.raises(RuntimeError):
        await loader.load_many(paths)


async def test_several_errors_survive_the_pool(tmp_path: Path) -> None:
    text = 'job "x" {\n  priority = "high"\n  colour = 1\n}\n' + "\n" * 200
    path = write(tmp_path / "x.nomad", text)
    async with JobLoader(max_workers=1, pool_threshold_bytes=10) as loader:
        [result] = await loader.load_many([path])
    assert isinstance(result, JobspecErrors)
    assert [e.pos.line for e in result.errors if e.pos] == [2, 3]


def test_parse_for_api_answers_like_nomads_parse_endpoint() -> None:
    job = parse_for_api(JOB, variables='image = "nginx"', canonicalize=False)
    assert job["TaskGroups"][0]["Tasks"][0]["Config"] == {"image": "nginx"}
    assert job["Region"] is None
    canonical = parse_for_api(JOB, variables=None, canonicalize=True)
    assert (canonical["Region"], canonical["TaskGroups"][0]["Count"]) == ("global", 1)


def test_parse_for_api_has_no_filesystem_and_refuses_empty_input() -> None:
    with pytest.raises(JobspecError) as caught:
        parse_for_api(JOB.replace("var.image", 'file("/etc/hostname")'), variables=None, canonicalize=False)
    assert str(caught.value).startswith("input.hcl:")
    with pytest.raises(JobspecError, match="Job spec is empty"):
        parse_for_api("  \n", variables=None, canonicalize=False)


def test_oversized_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "bin.nomad"
    binary.write_bytes(b'job "x" {}\n\xff\xfe')
    with pytest.raises(JobspecError, match="not valid UTF-8"):
        load_job(binary)
