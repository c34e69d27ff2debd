"""nomad-operator: a Kubernetes-style operator framework for HashiCorp Nomad.

The public surface is small on purpose: the Nomad client (`nomad_operator.nomad`), the jobspec converter
(`nomad_operator.jobspec`), the runtime for writing controllers (`nomad_operator.runtime`), the simulator
(`nomad_operator.sim`) and the testing toolkit (`nomad_operator.testing`). Everything else is internal.
"""

__version__ = "0.1.0"
