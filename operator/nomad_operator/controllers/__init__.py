"""The controllers built on the runtime: `gitops` (git -> Nomad jobs) and `nodes` (node-down and node-up handling).

They share one informer cache and one leader, so `assembly` is the only module that builds them together into an
operator process; each controller package stays importable and testable on its own. Nothing below `controllers`
(the runtime, the server, the Nomad client) may import from here: the import-linter contracts keep the layers honest.
"""
