"""Nomad's HCL2 function library (jobspec2/functions.go) as one table: exactly Nomad's names, nothing more.

Why a fixed table: a function we offer and Nomad lacks (`templatefile`, `timestamp`, `toset`) would make a job that
renders here and fails on `nomad job run`; a function Nomad offers and we lack would refuse a valid job. `try`,
`can` and `convert` are in the list but evaluated lazily by the expression evaluator, since they take unevaluated
expressions or a type.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from nomad_operator.jobspec.function_support import LibraryFunction
from nomad_operator.jobspec.functions_collections import COLLECTION_FUNCTIONS
from nomad_operator.jobspec.functions_encoding import ENCODING_FUNCTIONS
from nomad_operator.jobspec.functions_fs import FileAccess, fs_functions
from nomad_operator.jobspec.functions_strings import STRING_FUNCTIONS
from nomad_operator.jobspec.functions_time_network import TIME_NETWORK_FUNCTIONS
from nomad_operator.jobspec.scope import HclFunction

# jobspec2/functions.go, for the record and for a test that our table matches it name for name.
NOMAD_FUNCTION_NAMES = frozenset(
    {
        "abs",
        "base64decode",
        "base64encode",
        "bcrypt",
        "can",
        "ceil",
        "chomp",
        "chunklist",
        "cidrhost",
        "cidrnetmask",
        "cidrsubnet",
        "cidrsubnets",
        "coalesce",
        "coalescelist",
        "compact",
        "concat",
        "contains",
        "convert",
        "csvdecode",
        "distinct",
        "element",
        "flatten",
        "floor",
        "format",
        "formatdate",
        "formatlist",
        "indent",
        "index",
        "join",
        "jsondecode",
        "jsonencode",
        "keys",
        "length",
        "log",
        "lookup",
        "lower",
        "max",
        "md5",
        "merge",
        "min",
        "parseint",
        "pow",
        "range",
        "reverse",
        "replace",
        "regex_replace",
        "rsadecrypt",
        "setintersection",
        "setproduct",
        "setunion",
        "sha1",
        "sha256",
        "sha512",
        "signum",
        "slice",
        "sort",
        "split",
        "strlen",
        "strrev",
        "substr",
        "timeadd",
        "title",
        "trim",
        "trimprefix",
        "trimspace",
        "trimsuffix",
        "try",
        "upper",
        "urlencode",
        "uuidv4",
        "uuidv5",
        "values",
        "yamldecode",
        "yamlencode",
        "zipmap",
        "abspath",
        "basename",
        "dirname",
        "file",
        "filebase64",
        "fileexists",
        "fileset",
        "pathexpand",
    }
)
LAZY_FUNCTION_NAMES = frozenset({"try", "can", "convert"})

_PURE: tuple[LibraryFunction, ...] = (
    COLLECTION_FUNCTIONS + STRING_FUNCTIONS + ENCODING_FUNCTIONS + TIME_NETWORK_FUNCTIONS
)


@functools.lru_cache(maxsize=64)
def nomad_functions(*, base_dir: Path | None, root_dir: Path | None, allow_fs: bool) -> Mapping[str, HclFunction]:
    """The function table for one job file: file functions read relative to `base_dir`, never outside `root_dir`."""
    access = FileAccess(base_dir=base_dir or Path.cwd(), root_dir=root_dir) if allow_fs else None
    table: dict[str, HclFunction] = {function.name: function for function in _PURE}
    table.update({function.name: function for function in fs_functions(access)})
    return table


def validation_functions() -> Mapping[str, HclFunction]:
    """What a variable's validation condition may call: everything, with the file functions off (as in Nomad)."""
    return nomad_functions(base_dir=None, root_dir=None, allow_fs=False)
