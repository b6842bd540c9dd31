"""gunicorn settings for `web` (Procfile, docker-compose.yml, render.yaml): JSON logs on stderr."""

import os

from rlm_worker.logging_setup import gunicorn_logconfig_dict

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 8
timeout = 120
forwarded_allow_ips = "*"
logconfig_dict = gunicorn_logconfig_dict()
