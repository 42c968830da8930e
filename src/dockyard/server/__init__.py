"""The HTTP server: the inference plane, the control plane and /metrics in one ASGI app."""
