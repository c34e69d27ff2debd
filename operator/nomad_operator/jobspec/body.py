"""The evaluated body of a job file: blocks and attributes with plain Python values and their positions.

This is the seam between the two halves of the jobspec layer. The evaluator (`evaluate`) turns HCL text into this
model: variables, locals, functions, `for` expressions and `dynamic` blocks are resolved, runtime interpolations such as
`${attr.kernel.name}` are left as text, and heredocs are cut byte-exact. The mapper (`mapping`) turns this model into
Nomad's API JSON job. Neither side knows how the other works.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from nomad_operator.jobspec.errors import SourcePos

# A fully evaluated HCL value. HCL numbers are arbitrary precision: whole numbers stay `int`.
Value: TypeAlias = "str | int | float | bool | list[Value] | dict[str, Value] | None"


@dataclass(slots=True)
class Attribute:
    """`name = value`, evaluated."""

    name: str
    value: Value
    pos: SourcePos


@dataclass(slots=True)
class Block:
    """`type "label" ... { ... }`, with its attributes by name and its nested blocks in source order.

    The root body of a file is a Block with type "" and no labels.
    """

    type: str
    labels: tuple[str, ...]
    pos: SourcePos
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def blocks_of(self, block_type: str) -> list[Block]:
        """The nested blocks of one type, in source order."""
        return [block for block in self.blocks if block.type == block_type]

    def walk(self) -> Iterator[Block]:
        """This block and every block below it, depth first."""
        yield self
        for block in self.blocks:
            yield from block.walk()
