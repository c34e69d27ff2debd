"""The operator's HTTP server: webhook receivers, /metrics, /healthz, /readyz.

One aiohttp application per process (`app`), so every part that answers HTTP shares one port, one request-size limit
and one short shutdown; `health` keeps liveness and readiness apart, and `webhooks` with `webhook_providers` treat
every request as hostile until its signature is checked. Nothing here knows the controllers: they register routes.
"""
