"""Job files: `.nomad` HCL to Nomad's API JSON job, faithful to Nomad's own jobspec2."""
