"""The Nomad simulator: a Nomad-API-compatible cluster in one process, the embedded default and the test bed."""
