"""Testing toolkit: pytest fixtures that start a simulator and an operator in-process, and waiting helpers."""
