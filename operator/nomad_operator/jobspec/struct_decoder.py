"""Decode one evaluated block into one api struct by the field table, strictly, collecting every error.

This is the part of Nomad's gohcl decoding that is pure data: labels into their fields, attributes converted to the
field's Go type, nested blocks into nested structs, lists, labelled maps and free-form maps, every field present in
Go order with its zero when unset. The hazard it handles is loss: an attribute or block the table does not know, a
second block where one is allowed, a missing label or required attribute, each becomes an error naming the thing
and its line, and decoding goes on so that one pass reports all of them. jobspec2's hand-written special cases
(constraint shorthands, meta as attribute, ports, inheritance, ...) are `mapping`'s business; they plug in here as
`CustomDecoder`s per struct.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Protocol

from nomad_operator.jobspec.body import Attribute, Block, Value
from nomad_operator.jobspec.errors import JobspecError, SourcePos
from nomad_operator.jobspec.schema import STRUCTS, FieldSpec, StructSpec
from nomad_operator.jobspec.value_conversion import (
    ConversionError,
    free_value,
    to_list,
    to_scalar,
    to_string_list_map,
    to_string_map,
)


class Diagnostics:
    """The errors found so far in one file; decoding continues past each so all are reported together."""

    def __init__(self) -> None:
        self.errors: list[JobspecError] = []

    def add(self, summary: str, detail: str, pos: SourcePos | None) -> None:
        self.errors.append(JobspecError(f"{summary}; {detail}", pos))


class CustomDecoder(Protocol):
    """Decodes a block of one struct type in place of the generic decoder (jobspec2's hand-written cases)."""

    def __call__(self, block: Block) -> dict[str, Value]: ...


class StructDecoder:
    """The generic, table-driven decoder; `custom` replaces it for the struct types jobspec2 decodes by hand."""

    def __init__(self, diagnostics: Diagnostics, *, custom: Mapping[str, CustomDecoder] | None = None) -> None:
        self.diagnostics = diagnostics
        self.custom: dict[str, CustomDecoder] = dict(custom or {})

    def decode(self, struct_name: str, block: Block) -> dict[str, Value]:
        """Decode a block as `struct_name`, through its custom decoder when it has one."""
        custom = self.custom.get(struct_name)
        if custom is not None:
            return custom(block)
        return self.decode_fields(struct_name, block)

    def decode_fields(
        self,
        struct_name: str,
        block: Block,
        *,
        skip_attributes: Collection[str] = (),
        skip_blocks: Collection[str] = (),
        extra_attributes: Collection[str] = (),
        extra_blocks: Collection[str] = (),
        extra_labels: int = 0,
    ) -> dict[str, Value]:
        """Decode by the table alone.

        `skip_*` names are handled by the caller, `extra_*` names only improve messages, and `extra_labels`
        counts labels the caller reads itself (the job's name, a task scaling block's kind).
        """
        spec = STRUCTS[struct_name]
        out = spec.empty()
        self._labels(spec, block, out, extra_labels=extra_labels)
        for attribute in block.attributes.values():
            if attribute.name in skip_attributes:
                continue
            field = spec.attributes.get(attribute.name)
            if field is None:
                self._unknown_attribute(spec, attribute, extra_attributes, extra_blocks)
                continue
            converted, ok = self.convert_attribute(field, attribute)
            if ok:
                out[field.json] = converted
        seen: dict[str, Block] = {}
        for nested in block.blocks:
            if nested.type in skip_blocks:
                continue
            field = spec.blocks.get(nested.type)
            if field is None:
                self._unknown_block(spec, nested, extra_attributes, extra_blocks)
                continue
            self._nested_block(field, nested, out, seen)
        for field in spec.fields:
            if field.required and field.hcl not in block.attributes:
                self.diagnostics.add(
                    "Missing required argument",
                    f'The argument "{field.hcl}" is required, but no definition was found.',
                    block.pos,
                )
        return out

    def convert_attribute(self, field: FieldSpec, attribute: Attribute) -> tuple[Value, bool]:
        """An attribute's value as the field's Go type and True, or (None, False) after recording why not."""
        name = attribute.name
        value = attribute.value
        try:
            if value is None:
                if field.pointer or field.container in ("list", "map", "list_map"):
                    return None, True
                if field.scalar == "d":
                    raise ConversionError("Unsuitable duration value", f'The attribute "{name}" must not be null.')
                raise ConversionError(
                    "Unsuitable value type", f'Unsuitable value for "{name}": null value is not allowed'
                )
            if field.container == "list":
                return to_list(value, name=name, element=field.element or "s"), True
            if field.container == "map":
                return to_string_map(value, name=name), True
            if field.container == "list_map":
                return to_string_list_map(value, name=name), True
            return to_scalar(value, name=name, code=field.scalar or ""), True
        except ConversionError as error:
            self.diagnostics.add(error.summary, error.detail, attribute.pos)
            return None, False

    def string_map_block(self, block: Block, *, lists: bool = False) -> dict[str, Value]:
        """A block of plain attributes read as a Go map (meta, env, options ...), keys sorted."""
        for nested in block.blocks:
            self.diagnostics.add(f'Unexpected "{nested.type}" block', "Blocks are not allowed here.", nested.pos)
        self._no_labels(block)
        values: dict[str, Value] = {}
        for name in sorted(block.attributes):
            attribute = block.attributes[name]
            try:
                if lists:
                    values[name] = to_list(attribute.value, name=name, element="s")
                else:
                    values[name] = to_scalar(attribute.value, name=name, code="s")
            except ConversionError as error:
                self.diagnostics.add(error.summary, error.detail, attribute.pos)
        return values

    def free_map_block(self, block: Block) -> dict[str, Value]:
        """A free-form block (driver config) the way jobspec2's BlocksAsAttrs reads it.

        Nested blocks become lists of objects under their type (labels nest one level each), and an attribute
        holding an object is wrapped in a one-element list, as Nomad does for object literals.
        """
        self._no_labels(block)
        return self._free_body(block)

    def _free_body(self, block: Block) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for name, attribute in block.attributes.items():
            value = free_value(attribute.value)
            values[name] = [value] if isinstance(value, dict) else value
        for nested in block.blocks:
            body: Value = self._free_body(nested)
            for label in reversed(nested.labels):
                body = {label: [body]}
            existing = values.get(nested.type)
            if isinstance(existing, list) and nested.type not in block.attributes:
                existing.append(body)
            elif nested.type in block.attributes:
                self.diagnostics.add(
                    "Duplicate argument",
                    f'"{nested.type}" is defined both as an attribute and as a block.',
                    nested.pos,
                )
            else:
                values[nested.type] = [body]
        return {key: values[key] for key in sorted(values)}

    def _nested_block(self, field: FieldSpec, nested: Block, out: dict[str, Value], seen: dict[str, Block]) -> None:
        if field.container == "free":
            value: Value = self.free_map_block(nested)
        elif field.container in ("block_map", "block_list_map"):
            value = self.string_map_block(nested, lists=field.container == "block_list_map")
        else:
            value = None
        if field.shape == "list":
            decoded = self.decode(field.struct or "", nested)
            current = out[field.json]
            if isinstance(current, list):
                current.append(decoded)
            else:
                out[field.json] = [decoded]
            return
        if field.shape == "labeled-map":
            decoded = self.decode(field.struct or "", nested)
            label = nested.labels[0] if nested.labels else ""
            current = out[field.json]
            mapping = current if isinstance(current, dict) else {}
            if label in mapping:
                self.diagnostics.add(
                    f"Duplicate {nested.type} block",
                    f'A {nested.type} block labelled "{label}" is already defined.',
                    nested.pos,
                )
            mapping[label] = decoded
            out[field.json] = {key: mapping[key] for key in sorted(mapping)}
            return
        previous = seen.get(nested.type)
        if previous is not None:
            self.diagnostics.add(
                f"Duplicate {nested.type} block",
                f"Only one {nested.type} block is allowed. Another was defined at {previous.pos}.",
                nested.pos,
            )
            return
        seen[nested.type] = nested
        out[field.json] = self.decode(field.struct or "", nested) if field.struct else value

    def _labels(self, spec: StructSpec, block: Block, out: dict[str, Value], *, extra_labels: int) -> None:
        wanted = len(spec.labels) + extra_labels
        if len(block.labels) < wanted:
            self.diagnostics.add(
                f"Missing name for {block.type}",
                f"All {block.type} blocks must have {wanted} labels (name).",
                block.pos,
            )
        elif len(block.labels) > wanted:
            detail = (
                f"No labels are expected for {block.type} blocks."
                if wanted == 0
                else f"Only {wanted} labels (name) are expected for {block.type} blocks."
            )
            self.diagnostics.add(f"Extraneous label for {block.type}", detail, block.pos)
        for field, label in zip(spec.labels, block.labels, strict=False):
            out[field.json] = label

    def _no_labels(self, block: Block) -> None:
        if block.labels:
            self.diagnostics.add(
                f"Extraneous label for {block.type}",
                f"No labels are expected for {block.type} blocks.",
                block.pos,
            )

    def _unknown_attribute(
        self, spec: StructSpec, attribute: Attribute, extra_attributes: Collection[str], extra_blocks: Collection[str]
    ) -> None:
        name = attribute.name
        if name in spec.blocks or name in extra_blocks:
            hint = f' Did you mean to define a block of type "{name}"?'
        else:
            hint = _suggest(name, [*spec.attributes, *extra_attributes])
        detail = f'An argument named "{name}" is not expected here.{hint}'
        self.diagnostics.add("Unsupported argument", detail, attribute.pos)

    def _unknown_block(
        self, spec: StructSpec, block: Block, extra_attributes: Collection[str], extra_blocks: Collection[str]
    ) -> None:
        name = block.type
        if name in spec.attributes or name in extra_attributes:
            hint = f' Did you mean to define argument "{name}"? If so, use the equals sign to assign it a value.'
        else:
            hint = _suggest(name, [*spec.blocks, *extra_blocks])
        detail = f'Blocks of type "{name}" are not expected here.{hint}'
        self.diagnostics.add("Unsupported block type", detail, block.pos)


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f' Did you mean "{close[0]}"?' if close else ""
