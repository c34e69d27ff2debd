"""The evaluator against what Nomad yields: the `hcl2-*` pairs at the level of evaluated values, and the 32
real-world jobs of the conformance corpus (each evaluates, or fails for the precise documented reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nomad_operator.jobspec.body import Block
from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.evaluate import evaluate_file


def the_job(path: Path, **options: object) -> Block:
    root = evaluate_file(path, **options)  # type: ignore[arg-type]
    [job] = root.blocks_of("job")
    return job


def attrs(block: Block) -> dict[str, object]:
    return {name: attribute.value for name, attribute in block.attributes.items()}


def test_vars_and_functions(conformance_dir: Path) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-vars-and-functions.nomad", variables={"region_var": "aug"})
    assert attrs(job) == {"datacenters": ["DC1", "DC2"], "region": "aug"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"datacenters": ["default_dc"], "region": "default_region"}),
        (
            {"variables": {"dc_var": "set_dc", "region_var": "set_region"}},
            {"datacenters": ["set_dc"], "region": "set_region"},
        ),
        (
            {"environ": {"NOMAD_VAR_dc_var": "set_dc", "NOMAD_VAR_region_var": "set_region"}},
            {"datacenters": ["set_dc"], "region": "set_region"},
        ),
        (
            {"var_files": [("vars.hcl", 'dc_var = "set_dc"\nregion_var = "set_region"')]},
            {"datacenters": ["set_dc"], "region": "set_region"},
        ),
    ],
)
def test_variables_defaults_and_set(
    conformance_dir: Path, options: dict[str, object], expected: dict[str, object]
) -> None:
    assert attrs(the_job(conformance_dir / "pairs" / "hcl2-variables-defaults.nomad", **options)) == expected


def test_locals(conformance_dir: Path) -> None:
    path = conformance_dir / "pairs" / "hcl2-locals.nomad"
    assert attrs(the_job(path)) == {"datacenters": ["local_dc"], "region": "default_region.example"}
    assert attrs(the_job(path, variables={"region_var": "set_region"}))["region"] == "set_region.example"


@pytest.mark.parametrize(
    ("env", "datacenters", "count"),
    [("prod", ["prod-dc1", "prod-dc2"], 20), ("staging", ["dc1"], 3), ("unknown", [], 0)],
)
def test_functions_lookups(conformance_dir: Path, env: str, datacenters: list[str], count: int) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-functions-lookups.nomad", variables={"env": env})
    assert job.attributes["datacenters"].value == datacenters
    group = job.blocks_of("group")[0]
    assert group.attributes["count"].value == count
    task = group.blocks_of("task")[0]
    assert task.blocks_of("config")[0].attributes["args"].value == ["-text", f"Hello from {env}"]


def test_dynamic_groups(conformance_dir: Path) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-dynamic-groups.nomad", allow_fs=False)
    groups = job.blocks_of("group")
    assert [group.labels for group in groups] == [("groupA",), ("groupB",), ("groupC",)]
    for index, group in enumerate(groups, start=1):
        name = group.labels[0]
        assert group.attributes["count"].value == index
        assert group.blocks_of("service")[0].attributes["port"].value == name
        task = group.blocks_of("task")[0]
        assert task.blocks_of("config")[0].attributes["command"].value == name
        assert task.blocks_of("meta")[0].attributes["VERSION"].value == index
        assert task.blocks_of("env")[0].attributes["ID"].value == f"id:{index}"
        assert task.blocks_of("resources")[0].attributes["cpu"].value == index


def test_undefined_variables_stay_as_text(conformance_dir: Path) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-undefined-variables.nomad")
    assert attrs(job) == {
        "region": "foo-${attr.network.dev-us-east1-relay-vpc.external-ip.0}",
        "namespace": "${meta.mytest}",
    }


def test_task_env_for_expression(conformance_dir: Path) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-task-env-forexpr.nomad")
    task = job.blocks_of("group")[0].blocks_of("task")[0]
    assert task.attributes["env"].value == {"a": "val-a", "b": "val-b"}


def test_service_check_body_escapes(conformance_dir: Path) -> None:
    job = the_job(conformance_dir / "pairs" / "hcl2-service-check.nomad")
    check = job.blocks_of("group")[0].blocks_of("service")[0].blocks_of("check")[0]
    assert check.attributes["body"].value == '{"check":"mem"}'


def test_terraform_provider_variables_pair(conformance_dir: Path) -> None:
    pairs = conformance_dir / "pairs"
    var_file = pairs / "tfp-job-parser-variables.vars.hcl"
    job = the_job(pairs / "tfp-job-parser-variables.nomad", var_files=[(str(var_file), var_file.read_text())])
    assert job.attributes["datacenters"].value == ["dc1"]
    task = job.blocks_of("group")[0].blocks_of("task")[0]
    assert task.blocks_of("config")[0].attributes["image"].value == "redis:7.0"


def test_every_hcl2_pair_evaluates(conformance_dir: Path) -> None:
    pairs = sorted((conformance_dir / "pairs").glob("hcl2-*.nomad"))
    assert len(pairs) >= 14
    for path in pairs:
        variables = {"env": "prod"} if path.name == "hcl2-functions-lookups.nomad" else {}
        assert the_job(path, variables=variables).labels, path.name


# Jobs that need -var values (documented in the corpus README), and the values we give them.
JOB_VARIABLES: dict[str, dict[str, str]] = {
    "nomad-e2e-required-typed-variables.nomad": {"X": "x", "Y": "2", "Z": "true"},
    "nomad-e2e-task-schedule-slash-comments.nomad": {"start": "0 9 * * *", "end": "0 17 * * *"},
    "nomad-e2e-disconnect-node-vars.nomad": {"nodeID": "node-1"},
    "nomad-e2e-checks-task-restart.nomad": {"filename": "/tmp/x"},
}


def _job_files(conformance_dir: Path) -> list[Path]:
    return sorted((conformance_dir / "jobs").glob("*.nomad"))


def test_all_real_world_jobs_evaluate(conformance_dir: Path) -> None:
    files = _job_files(conformance_dir)
    assert len(files) == 32
    for path in files:
        job = the_job(path, variables=JOB_VARIABLES.get(path.name, {}), root_dir=conformance_dir / "jobs")
        assert job.labels, path.name


def test_required_variables_fail_naming_each_variable(conformance_dir: Path) -> None:
    with pytest.raises(JobspecErrors) as caught:
        evaluate_file(conformance_dir / "jobs" / "nomad-e2e-required-typed-variables.nomad")
    assert sorted(error.message.split('"')[1] for error in caught.value.errors) == ["X", "Y", "Z"]


def test_typed_variables_convert_minus_var_strings(conformance_dir: Path) -> None:
    path = conformance_dir / "jobs" / "nomad-e2e-required-typed-variables.nomad"
    with pytest.raises(JobspecErrors, match='Invalid value for variable "Y"'):
        evaluate_file(path, variables={"X": "x", "Y": "not-a-number", "Z": "true"})


def test_file_outside_the_tree_is_refused(conformance_dir: Path) -> None:
    path = conformance_dir / "jobs" / "locals-file-functions-lifecycle.nomad"
    with pytest.raises(JobspecErrors, match="outside the repository"):
        evaluate_file(path, root_dir=conformance_dir / "pairs")
    with pytest.raises(JobspecErrors, match="filesystem functions are disabled"):
        evaluate_file(path, allow_fs=False)


def test_file_contents_and_escaped_interpolations_arrive_intact(conformance_dir: Path) -> None:
    jobs = conformance_dir / "jobs"
    job = the_job(jobs / "locals-file-functions-lifecycle.nomad", root_dir=jobs)
    texts = [a.value for block in job.walk() for a in block.attributes.values() if isinstance(a.value, str)]
    assert (jobs / "files" / "telegraf.conf").read_text() in texts
    prometheus = the_job(jobs / "prometheus-escaped-interpolation.nomad")
    config = prometheus.blocks_of("group")[0].blocks_of("task")[0].blocks_of("config")[0]
    args, volumes = config.attributes["args"].value, config.attributes["volumes"].value
    assert isinstance(args, list)
    assert isinstance(volumes, list)
    assert "--config.file=${NOMAD_TASK_DIR}/prometheus.yml" in args
    assert "/storage/nomad/${NOMAD_JOB_NAME}/${NOMAD_TASK_NAME}:/prometheus" in volumes
