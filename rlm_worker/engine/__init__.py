"""The framework-free RLM engine: agent loop, REPL protocol, prompts, memory.

Nothing in this package imports Flask, Celery or SQLAlchemy. It talks to the outside
through the ports in :mod:`rlm_worker.engine.ports`.
"""
