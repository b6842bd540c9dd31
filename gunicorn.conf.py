"""gunicorn settings for `web` (Procfile, docker-compose.yml, render.yaml): JSON logs on stderr,
Prometheus metrics summed over every worker process (rlm_worker/metrics.py)."""

import os

from rlm_worker import metrics
from rlm_worker.logging_setup import gunicorn_logconfig_dict

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 8
timeout = 120
forwarded_allow_ips = "*"
logconfig_dict = gunicorn_logconfig_dict()


def on_starting(server):
    metrics.use_multiprocess_dir()  # before any worker forks: they all write their metrics there


def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)  # its live gauges stop counting; its counters stay
