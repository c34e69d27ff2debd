"""The simulator's HTTP API: Nomad's routes over aiohttp, one module per resource, plus the `/v1/sim/` fault API."""
