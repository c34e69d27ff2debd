"""Controllers built on the runtime."""
