"""Kind files and resource validation: loading errors, every violation listed, names, sizes, spec versus status."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nomad_operator.runtime.errors import InvalidResource, KindDefinitionError, ResourceTooLarge, UnknownKind
from nomad_operator.runtime.kinds import KindRegistry, load_kinds
from nomad_operator.runtime.resources import Resource

GIT_SOURCE = """\
apiVersion: nomad-operator.io/v1alpha1
kind: GitSource
plural: gitsources
shortNames: [gs]
schema:
  spec:
    type: object
    required: [url]
    additionalProperties: false
    properties:
      url: {type: string, pattern: "^(https?|ssh|git)://"}
      branch: {type: string}
      interval: {type: string, pattern: "^[0-9]+(ms|s|m|h)$"}
      prune: {type: boolean}
      notes: {type: string}
  status:
    type: object
    properties:
      revision: {type: string, pattern: "^[0-9a-f]{40}$"}
printerColumns:
  - {name: URL, path: .spec.url}
  - {name: Revision, path: .status.revision}
  - {name: Prune, path: .spec.prune, type: boolean}
"""


def kinds_in(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def registry(tmp_path: Path) -> KindRegistry:
    return load_kinds(kinds_in(tmp_path, {"gitsource.yaml": GIT_SOURCE}))


def source(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "nomad-operator.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "cluster"},
        "spec": {"url": "https://git.example.org/cluster.git", **spec},
    }


def test_load_kinds_reads_every_kind_file(registry: KindRegistry) -> None:
    assert registry.kinds == ["GitSource"]
    definition = registry.get("GitSource")
    assert definition.plural == "gitsources"
    assert definition.short_names == ("gs",)
    assert definition.status_schema["properties"]["revision"]["type"] == "string"
    assert [column.name for column in definition.printer_columns] == ["URL", "Revision", "Prune"]
    for name in ["GitSource", "gitsource", "gitsources", "GS", "gs"]:
        assert registry.resolve(name) is definition
    with pytest.raises(UnknownKind, match=r"unknown kind 'jobs'; known kinds: GitSource \(gitsources/gs\)"):
        registry.resolve("jobs")


def test_the_format_documented_in_the_crds_readme_loads(project_root: Path, tmp_path: Path) -> None:
    readme = (project_root / "crds" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    kind_file, resource = blocks[0], blocks[1]
    registry = load_kinds(kinds_in(tmp_path, {"example.yaml": kind_file}))
    parsed = registry.parse(yaml.safe_load(resource))
    assert parsed.metadata.name == "cluster"
    assert registry.get("GitSource").printer_row(parsed)[:3] == ["cluster", "default", parsed.spec["url"]]


def test_an_empty_folder_gives_an_empty_registry(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a kind", encoding="utf-8")
    assert len(load_kinds(tmp_path)) == 0


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KindDefinitionError, match="not a directory"):
        load_kinds(tmp_path / "nope")


def test_every_broken_file_is_reported_at_once(tmp_path: Path) -> None:
    folder = kinds_in(
        tmp_path,
        {
            "bad-yaml.yaml": "kind: [unclosed\n",
            "not-a-mapping.yml": "- just\n- a list\n",
            "missing.yaml": "kind: Thing\nplural: things\n",
            "bad-schema.yaml": GIT_SOURCE.replace("type: object\n    required", "type: objekt\n    required").replace(
                "{type: boolean}", "{type: boolean, minLength: -1}"
            ),
            "good.yaml": GIT_SOURCE,
        },
    )
    with pytest.raises(KindDefinitionError) as caught:
        load_kinds(folder)
    problems = caught.value.violations
    text = "\n".join(problems)
    assert any(p.startswith("bad-yaml.yaml: not valid YAML") for p in problems), text
    assert "not-a-mapping.yml: a kind file must be a mapping, got list" in problems
    assert any(p.startswith("missing.yaml") and "'apiVersion' is a required property" in p for p in problems), text
    assert any(p.startswith("missing.yaml") and "'schema' is a required property" in p for p in problems), text
    assert any(p.startswith("bad-schema.yaml: not a valid JSON Schema") and "objekt" in p for p in problems), text
    assert any(p.startswith("bad-schema.yaml: not a valid JSON Schema") and "minLength" in p for p in problems), text
    assert not any(p.startswith("good.yaml") for p in problems)
    assert "problems in the kind files" in str(caught.value)


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("kind: GitSource", "kind: gitSource", "kind: 'gitSource' does not match"),
        ("plural: gitsources", "plural: GitSources", "plural: 'GitSources' does not match"),
        ("apiVersion: nomad-operator.io/v1alpha1", "apiVersion: v1", "apiVersion: 'v1' does not match"),
        ("shortNames: [gs]", "shortNames: [gs, gs]", "shortNames: ['gs', 'gs'] has non-unique elements"),
        ("schema:\n  spec:\n    type: object", "schema:\n  spec:\n    type: array", "schema.spec.type must be"),
        ("printerColumns:", "colour: blue\nprinterColumns:", "Additional properties are not allowed ('colour'"),
        ("path: .spec.url", "path: spec.url", "printerColumns[0].path: 'spec.url' does not match"),
    ],
)
def test_kind_file_format_errors(tmp_path: Path, replace: str, by: str, message: str) -> None:
    assert replace in GIT_SOURCE
    folder = kinds_in(tmp_path, {"kind.yaml": GIT_SOURCE.replace(replace, by)})
    with pytest.raises(KindDefinitionError) as caught:
        load_kinds(folder)
    assert any(message in problem for problem in caught.value.violations), caught.value.violations


def test_kinds_whose_names_clash_are_refused(tmp_path: Path) -> None:
    clash = GIT_SOURCE.replace("kind: GitSource", "kind: GitRepo").replace("plural: gitsources", "plural: gitrepos")
    folder = kinds_in(tmp_path, {"a.yaml": GIT_SOURCE, "b.yaml": clash, "c.yaml": GIT_SOURCE})
    with pytest.raises(KindDefinitionError) as caught:
        load_kinds(folder)
    assert "b.yaml: name 'gs' is already used by kind GitSource" in caught.value.violations
    assert "c.yaml: kind GitSource is already defined" in caught.value.violations


def test_a_valid_resource_parses_and_status_in_a_spec_write_is_ignored(registry: KindRegistry) -> None:
    document = source(branch="main") | {"status": {"revision": "not even valid"}}
    resource = registry.parse(document)
    assert isinstance(resource, Resource)
    assert resource.metadata.namespace == "default"
    assert resource.spec == {"url": "https://git.example.org/cluster.git", "branch": "main"}
    assert resource.status == {}


def test_every_violation_is_listed(registry: KindRegistry) -> None:
    document = source(branch=3, interval="5 minutes", colour="blue")
    document["spec"]["url"] = "ftp://nowhere"
    document["metadata"]["labels"] = {"team": 7}
    document["extra"] = True
    with pytest.raises(InvalidResource) as caught:
        registry.parse(document)
    violations = caught.value.violations
    assert len(violations) == 6, violations
    expected = [
        "(document): Additional properties are not allowed ('extra'",
        "metadata.labels.team: 7 is not of type 'string'",
        "spec: Additional properties are not allowed ('colour'",
        "spec.branch: 3 is not of type 'string'",
        "spec.interval: '5 minutes' does not match",
        "spec.url: 'ftp://nowhere' does not match",
    ]
    for start, violation in zip(expected, violations, strict=True):
        assert violation.startswith(start), violation
    assert "GitSource default/cluster is invalid; nothing was stored" in str(caught.value)


def test_missing_parts_and_wrong_api_version(registry: KindRegistry) -> None:
    document = {"apiVersion": "nomad-operator.io/v1", "kind": "GitSource", "metadata": {}}
    with pytest.raises(InvalidResource) as caught:
        registry.parse(document)
    text = "\n".join(caught.value.violations)
    assert "(document): 'spec' is a required property" in text
    assert "metadata: 'name' is a required property" in text
    assert "apiVersion: GitSource is 'nomad-operator.io/v1alpha1', got 'nomad-operator.io/v1'" in text


@pytest.mark.parametrize("document", [[], "GitSource", None])
def test_a_resource_that_is_not_a_mapping_is_refused(registry: KindRegistry, document: Any) -> None:
    with pytest.raises(InvalidResource, match="must be a mapping"):
        registry.parse(document)


def test_unknown_and_missing_kinds_are_refused(registry: KindRegistry) -> None:
    with pytest.raises(UnknownKind, match="unknown kind 'HelmRelease'; known kinds: GitSource"):
        registry.parse(source() | {"kind": "HelmRelease"})
    with pytest.raises(InvalidResource, match="names no kind"):
        registry.parse({"metadata": {"name": "x"}, "spec": {}})


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"name": "a/b"}, "metadata.name 'a/b' must match"),
        ({"name": "-lead"}, "metadata.name '-lead' must match"),
        ({"name": "ok", "namespace": "team_a"}, "metadata.namespace 'team_a' must match"),
        ({"name": "x" * 100}, "is 143 characters; Nomad allows 128"),
        ({"name": "ok", "finalizers": ["Not Valid"]}, "metadata.finalizers[0]: 'Not Valid' does not match"),
        ({"name": "ok", "generation": -1}, "metadata.generation: -1 is less than the minimum of 0"),
    ],
)
def test_bad_names_and_metadata_are_refused(registry: KindRegistry, metadata: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResource) as caught:
        registry.parse(source() | {"metadata": metadata})
    assert any(message in violation for violation in caught.value.violations), caught.value.violations


def test_the_longest_name_that_fits_is_accepted(registry: KindRegistry) -> None:
    longest = "n" * (128 - len("nomad-operator/resources/gitsource/default/"))
    assert registry.parse(source() | {"metadata": {"name": longest}}).metadata.name == longest
    with pytest.raises(InvalidResource, match="Nomad allows 128"):
        registry.parse(source() | {"metadata": {"name": longest + "n"}})


def test_oversized_resources_are_refused(registry: KindRegistry) -> None:
    with pytest.raises(ResourceTooLarge, match=r"GitSource/default/cluster encodes to \d+ bytes.*at most 65536"):
        registry.parse(source(notes="x" * 70_000))
    assert registry.parse(source(notes="x" * 60_000)).spec["notes"] == "x" * 60_000


def test_status_is_checked_against_the_status_schema_only(registry: KindRegistry) -> None:
    resource = registry.parse(source())
    registry.check_status(resource, {"revision": "a" * 40, "anything": ["else"]})
    with pytest.raises(InvalidResource) as caught:
        registry.check_status(resource, {"revision": "main", "url": 5})
    assert caught.value.violations == ("status.revision: 'main' does not match '^[0-9a-f]{40}$'",)
    with pytest.raises(InvalidResource, match="status: 'done' is not of type 'object'"):
        registry.check_status(resource, "done")
