"""RLM Engine worker side: the Celery adapter, the runner it and embedded mode share, the sandbox,
and the framework-free engine (`engine/`, the bottom layer: it imports nothing above it)."""
