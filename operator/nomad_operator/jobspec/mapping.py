"""An evaluated job file (`Block`) to Nomad's API JSON job, exactly as `nomad job run -output` prints it.

The table-driven decoder (`struct_decoder`) covers what Nomad's struct tags say. Nomad's jobspec2 adds hand-written
rules on top, and a mapper that misses one ships a different job than `nomad job run` would: constraint and
affinity shorthands, `meta`/`env` written as attributes, job-level `vault`/`secret`/`task` blocks, group-level
`vault`/`secret` inheritance, task `scaling "cpu"` blocks, the port split into dynamic and reserved ports, template
and vault defaults, the default identity moved to `Task.Identity`. Each rule below cites the special case of
`jobspec-fields.md` it implements, quirks included, because matching Nomad beats being tidier than it.

The output is not canonicalized (see `canonical`); every problem of the file is collected and raised at once as
`JobspecErrors`.
"""

from __future__ import annotations

import copy
from typing import Final

from nomad_operator.durations import SECOND
from nomad_operator.jobspec.body import Block, Value
from nomad_operator.jobspec.errors import JobspecErrors
from nomad_operator.jobspec.struct_decoder import Diagnostics, StructDecoder
from nomad_operator.jobspec.value_conversion import ConversionError, to_bool, to_int, to_string, to_string_map

# constraint-decoder: shorthands that set the operand, in the order jobspec2 applies them (later wins).
CONSTRAINT_OPERAND_SHORTHANDS: Final = ("version", "semver", "regexp", "set_contains")
# Accepted by jobspec2's constraint spec but ignored by its decoder: kept accepted, never silently dropped.
CONSTRAINT_IGNORED_SHORTHANDS: Final = ("set_contains_all", "set_contains_any", "is_set", "is_not_set")
AFFINITY_OPERAND_SHORTHANDS: Final = (
    "version",
    "semver",
    "regexp",
    "set_contains_any",
    "set_contains_all",
    "set_contains",
)
TASK_SCALING_TYPES: Final = {"cpu": "vertical_cpu", "mem": "vertical_mem"}
GROUP_SCALING_TYPE: Final = "horizontal"
DEFAULT_OPERAND: Final = "="
DEFAULT_IDENTITY_NAME: Final = "default"
TEMPLATE_DEFAULTS: Final[dict[str, Value]] = {
    "ChangeMode": "restart",
    "Perms": "0644",
    "Splay": 5 * SECOND,
    "ErrMissingKey": False,
}
CHANGE_SCRIPT_DEFAULTS: Final[dict[str, Value]] = {
    "Timeout": 5 * SECOND,
    "FailOnError": False,
    "RunOnFirstRender": False,
}
VAULT_DEFAULTS: Final[dict[str, Value]] = {"Env": True, "DisableFile": False, "ChangeMode": "restart"}


def map_job(root: Block) -> dict[str, Value]:
    """The API job of an evaluated file (its root block), un-canonicalized; raises JobspecErrors."""
    return JobMapper().map(root)


class JobMapper:
    """One conversion: the decoder with jobspec2's hand-written cases plugged in, and the errors found."""

    def __init__(self) -> None:
        self.diagnostics = Diagnostics()
        self.decoder = StructDecoder(
            self.diagnostics,
            custom={
                "TaskGroup": self._group,
                "Task": self._task,
                "Constraint": self._constraint,
                "Affinity": self._affinity,
            },
        )

    def map(self, root: Block) -> dict[str, Value]:
        for attribute in root.attributes.values():
            self.diagnostics.add(
                "Unsupported argument",
                f'An argument named "{attribute.name}" is not expected here.',
                attribute.pos,
            )
        jobs: list[Block] = []
        for block in root.blocks:
            if block.type == "job":
                jobs.append(block)
            else:
                self.diagnostics.add(
                    "Unsupported block type", f'Blocks of type "{block.type}" are not expected here.', block.pos
                )
        for extra in jobs[1:]:
            self.diagnostics.add(
                "Duplicate job block",
                f"Only one job block is allowed. Another was defined at {jobs[0].pos}.",
                extra.pos,
            )
        job: dict[str, Value] = {}
        if not jobs:
            self.diagnostics.add("Missing job block", "A job file must define exactly one job block.", root.pos)
        else:
            job = self._job(jobs[0])
        if self.diagnostics.errors:
            raise JobspecErrors(self.diagnostics.errors)
        return job

    # job-label, job-extra-blocks, meta-env-attr
    def _job(self, block: Block) -> dict[str, Value]:
        meta, meta_is_attribute = self._map_attribute(block, "meta")
        vault = self._single_block(block, "vault", "Vault")
        secrets: list[Value] = [self.decoder.decode("Secret", b) for b in block.blocks_of("secret")]
        tasks = [self._task(b) for b in block.blocks_of("task")]
        job = self.decoder.decode_fields(
            "Job",
            block,
            skip_attributes={"meta"} if meta_is_attribute else (),
            skip_blocks=("vault", "secret", "task"),
            extra_labels=1,
        )
        if meta_is_attribute:
            job["Meta"] = meta
        name = block.labels[0] if block.labels else ""
        if job["ID"] is None:
            job["ID"] = name
        if job["Name"] is None:
            job["Name"] = name
        groups = _as_list(job["TaskGroups"])
        if tasks:
            alone: list[Value] = []
            for task in tasks:
                group = self.decoder.decode_fields("TaskGroup", Block("group", (str(task["Name"]),), block.pos))
                group["Tasks"] = [task]
                alone.append(group)
            job["TaskGroups"] = alone + groups
        self._normalize(job, vault, secrets)
        return job

    # meta-env-attr, secret-inherit, vault-inherit, group-scaling
    def _group(self, block: Block) -> dict[str, Value]:
        meta, meta_is_attribute = self._map_attribute(block, "meta")
        vault = self._single_block(block, "vault", "Vault")
        secrets: list[Value] = [self.decoder.decode("Secret", b) for b in block.blocks_of("secret")]
        group = self.decoder.decode_fields(
            "TaskGroup",
            block,
            skip_attributes={"meta"} if meta_is_attribute else (),
            skip_blocks=("vault", "secret"),
        )
        if meta_is_attribute:
            group["Meta"] = meta
        scaling = group["Scaling"]
        if isinstance(scaling, dict):
            scaling_block = block.blocks_of("scaling")[0]
            if scaling["Type"] == "":
                scaling["Type"] = GROUP_SCALING_TYPE
            elif scaling["Type"] != GROUP_SCALING_TYPE:
                self.diagnostics.add(
                    "Invalid scaling policy type",
                    f'A group scaling policy must be of type "{GROUP_SCALING_TYPE}", not "{scaling["Type"]}".',
                    scaling_block.pos,
                )
            if scaling["Max"] is None:
                self.diagnostics.add(
                    "Missing required argument",
                    'The argument "max" is required, but no definition was found.',
                    scaling_block.pos,
                )
        for task in _as_list(group["Tasks"]):
            if not isinstance(task, dict):
                continue
            if vault is not None and task["Vault"] is None:
                task["Vault"] = copy.deepcopy(vault)
            if secrets:
                own = _as_list(task["Secrets"])
                # Quirk of jobspec2 at this version: a task with secrets of its own gets them twice, not the group's.
                task["Secrets"] = own + copy.deepcopy(own) if own else copy.deepcopy(secrets)
        return group

    # meta-env-attr, task-scaling, identity-default (in _normalize)
    def _task(self, block: Block) -> dict[str, Value]:
        env, env_is_attribute = self._map_attribute(block, "env")
        meta, meta_is_attribute = self._map_attribute(block, "meta")
        skip = {name for name, is_attribute in (("env", env_is_attribute), ("meta", meta_is_attribute)) if is_attribute}
        task = self.decoder.decode_fields("Task", block, skip_attributes=skip, skip_blocks=("scaling",))
        if env_is_attribute:
            task["Env"] = env
        if meta_is_attribute:
            task["Meta"] = meta
        policies = [self._task_scaling(b, block) for b in block.blocks_of("scaling")]
        task["ScalingPolicies"] = [p for p in policies if p is not None] or None
        if task["CSIPluginConfig"] is None:
            del task["CSIPluginConfig"]  # the one `omitempty` field of the job tree
        return task

    def _task_scaling(self, block: Block, task_block: Block) -> dict[str, Value] | None:
        policy = self.decoder.decode_fields("ScalingPolicy", block, extra_labels=1)
        if not block.labels:
            return None
        kind = block.labels[0].lower()
        wanted = TASK_SCALING_TYPES.get(kind)
        if wanted is None:
            self.diagnostics.add(
                "Invalid scaling policy type",
                f'A task scaling block must be labelled "cpu" or "mem", not "{block.labels[0]}".',
                block.pos,
            )
            return None
        if policy["Type"] not in ("", wanted):
            self.diagnostics.add(
                "Invalid scaling policy type",
                f'The type of a scaling "{kind}" block must be "{wanted}", not "{policy["Type"]}".',
                block.pos,
            )
        earlier = [b for b in task_block.blocks_of("scaling") if b.labels and b.labels[0].lower() == kind]
        if earlier and earlier[0] is not block:
            self.diagnostics.add(
                "Duplicate scaling block",
                f'Only one scaling "{kind}" block is allowed. Another was defined at {earlier[0].pos}.',
                block.pos,
            )
            return None
        policy["Type"] = wanted
        return policy

    # constraint-decoder
    def _constraint(self, block: Block) -> dict[str, Value]:
        allowed = ("attribute", "value", "operator", *CONSTRAINT_OPERAND_SHORTHANDS, "distinct_hosts",
                   "distinct_property", *CONSTRAINT_IGNORED_SHORTHANDS)  # fmt: skip
        values = self._fixed_attributes(block, allowed, booleans=("distinct_hosts",))
        constraint: dict[str, Value] = {
            "LTarget": values.get("attribute", ""),
            "RTarget": values.get("value", ""),
            "Operand": values.get("operator", "") or DEFAULT_OPERAND,
        }
        for shorthand in CONSTRAINT_OPERAND_SHORTHANDS:
            if shorthand in values:
                constraint["Operand"] = shorthand
                constraint["RTarget"] = values[shorthand]
        if "distinct_hosts" in values:
            constraint["Operand"] = "distinct_hosts"
            constraint["RTarget"] = "true" if values["distinct_hosts"] else "false"
        if "distinct_property" in values:
            constraint["Operand"] = "distinct_property"
            constraint["LTarget"] = values["distinct_property"]
        return constraint

    # affinity-decoder
    def _affinity(self, block: Block) -> dict[str, Value]:
        allowed = ("attribute", "value", "operator", "weight", *AFFINITY_OPERAND_SHORTHANDS)
        values = self._fixed_attributes(block, allowed, integers=("weight",))
        affinity: dict[str, Value] = {
            "LTarget": values.get("attribute", ""),
            "RTarget": values.get("value", ""),
            "Operand": values.get("operator", "") or DEFAULT_OPERAND,
            "Weight": values.get("weight"),
        }
        for shorthand in AFFINITY_OPERAND_SHORTHANDS:
            if shorthand in values:
                affinity["Operand"] = shorthand
                affinity["RTarget"] = values[shorthand]
        return affinity

    def _fixed_attributes(
        self,
        block: Block,
        allowed: tuple[str, ...],
        *,
        booleans: tuple[str, ...] = (),
        integers: tuple[str, ...] = (),
    ) -> dict[str, Value]:
        """jobspec2's hcldec specs for constraint and affinity: a fixed attribute set, no blocks, no labels."""
        for nested in block.blocks:
            self.diagnostics.add(
                "Unsupported block type", f'Blocks of type "{nested.type}" are not expected here.', nested.pos
            )
        if block.labels:
            self.diagnostics.add(
                f"Extraneous label for {block.type}", f"No labels are expected for {block.type} blocks.", block.pos
            )
        values: dict[str, Value] = {}
        for name, attribute in block.attributes.items():
            if name not in allowed:
                self.diagnostics.add(
                    "Unsupported argument", f'An argument named "{name}" is not expected here.', attribute.pos
                )
                continue
            if attribute.value is None:
                continue
            try:
                if name in booleans:
                    values[name] = to_bool(attribute.value, name=name)
                elif name in integers:
                    values[name] = to_int(attribute.value, name=name, code="i8")
                else:
                    values[name] = to_string(attribute.value, name=name)
            except ConversionError as error:
                self.diagnostics.add(error.summary, error.detail, attribute.pos)
        return values

    def _map_attribute(self, block: Block, name: str) -> tuple[Value, bool]:
        """`meta = {...}` / `env = {...}` written as an attribute: its string map, and whether it was one."""
        attribute = block.attributes.get(name)
        if attribute is None:
            return None, False
        duplicates = block.blocks_of(name)
        if duplicates:
            self.diagnostics.add(
                f"Duplicate {name} block",
                f"{name} is defined both as an attribute (at {attribute.pos}) and as a block.",
                duplicates[0].pos,
            )
        if attribute.value is None:
            return None, True
        try:
            return to_string_map(attribute.value, name=name), True
        except ConversionError as error:
            self.diagnostics.add(error.summary, error.detail, attribute.pos)
            return None, True

    def _single_block(self, block: Block, block_type: str, struct_name: str) -> dict[str, Value] | None:
        found = block.blocks_of(block_type)
        for extra in found[1:]:
            self.diagnostics.add(
                f"Duplicate {block_type} block",
                f"Only one {block_type} block is allowed. Another was defined at {found[0].pos}.",
                extra.pos,
            )
        return self.decoder.decode(struct_name, found[0]) if found else None

    # periodic-spectype, network-ports, template-defaults, changescript-defaults, vault-defaults, vault-inherit,
    # identity-default, job-extra-blocks (secrets)
    def _normalize(self, job: dict[str, Value], vault: dict[str, Value] | None, secrets: list[Value]) -> None:
        periodic = job["Periodic"]
        if isinstance(periodic, dict) and (periodic["Spec"] is not None or periodic["Specs"] is not None):
            periodic["SpecType"] = "cron"
        if vault is not None:
            _fill_defaults(vault, VAULT_DEFAULTS)
        for group in _dicts(job["TaskGroups"]):
            _split_ports(group["Networks"])
            for task in _dicts(group["Tasks"]):
                resources = task["Resources"]
                if isinstance(resources, dict):
                    _split_ports(resources["Networks"])
                for template in _dicts(task["Templates"]):
                    _fill_defaults(template, TEMPLATE_DEFAULTS)
                    script = template["ChangeScript"]
                    if isinstance(script, dict):
                        if script["Args"] is None:
                            script["Args"] = []
                        _fill_defaults(script, CHANGE_SCRIPT_DEFAULTS)
                if isinstance(task["Vault"], dict):
                    _fill_defaults(task["Vault"], VAULT_DEFAULTS)
                elif vault is not None:
                    task["Vault"] = copy.deepcopy(vault)
                identities = task["Identities"]
                if isinstance(identities, list):
                    for index, identity in enumerate(identities):
                        if isinstance(identity, dict) and identity["Name"] in ("", DEFAULT_IDENTITY_NAME):
                            task["Identity"] = identities.pop(index)
                            break
                if secrets:
                    task["Secrets"] = _as_list(task["Secrets"]) + [copy.deepcopy(s) for s in secrets]


def _split_ports(networks: Value) -> None:
    """network-ports: `port` blocks with a static value move to ReservedPorts, replacing what was there."""
    for network in _dicts(networks):
        dynamic = _as_list(network["DynamicPorts"])
        if not dynamic:
            continue
        reserved: list[Value] = []
        remaining: list[Value] = []
        for port in dynamic:
            static = isinstance(port, dict) and isinstance(port["Value"], int) and port["Value"] > 0
            (reserved if static else remaining).append(port)
        network["DynamicPorts"] = remaining or None
        network["ReservedPorts"] = reserved or None


def _fill_defaults(target: dict[str, Value], defaults: dict[str, Value]) -> None:
    for key, default in defaults.items():
        if target[key] is None:
            target[key] = default


def _as_list(value: Value) -> list[Value]:
    return list(value) if isinstance(value, list) else []


def _dicts(value: Value) -> list[dict[str, Value]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
