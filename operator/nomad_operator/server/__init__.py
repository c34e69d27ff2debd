"""The operator's HTTP server: webhook receivers, /metrics, /healthz, /readyz."""
