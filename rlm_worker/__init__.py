"""RLM Engine worker side: the framework-free engine, the sandbox, and the Celery adapter."""
