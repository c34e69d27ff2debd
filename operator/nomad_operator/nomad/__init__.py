"""Nomad access: the async HTTP client for the Nomad API and the event-stream reader."""
