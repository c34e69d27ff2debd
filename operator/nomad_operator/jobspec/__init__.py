"""Job files: `.nomad` HCL to Nomad's API JSON job, faithful to Nomad's own jobspec2.

The public surface; everything else in this package is private:
- `load_job(path, ...) -> LoadedJob` converts one file with its variables (job, ID, namespace, spec hash);
- `JobLoader` does the same for the long-running controller: cached by content hash, large files in a process
  pool, `await loader.load_many(paths)`;
- `parse_for_api(hcl, variables=..., canonicalize=...)` is what the simulator's `/v1/jobs/parse` answers;
- `map_job(block)`, `canonicalize(job)`, `spec_hash(job)`, `go_json(value)` and `field_differences(ours, theirs)`
  are the pieces, for callers that have a body or a job in hand;
- every problem is a `JobspecError` with a `SourcePos`; several at once are a `JobspecErrors`.
"""

from nomad_operator.jobspec.body import Attribute, Block, Value
from nomad_operator.jobspec.canonical import canonicalize
from nomad_operator.jobspec.errors import JobspecError, JobspecErrors, SourcePos
from nomad_operator.jobspec.field_diff import FieldDifference, field_differences
from nomad_operator.jobspec.go_json import go_json
from nomad_operator.jobspec.job_file import LoadedJob, load_job, parse_for_api, spec_hash
from nomad_operator.jobspec.loader import JobLoader
from nomad_operator.jobspec.mapping import map_job

__all__ = [
    "Attribute",
    "Block",
    "FieldDifference",
    "JobLoader",
    "JobspecError",
    "JobspecErrors",
    "LoadedJob",
    "SourcePos",
    "Value",
    "canonicalize",
    "field_differences",
    "go_json",
    "load_job",
    "map_job",
    "parse_for_api",
    "spec_hash",
]
