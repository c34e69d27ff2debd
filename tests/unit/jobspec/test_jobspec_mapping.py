"""The mapper on evaluated bodies built by hand: Nomad's field names, order, zero values and jobspec2's rules."""

from __future__ import annotations

from typing import Any

import pytest

from nomad_operator.jobspec.body import Attribute, Block, Value
from nomad_operator.jobspec.errors import JobspecError, JobspecErrors, SourcePos
from nomad_operator.jobspec.mapping import map_job
from nomad_operator.jobspec.schema import STRUCTS

FILE = "test.nomad"


def block(type_: str, *labels: str, line: int = 1, blocks: list[Block] | None = None, **attributes: Any) -> Block:
    """A block whose attributes sit on the lines after its own."""
    attrs = {
        name: Attribute(name, value, SourcePos(FILE, line + index + 1, 3))
        for index, (name, value) in enumerate(attributes.items())
    }
    return Block(type_, tuple(labels), SourcePos(FILE, line, 1), attrs, blocks or [])


def root(*blocks: Block) -> Block:
    return Block("", (), SourcePos(FILE, 1, 1), {}, list(blocks))


def job_of(*blocks: Block, **attributes: Value) -> dict[str, Value]:
    return map_job(root(block("job", "example", blocks=list(blocks), **attributes)))


def errors_of(tree: Block) -> list[str]:
    with pytest.raises(JobspecError) as caught:
        map_job(tree)
    error = caught.value
    return [str(e) for e in (error.errors if isinstance(error, JobspecErrors) else [error])]


def first_task(job: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = job["TaskGroups"][0]["Tasks"][0]
    return task


def simple_task(*blocks: Block, **attributes: Value) -> dict[str, Any]:
    job = job_of(block("group", "g", blocks=[block("task", "t", blocks=list(blocks), **attributes)]))
    return first_task(job)


def test_every_field_present_in_go_order_with_zero_values() -> None:
    job = job_of(block("group", "cache", blocks=[block("task", "redis", driver="docker")]))
    assert list(job) == [field.json for field in STRUCTS["Job"].fields]
    assert job["ID"] == "example"
    assert job["Name"] == "example"
    assert job["Region"] is None
    assert job["Dispatched"] is False
    assert job["Payload"] is None
    task = first_task(job)
    assert task["Driver"] == "docker"
    assert task["User"] == ""
    assert task["ShutdownDelay"] == 0
    assert task["Leader"] is False
    assert task["Resources"] is None
    assert "CSIPluginConfig" not in task  # the one omitempty field


def test_id_and_name_attributes_win_over_the_label() -> None:
    job = job_of(id="real-id", name="Real Name")
    assert (job["ID"], job["Name"]) == ("real-id", "Real Name")


def test_durations_become_nanoseconds_and_numbers_stay_nanoseconds() -> None:
    task = simple_task(kill_timeout="1m30s", shutdown_delay=250)
    assert task["KillTimeout"] == 90_000_000_000
    assert task["ShutdownDelay"] == 250


def test_renamed_attributes_and_lenient_conversions() -> None:
    task = simple_task(block("resources", cpu="500", memory=256, memory_max=512), block("logs", max_file_size=15))
    assert task["Resources"]["CPU"] == 500
    assert task["Resources"]["MemoryMB"] == 256
    assert task["Resources"]["MemoryMaxMB"] == 512
    assert task["LogConfig"]["MaxFileSizeMB"] == 15


def test_numbers_become_strings_where_a_string_is_wanted() -> None:
    task = simple_task(user=1000, kill_signal=True)
    assert task["User"] == "1000"
    assert task["KillSignal"] == "true"


def test_ports_split_into_reserved_and_dynamic() -> None:
    network = block(
        "network",
        blocks=[
            block("port", "http", to=8080),
            block("port", "admin", static=9000),
            block("reserved_ports", "x", static=1),
        ],
        mode="bridge",
    )
    job = job_of(block("group", "g", blocks=[network, block("task", "t")]))
    result = job["TaskGroups"][0]["Networks"][0]
    assert result["Mode"] == "bridge"
    assert result["DynamicPorts"] == [
        {"Label": "http", "Value": 0, "To": 8080, "HostNetwork": "", "IgnoreCollision": False}
    ]
    assert [port["Label"] for port in result["ReservedPorts"]] == ["admin"]


def test_only_static_ports_leave_dynamic_ports_null() -> None:
    network = block("network", blocks=[block("port", "admin", static=9000)])
    job = job_of(block("group", "g", blocks=[network]))
    assert job["TaskGroups"][0]["Networks"][0]["DynamicPorts"] is None


def test_constraint_shorthands_and_default_operand() -> None:
    job = job_of(
        block("constraint", attribute="${attr.kernel.name}", value="linux"),
        block("constraint", distinct_hosts=True),
        block("constraint", distinct_property="${meta.rack}", value=2),
        block("constraint", attribute="${attr.os.version}", version=">= 1.2"),
    )
    assert job["Constraints"] == [
        {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="},
        {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"},
        {"LTarget": "${meta.rack}", "RTarget": "2", "Operand": "distinct_property"},
        {"LTarget": "${attr.os.version}", "RTarget": ">= 1.2", "Operand": "version"},
    ]


def test_affinity_weight_is_an_int8() -> None:
    job = job_of(block("affinity", attribute="${node.class}", value="fast", weight=40))
    assert job["Affinities"] == [{"LTarget": "${node.class}", "RTarget": "fast", "Operand": "=", "Weight": 40}]
    messages = errors_of(root(block("job", "j", blocks=[block("affinity", weight=300)])))
    assert messages == [
        f"{FILE}:2,3: Unsuitable value type; Unsuitable value: value must be a whole number, between -128 and 127"
    ]


def test_meta_as_attribute_or_block_becomes_strings() -> None:
    from_block = job_of(block("meta", count=3, flag=True))
    from_attribute = job_of(meta={"count": 3, "flag": True, "with.dot": "x"})
    assert from_block["Meta"] == {"count": "3", "flag": "true"}
    assert from_attribute["Meta"] == {"count": "3", "flag": "true", "with.dot": "x"}


def test_meta_as_attribute_and_block_together_is_an_error() -> None:
    messages = errors_of(root(block("job", "j", blocks=[block("meta", line=5, a="1")], meta={"b": "2"})))
    assert len(messages) == 1
    assert messages[0].startswith(f"{FILE}:5,1: Duplicate meta block;")


def test_free_config_keeps_keys_and_wraps_nested_blocks_in_lists() -> None:
    config = block(
        "config", blocks=[block("labels", FOO="bar"), block("mount", "a", type="bind")], image="redis", ports=["db"]
    )
    task = simple_task(config)
    assert task["Config"] == {
        "image": "redis",
        "labels": [{"FOO": "bar"}],
        "mount": [{"a": [{"type": "bind"}]}],
        "ports": ["db"],
    }


def test_config_object_attribute_is_wrapped_like_nomad_does() -> None:
    task = simple_task(block("config", logging={"type": "journald"}, count=2.0))
    assert task["Config"] == {"count": 2, "logging": [{"type": "journald"}]}


def test_job_level_task_becomes_its_own_group_before_the_others() -> None:
    job = job_of(block("group", "later", blocks=[block("task", "b")]), block("task", "alone", driver="exec"))
    assert [group["Name"] for group in job["TaskGroups"]] == ["alone", "later"]
    assert job["TaskGroups"][0]["Tasks"][0]["Driver"] == "exec"
    assert job["TaskGroups"][0]["Count"] is None


def test_vault_inherits_job_then_group_and_gets_defaults() -> None:
    job = job_of(
        block("vault", policies=["job"]),
        block(
            "group",
            "g",
            blocks=[
                block("vault", policies=["group"]),
                block("task", "a"),
                block("task", "b", blocks=[block("vault", role="r")]),
            ],
        ),
        block("group", "h", blocks=[block("task", "c")]),
    )
    vaults = [task["Vault"] for group in job["TaskGroups"] for task in group["Tasks"]]
    assert [v["Policies"] for v in vaults] == [["group"], None, ["job"]]
    assert vaults[1]["Role"] == "r"
    assert all(v["Env"] is True and v["DisableFile"] is False and v["ChangeMode"] == "restart" for v in vaults)


def test_group_secrets_go_to_tasks_without_any_and_job_secrets_to_all() -> None:
    group = block(
        "group",
        "g",
        blocks=[
            block("secret", "gs", provider="nomad"),
            block("task", "plain"),
            block("task", "own", blocks=[block("secret", "ts")]),
        ],
    )
    job = job_of(block("secret", "js"), group)
    names = [[s["Name"] for s in task["Secrets"]] for task in job["TaskGroups"][0]["Tasks"]]
    # jobspec2's quirk at this version: a task with secrets of its own gets them twice and not the group's.
    assert names == [["gs", "js"], ["ts", "ts", "js"]]


def test_default_identity_moves_to_task_identity() -> None:
    task = simple_task(block("identity", env=True, file=True), block("identity", name="vault", aud=["x"], ttl="1h"))
    assert task["Identity"]["Env"] is True
    assert task["Identity"]["Name"] == ""
    assert [i["Name"] for i in task["Identities"]] == ["vault"]
    assert task["Identities"][0]["TTL"] == 3_600_000_000_000


def test_template_and_change_script_defaults() -> None:
    task = simple_task(
        block("template", blocks=[block("change_script", command="/bin/reload")], data="x", destination="local/x")
    )
    template = task["Templates"][0]
    assert (template["ChangeMode"], template["Perms"], template["Splay"], template["ErrMissingKey"]) == (
        "restart",
        "0644",
        5_000_000_000,
        False,
    )
    assert template["ChangeScript"] == {
        "Command": "/bin/reload",
        "Args": [],
        "Timeout": 5_000_000_000,
        "FailOnError": False,
        "RunOnFirstRender": False,
    }


def test_task_scaling_blocks_by_label() -> None:
    task = simple_task(block("scaling", "cpu", max=1000), block("scaling", "MEM", min=64, max=512))
    assert [(p["Type"], p["Max"]) for p in task["ScalingPolicies"]] == [("vertical_cpu", 1000), ("vertical_mem", 512)]


def test_task_scaling_with_a_bad_label_is_an_error() -> None:
    tree = root(
        block(
            "job",
            "j",
            blocks=[block("group", "g", blocks=[block("task", "t", blocks=[block("scaling", "disk", line=9)])])],
        )
    )
    assert errors_of(tree) == [
        f'{FILE}:9,1: Invalid scaling policy type; A task scaling block must be labelled "cpu" or "mem", not "disk".'
    ]


def test_group_scaling_defaults_to_horizontal_and_requires_max() -> None:
    job = job_of(block("group", "g", blocks=[block("scaling", min=1, max=3)]))
    assert job["TaskGroups"][0]["Scaling"]["Type"] == "horizontal"
    tree = root(block("job", "j", blocks=[block("group", "g", blocks=[block("scaling", line=4, min=1)])]))
    assert errors_of(tree) == [
        f'{FILE}:4,1: Missing required argument; The argument "max" is required, but no definition was found.'
    ]


def test_volumes_are_keyed_by_label_and_sorted() -> None:
    group = block(
        "group", "g", blocks=[block("volume", "zeta", type="host"), block("volume", "alpha", type="csi", source="x")]
    )
    volumes = job_of(group)["TaskGroups"][0]["Volumes"]
    assert list(volumes) == ["alpha", "zeta"]
    assert volumes["alpha"]["Name"] == "alpha"
    assert volumes["alpha"]["Source"] == "x"


def test_periodic_sets_spec_type() -> None:
    job = job_of(block("periodic", crons=["0 * * * *"], prohibit_overlap=True), type="batch")
    assert job["Periodic"] == {
        "Enabled": None,
        "Spec": None,
        "Specs": ["0 * * * *"],
        "SpecType": "cron",
        "ProhibitOverlap": True,
        "TimeZone": None,
    }


def test_service_checks_print_every_field() -> None:
    service = block(
        "service", blocks=[block("check", type="http", path="/health", interval="10s", timeout="2s")], port="http"
    )
    job = job_of(block("group", "g", blocks=[service]))
    check = job["TaskGroups"][0]["Services"][0]["Checks"][0]
    assert list(check) == [field.json for field in STRUCTS["ServiceCheck"].fields]
    assert (check["Interval"], check["Timeout"], check["Expose"], check["Header"]) == (
        10_000_000_000,
        2_000_000_000,
        False,
        None,
    )


def test_every_error_of_a_file_is_reported_with_line_and_name() -> None:
    task = block("task", "t", line=3, blocks=[block("resourcez", line=10)], driver=["docker"], colour="red")
    group = block("group", "g", line=2, blocks=[task, block("restart", line=20), block("restart", line=30)])
    messages = errors_of(root(block("job", "j", blocks=[group])))
    assert messages == [
        f'{FILE}:4,3: Incorrect attribute value type; Inappropriate value for attribute "driver": string required.',
        f'{FILE}:5,3: Unsupported argument; An argument named "colour" is not expected here.',
        f'{FILE}:10,1: Unsupported block type; Blocks of type "resourcez" are not expected here. '
        'Did you mean "resources"?',
        f"{FILE}:30,1: Duplicate restart block; Only one restart block is allowed. Another was defined at {FILE}:20,1.",
    ]


def test_block_written_as_attribute_gets_a_hint() -> None:
    tree = root(block("job", "j", blocks=[block("group", "g", blocks=[block("task", "t", resources={"cpu": 1})])]))
    assert errors_of(tree) == [
        f'{FILE}:2,3: Unsupported argument; An argument named "resources" is not expected here. '
        'Did you mean to define a block of type "resources"?'
    ]


def test_labels_are_checked() -> None:
    tree = root(block("job", "j", blocks=[block("group", line=2), block("update", "extra", line=3)]))
    assert errors_of(tree) == [
        f"{FILE}:2,1: Missing name for group; All group blocks must have 1 labels (name).",
        f"{FILE}:3,1: Extraneous label for update; No labels are expected for update blocks.",
    ]


def test_no_job_and_two_jobs_are_errors() -> None:
    assert errors_of(root()) == [f"{FILE}:1,1: Missing job block; A job file must define exactly one job block."]
    two = root(block("job", "a", line=1), block("job", "b", line=7))
    assert errors_of(two) == [
        f"{FILE}:7,1: Duplicate job block; Only one job block is allowed. Another was defined at {FILE}:1,1."
    ]


def test_required_attribute_missing() -> None:
    tree = root(
        block(
            "job",
            "j",
            blocks=[
                block("group", "g", blocks=[block("task", "t", blocks=[block("lifecycle", line=6, sidecar=True)])])
            ],
        )
    )
    assert errors_of(tree) == [
        f'{FILE}:6,1: Missing required argument; The argument "hook" is required, but no definition was found.'
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10x", 'time: unknown unit "x" in duration "10x"'),
        ("10", 'time: missing unit in duration "10"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("", 'time: invalid duration ""'),
    ],
)
def test_bad_durations_name_the_go_error(value: str, message: str) -> None:
    tree = root(block("job", "j", blocks=[block("group", "g", blocks=[block("task", "t", kill_timeout=value)])]))
    assert errors_of(tree) == [f"{FILE}:2,3: Unsuitable duration value; {message}"]
