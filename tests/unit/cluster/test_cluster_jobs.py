"""The cluster's job files (`jobs/`): real jobspec blocks only, and the properties that keep the cluster up.

Why: these files are the repository the operator reconciles. An attribute with a typo, a lost `distinct_hosts`, an IP
address written into a template or an update without `auto_revert` each break the promise "unplug a node and
everything still works", and nothing else would notice before a real cluster does. Syntax is checked with python-hcl2;
structure against the jobspec schema below (block and attribute names read from Nomad's api package, a subset: the
structs these files use). The converter's `nomad-operator validate jobs/` test joins these when it lands.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

JOBS_DIR = Path(__file__).resolve().parents[3] / "jobs"
CLUSTER_JOBS = ("consul", "fabio", "whoami")
OPERATOR_JOB = "nomad-operator"
POLICY_FILE = JOBS_DIR / "acl" / "nomad-operator.policy.hcl"

# The operator's environment, as the lead fixed it: the job may set these and no other NOMAD_OPERATOR_* name.
OPERATOR_ENVIRONMENT = {
    "NOMAD_OPERATOR_REPO",
    "NOMAD_OPERATOR_REF",
    "NOMAD_OPERATOR_PATH",
    "NOMAD_OPERATOR_NAME",
    "NOMAD_OPERATOR_WEBHOOK_SECRET_FILE",
    "NOMAD_OPERATOR_PRUNE",
    "NOMAD_OPERATOR_LISTEN",
    "NOMAD_OPERATOR_GIT_TOKEN_FILE",
    "NOMAD_OPERATOR_GIT_SSH_KEY_FILE",
    "NOMAD_OPERATOR_GIT_KNOWN_HOSTS_FILE",
}
# Bind-all and loopback are not addresses of a node; anything else written into a job file is.
ALLOWED_IP_LITERALS = {"0.0.0.0", "127.0.0.1"}
IPV4_LITERAL = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")

# struct -> (attributes, {block: struct | "attr-map" | "free-map"}), from Nomad's api structs' hcl tags.
JOBSPEC_SCHEMA: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "Job": (
        ("region", "namespace", "id", "name", "type", "priority", "all_at_once", "datacenters", "node_pool"),
        {
            "constraint": "Constraint",
            "affinity": "Affinity",
            "group": "TaskGroup",
            "update": "UpdateStrategy",
            "multiregion": "Multiregion",
            "spread": "Spread",
            "periodic": "PeriodicConfig",
            "parameterized": "ParameterizedJobConfig",
            "reschedule": "ReschedulePolicy",
            "migrate": "MigrateStrategy",
            "meta": "attr-map",
            "ui": "JobUIConfig",
        },
    ),
    "Constraint": (
        ("attribute", "value", "operator"),
        {},
    ),
    "TaskGroup": (
        (
            "count",
            "shutdown_delay",
            "max_run_duration",
            "stop_after_client_disconnect",
            "max_client_disconnect",
            "prevent_reschedule_on_lost",
        ),
        {
            "constraint": "Constraint",
            "affinity": "Affinity",
            "task": "Task",
            "spread": "Spread",
            "volume": "VolumeRequest",
            "restart": "RestartPolicy",
            "disconnect": "DisconnectStrategy",
            "reschedule": "ReschedulePolicy",
            "ephemeral_disk": "EphemeralDisk",
            "update": "UpdateStrategy",
            "migrate": "MigrateStrategy",
            "network": "NetworkResource",
            "meta": "attr-map",
            "service": "Service",
            "scaling": "ScalingPolicy",
            "consul": "Consul",
        },
    ),
    "Task": (
        ("driver", "user", "kill_timeout", "leader", "shutdown_delay", "kill_signal", "kind"),
        {
            "lifecycle": "TaskLifecycle",
            "config": "free-map",
            "constraint": "Constraint",
            "affinity": "Affinity",
            "env": "attr-map",
            "service": "Service",
            "resources": "Resources",
            "restart": "RestartPolicy",
            "meta": "attr-map",
            "logs": "LogConfig",
            "artifact": "TaskArtifact",
            "vault": "Vault",
            "consul": "Consul",
            "template": "Template",
            "dispatch_payload": "DispatchPayloadConfig",
            "volume_mount": "VolumeMount",
            "csi_plugin": "TaskCSIPluginConfig",
            "scaling": "ScalingPolicy",
            "secret": "Secret",
            "identity": "WorkloadIdentity",
            "action": "Action",
            "schedule": "TaskSchedule",
        },
    ),
    "UpdateStrategy": (
        (
            "stagger",
            "max_parallel",
            "health_check",
            "min_healthy_time",
            "healthy_deadline",
            "progress_deadline",
            "canary",
            "auto_revert",
            "auto_promote",
        ),
        {},
    ),
    "NetworkResource": (
        ("mode", "device", "cidr", "ip", "hostname", "mbits"),
        {"dns": "DNSConfig", "reserved_ports": "Port", "port": "Port", "cni": "CNIConfig"},
    ),
    "Port": (
        ("static", "to", "host_network", "ignore_collision"),
        {},
    ),
    "VolumeRequest": (
        ("type", "source", "read_only", "sticky", "access_mode", "attachment_mode", "per_alloc"),
        {"mount_options": "CSIMountOptions"},
    ),
    "RestartPolicy": (
        ("interval", "attempts", "delay", "mode", "render_templates"),
        {},
    ),
    "Service": (
        (
            "name",
            "tags",
            "canary_tags",
            "enable_tag_override",
            "port",
            "address_mode",
            "address",
            "task",
            "on_update",
            "provider",
            "cluster",
            "kind",
        ),
        {
            "check": "ServiceCheck",
            "check_restart": "CheckRestart",
            "connect": "ConsulConnect",
            "meta": "attr-map",
            "canary_meta": "attr-map",
            "tagged_addresses": "attr-map",
            "identity": "WorkloadIdentity",
            "weights": "ServiceWeights",
        },
    ),
    "ServiceCheck": (
        (
            "name",
            "type",
            "command",
            "args",
            "path",
            "protocol",
            "port",
            "expose",
            "address_mode",
            "advertise",
            "interval",
            "timeout",
            "initial_status",
            "notes",
            "tls_server_name",
            "tls_skip_verify",
            "method",
            "grpc_service",
            "grpc_use_tls",
            "task",
            "success_before_passing",
            "failures_before_critical",
            "failures_before_warning",
            "body",
            "on_update",
        ),
        {"header": "attr-map", "check_restart": "CheckRestart"},
    ),
    "CheckRestart": (
        ("limit", "grace", "ignore_warnings"),
        {},
    ),
    "VolumeMount": (
        ("volume", "destination", "read_only", "propagation_mode", "selinux_label"),
        {},
    ),
    "Template": (
        (
            "source",
            "destination",
            "data",
            "change_mode",
            "change_signal",
            "once",
            "splay",
            "perms",
            "uid",
            "gid",
            "left_delimiter",
            "right_delimiter",
            "env",
            "vault_grace",
            "error_on_missing_key",
        ),
        {"change_script": "ChangeScript", "wait": "WaitConfig"},
    ),
    "ChangeScript": (
        ("command", "args", "timeout", "fail_on_error", "run_on_first_render"),
        {},
    ),
    "WaitConfig": (
        ("min", "max"),
        {},
    ),
    "Resources": (
        ("cpu", "cores", "memory", "memory_max", "disk", "secrets", "iops"),
        {"network": "NetworkResource", "device": "RequestedDevice", "numa": "NUMAResource"},
    ),
    "WorkloadIdentity": (
        (
            "name",
            "aud",
            "change_mode",
            "change_signal",
            "env",
            "file",
            "filepath",
            "service_name",
            "ttl",
            "extra_claims",
        ),
        {},
    ),
    "MigrateStrategy": (
        ("max_parallel", "health_check", "min_healthy_time", "healthy_deadline"),
        {},
    ),
    "ReschedulePolicy": (
        ("attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"),
        {},
    ),
    "LogConfig": (
        ("max_files", "max_file_size", "enabled", "disabled"),
        {},
    ),
}
FILE_LEVEL_BLOCKS = {"variable", "variables", "locals", "job"}
HCL2_BOOKKEEPING = {"__is_block__", "__comments__", "__inline_comments__"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals; strip them for comparisons."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def block_bodies(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The bodies of the blocks `name { }` in body, labels dropped."""
    found: list[dict[str, Any]] = []
    for element in body.get(name, []):
        if element.get("__is_block__"):
            found.append(element)
        else:
            found.extend(inner for inner in element.values() if isinstance(inner, dict))
    return found


def labelled(body: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """The blocks `name "label" { }` in body, by label."""
    return {unquote(label): inner for element in body.get(name, []) for label, inner in element.items()}


def schema_errors(body: dict[str, Any], struct: str, where: str) -> list[str]:
    """Every attribute or block in body that the jobspec does not have at this place."""
    attributes, blocks = JOBSPEC_SCHEMA[struct]
    errors: list[str] = []
    for key, value in body.items():
        if key in HCL2_BOOKKEEPING or key in attributes:
            continue
        target = blocks.get(key)
        if target is None:
            errors.append(f"{where}: {key!r} is not an attribute or block of {struct}")
        elif target in JOBSPEC_SCHEMA:
            if not isinstance(value, list):
                errors.append(f"{where}: {key!r} must be a block")
                continue
            for index, inner in enumerate(block_bodies(body, key)):
                errors.extend(schema_errors(inner, target, f"{where}.{key}[{index}]"))
    return errors


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = hcl2.load(handle)
    return document


def job_of(document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    jobs = labelled(document, "job")
    assert len(jobs) == 1, f"exactly one job block per file, found {sorted(jobs)}"
    return next(iter(jobs.items()))


def variable_default(document: dict[str, Any], name: str) -> Any:
    return labelled(document, "variable")[name].get("default")


def single_group(job: dict[str, Any]) -> dict[str, Any]:
    groups = block_bodies(job, "group")
    assert len(groups) == 1
    return groups[0]


def constraints(*bodies: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {key: unquote(value) for key, value in constraint.items() if key not in HCL2_BOOKKEEPING}
        for body in bodies
        for constraint in block_bodies(body, "constraint")
    ]


def services(group: dict[str, Any]) -> list[dict[str, Any]]:
    found = block_bodies(group, "service")
    for task in block_bodies(group, "task"):
        found.extend(block_bodies(task, "service"))
    return found


def meta(job: dict[str, Any]) -> dict[str, str]:
    raw = job.get("meta", {})
    if isinstance(raw, list):  # block form
        raw = raw[0]
    return {unquote(key): unquote(value) for key, value in raw.items() if key not in HCL2_BOOKKEEPING}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {path.stem: load(path) for path in sorted(JOBS_DIR.glob("*.nomad"))}


def test_jobs_folder_holds_the_four_cluster_jobs(documents: dict[str, dict[str, Any]]) -> None:
    assert set(documents) == {*CLUSTER_JOBS, OPERATOR_JOB}
    for stem, document in documents.items():
        name, _ = job_of(document)
        assert name == stem, "a job file is named after its job, so renames are visible in git"
        assert set(document) - HCL2_BOOKKEEPING <= FILE_LEVEL_BLOCKS


def test_jobs_use_only_real_jobspec_blocks_and_attributes(documents: dict[str, dict[str, Any]]) -> None:
    for stem, document in documents.items():
        _, job = job_of(document)
        assert schema_errors(job, "Job", stem) == []


def test_the_schema_check_catches_a_misspelt_attribute_and_a_misplaced_block() -> None:
    document = hcl2.loads(
        'job "x" {\n  update {\n    heathy_deadline = "1m"\n  }\n'
        '  group "g" {\n    template {\n      data = "x"\n    }\n  }\n}\n'
    )
    _, job = job_of(document)
    errors = schema_errors(job, "Job", "x")
    assert any("heathy_deadline" in error for error in errors)
    assert any("'template' is not an attribute or block of TaskGroup" in error for error in errors)


def test_no_node_address_is_written_into_a_job_file() -> None:
    for path in [*JOBS_DIR.glob("*.nomad"), POLICY_FILE]:
        literals = set(IPV4_LITERAL.findall(path.read_text()))
        assert literals <= ALLOWED_IP_LITERALS, f"{path.name} names addresses {sorted(literals - ALLOWED_IP_LITERALS)}"


def test_the_address_check_finds_an_address_in_a_template() -> None:
    assert IPV4_LITERAL.findall('retry_join = ["10.0.0.166:8301"] image = "consul:1.20.6"') == ["10.0.0.166"]


@pytest.mark.parametrize("stem", [*CLUSTER_JOBS, OPERATOR_JOB])
def test_each_job_survives_a_lost_node_and_a_bad_rollout(documents: dict[str, dict[str, Any]], stem: str) -> None:
    _, job = job_of(documents[stem])
    group = single_group(job)
    assert group["count"] == (2 if stem == OPERATOR_JOB else 3)
    assert {"operator": "distinct_hosts", "value": "true"} in constraints(job, group)
    updates = block_bodies(job, "update") + block_bodies(group, "update")
    assert updates, "an update block"
    assert all(update.get("auto_revert") is True for update in updates)
    assert all(unquote(update.get("health_check", '"checks"')) == "checks" for update in updates)
    checks = [check for service in services(group) for check in block_bodies(service, "check")]
    assert checks, "at least one health check"
    assert all(unquote(check["type"]) in {"http", "tcp"} and "interval" in check for check in checks)


@pytest.mark.parametrize("stem", [*CLUSTER_JOBS, OPERATOR_JOB])
def test_each_job_runs_only_where_its_image_has_a_manifest(documents: dict[str, dict[str, Any]], stem: str) -> None:
    _, job = job_of(documents[stem])
    arch = [c for c in constraints(job, single_group(job)) if c.get("attribute") == "${attr.cpu.arch}"]
    assert len(arch) == 1
    pattern = re.compile(arch[0]["value"])
    assert [arch for arch in ("amd64", "arm64", "arm", "386") if pattern.match(arch)] == ["amd64", "arm64"]


def test_waves_order_consul_then_fabio_then_whoami_and_the_operator_last(
    documents: dict[str, dict[str, Any]],
) -> None:
    waves = {stem: int(meta(job_of(document)[1])["nomad-operator.wave"]) for stem, document in documents.items()}
    assert waves["consul"] < waves["fabio"] < waves["whoami"] < waves[OPERATOR_JOB]


def test_consul_forms_a_three_server_cluster_from_service_discovery(documents: dict[str, dict[str, Any]]) -> None:
    _, job = job_of(documents["consul"])
    group = single_group(job)
    task = block_bodies(group, "task")[0]
    config = next(t for t in block_bodies(task, "template") if unquote(t["destination"]).endswith("consul.hcl"))
    data = config["data"]
    assert re.search(r"bootstrap_expect\s*=\s*3\b", data)
    assert re.search(r'retry_join\s*=\s*\[\{\{ range [^}]*nomadService "consul-serf"', data)
    serf = [s for s in services(group) if unquote(s["name"]) == "consul-serf"]
    assert [unquote(s["provider"]) for s in serf] == ["nomad"], "consul cannot register in the consul it starts"
    assert "consul" in labelled(group, "volume"), "raft data on the node's host volume"
    assert meta(job)["nomad-operator.rebalance"] == "false"


def test_fabio_listens_on_9999_and_reads_consul(documents: dict[str, dict[str, Any]]) -> None:
    _, job = job_of(documents["fabio"])
    group = single_group(job)
    ports = labelled(block_bodies(group, "network")[0], "port")
    assert ports["lb"]["static"] == 9999
    properties = block_bodies(block_bodies(group, "task")[0], "template")[0]["data"]
    assert "registry.backend = consul" in properties
    assert 'registry.consul.addr = {{ env "attr.unique.network.ip-address" }}:8500' in properties


def test_whoami_is_routed_by_fabio(documents: dict[str, dict[str, Any]]) -> None:
    _, job = job_of(documents["whoami"])
    (service,) = services(single_group(job))
    assert "urlprefix-/whoami strip=/whoami" in [unquote(tag) for tag in service["tags"]]
    assert unquote(service["provider"]) == "consul", "fabio reads its routes from consul"


def test_operator_job_takes_settings_and_secrets_from_its_own_variable(documents: dict[str, dict[str, Any]]) -> None:
    document = documents[OPERATOR_JOB]
    _, job = job_of(document)
    group = single_group(job)
    (task,) = block_bodies(group, "task")
    templates = block_bodies(task, "template")
    env_templates = [t for t in templates if t.get("env") is True]
    assert len(env_templates) == 1
    for template in templates:
        assert unquote(template["destination"]).startswith("secrets/"), "settings and secrets stay in the secrets dir"
        assert unquote(template["perms"]) == "0400"
        assert 'nomadVar \\"nomad/jobs/nomad-operator\\"' in template["data"] or (
            'nomadVar "nomad/jobs/nomad-operator"' in template["data"]
        )
    text = (JOBS_DIR / f"{OPERATOR_JOB}.nomad").read_text()
    assert set(re.findall(r"NOMAD_OPERATOR_[A-Z_]+", text)) <= OPERATOR_ENVIRONMENT
    assert "NOMAD_TOKEN_FILE=" in env_templates[0]["data"]
    (identity,) = block_bodies(task, "identity")
    assert identity["file"] is True, "the workload identity is the Nomad token"


def test_operator_job_is_reachable_checked_and_pulls_the_published_image(
    documents: dict[str, dict[str, Any]],
) -> None:
    document = documents[OPERATOR_JOB]
    _, job = job_of(document)
    (service,) = services(single_group(job))
    assert "urlprefix-/hooks/" in [unquote(tag) for tag in service["tags"]]
    (check,) = block_bodies(service, "check")
    assert unquote(check["path"]) == "/readyz"
    (task,) = block_bodies(single_group(job), "task")
    image = unquote(block_bodies(task, "config")[0]["image"])
    assert image == "${var.operator_image}:${var.operator_image_tag}"
    assert unquote(variable_default(document, "operator_image")) == "ghcr.io/nomad-operator/nomad-operator"
    assert re.fullmatch(r"\d+\.\d+\.\d+", unquote(variable_default(document, "operator_image_tag")))


def test_operator_policy_grants_only_what_the_operator_uses() -> None:
    policy = load(POLICY_FILE)
    assert set(policy) - HCL2_BOOKKEEPING == {"namespace", "node"}
    namespaces = labelled(policy, "namespace")
    assert "*" not in namespaces
    for namespace in namespaces.values():
        assert "policy" not in namespace, "capabilities only: a coarse policy grants more than the operator uses"
        assert {unquote(c) for c in namespace["capabilities"]} == {
            "list-jobs",
            "read-job",
            "submit-job",
            "parse-job",
            "alloc-lifecycle",
        }
        paths = labelled(block_bodies(namespace, "variables")[0], "path")
        assert set(paths) == {"nomad-operator/*"}
    (node,) = block_bodies(policy, "node")
    assert unquote(node["policy"]) == "write"
