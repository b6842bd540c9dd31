"""Who is calling: bearer tokens for `/api`, a login for the dashboard, CSRF for its forms.

With `API_TOKENS` unset everything is open (local use). With it set:
- every `/api` and `/v1` call but `/api/health` and `/api/openapi.json` needs `Authorization: Bearer <token>`;
  the caller's *owner* is the token's sha256, stored on the rows it creates, so executions and
  sessions of one token are invisible to the others. The token itself is never stored or logged.
- each token has a request rate (`API_RATE_LIMIT`) and a cap on active executions
  (`API_MAX_ACTIVE_EXECUTIONS`, checked where executions are created);
- dashboard pages need a login (any configured token) kept in the session cookie, and every
  POST to them needs the CSRF token (`{{ csrf_token() }}` in a hidden `csrf_token` field; the
  `csrf_token` Jinja global exists only then, since without a login there is nothing to protect).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from rlm_api.errors import APIError
from rlm_api.ratelimit import TokenRateLimiter, storage_uri
from rlm_worker import metrics

log = logging.getLogger("rlm.api.auth")

#: Endpoints a load balancer or a client generator must reach without a token.
PUBLIC_API_ENDPOINTS = frozenset({"api.health", "api.openapi"})
SESSION_KEY = "rlm_owner"
#: Paths behind the bearer tokens: the API, and its OpenAI-compatible face (`/v1/chat/completions`).
API_PREFIXES = ("/api/", "/v1/")
LOGIN_RATE = "10/minute"

csrf = CSRFProtect()
bp = Blueprint("auth", __name__, template_folder="templates")


def token_hash(token: str) -> str:
    """The owner id of a token: its sha256 (tokens are long random secrets, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class AuthState:
    owners: frozenset[str]
    limiter: TokenRateLimiter | None
    login_limiter: TokenRateLimiter | None
    max_active_executions: int

    @property
    def enabled(self) -> bool:
        return bool(self.owners)

    def owner_of(self, token: str) -> str | None:
        digest = token_hash(token)
        matched = [hmac.compare_digest(digest, known) for known in self.owners]
        return digest if any(matched) else None


def _state() -> AuthState:
    return current_app.extensions["rlm_auth"]


def auth_enabled() -> bool:
    return _state().enabled


def current_owner() -> str | None:
    """The calling token's owner id, or None when the API is open."""
    return g.get(SESSION_KEY)


def owned(stmt: sa.Select, model: Any) -> sa.Select:
    """Only the calling token's rows when tokens are configured; every row when the API is open."""
    owner = current_owner()
    return stmt if owner is None else stmt.where(model.owner == owner)


def max_active_executions() -> int:
    return _state().max_active_executions


def init_auth(app: Flask) -> None:
    settings = app.config["RLM_SETTINGS"]
    tokens = [t.strip() for t in (settings.api_tokens or "").split(",") if t.strip()]
    owners = frozenset(token_hash(t) for t in tokens)
    limiter = login_limiter = None
    if owners:
        uri = storage_uri(settings, app.config.get("RLM_DISPATCH", settings.dispatch))
        limiter = TokenRateLimiter(settings.api_rate_limit, uri)
        login_limiter = TokenRateLimiter(LOGIN_RATE, uri)
        if app.config.get("SECRET_KEY") == "dev-insecure-change-me":
            log.warning(
                "API_TOKENS is set but SECRET_KEY is the default: set SECRET_KEY for dashboard logins"
            )
    app.extensions["rlm_auth"] = AuthState(owners, limiter, login_limiter, settings.api_max_active_executions)
    if owners:  # forms carry `csrf_token()` only when there is a login to protect
        app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked below, for dashboard forms only
        app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the login session
        csrf.init_app(app)
    app.register_blueprint(bp)
    app.before_request(_guard)
    app.jinja_env.globals["auth_enabled"] = auth_enabled
    app.jinja_env.globals["logged_in"] = lambda: bool(session.get(SESSION_KEY))


def _guard() -> Response | None:
    state = _state()
    if not state.enabled:
        return None
    if request.path == "/api" or request.path.startswith(API_PREFIXES):
        _authenticate_api(state)
    elif request.blueprint == "dashboard" and request.endpoint != "dashboard.static":
        return _require_login(state)
    return None


def _authenticate_api(state: AuthState) -> None:
    if request.endpoint in PUBLIC_API_ENDPOINTS:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    owner = state.owner_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if owner is None:
        raise APIError(
            401,
            "unauthorized",
            "send a valid API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="rlm"'},
        )
    g.setdefault(SESSION_KEY, owner)
    try:
        _count_request(state, owner)
    except TooManyRequests as exc:
        raise APIError(
            429, "rate_limited", str(exc.description), headers={"Retry-After": str(exc.retry_after)}
        ) from None


def _count_request(state: AuthState, owner: str) -> None:
    """One request against the token's `API_RATE_LIMIT`, whichever way in it came (API, form)."""
    assert state.limiter is not None
    retry_after = state.limiter.hit(owner)
    if retry_after is not None:
        metrics.guard_tripped("api_rate_limit")
        raise TooManyRequests(
            f"this token may make {state.limiter.rate}; retry in {retry_after} s", retry_after=retry_after
        )


def _require_login(state: AuthState) -> Response | None:
    owner = session.get(SESSION_KEY)
    if not owner or owner not in state.owners:
        session.pop(SESSION_KEY, None)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    g.setdefault(SESSION_KEY, owner)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
        _count_request(state, owner)  # a form post starts what an API call would: the same rate
    return None


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.executions")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    state = _state()
    next_url = _safe_next(request.values.get("next"))
    if not state.enabled:
        return redirect(next_url)
    if request.method == "GET":
        return render_template("login.html", next_url=next_url, error=None)
    csrf.protect()
    assert state.login_limiter is not None
    retry_after = state.login_limiter.hit(f"login:{request.remote_addr}")
    if retry_after is not None:
        metrics.guard_tripped("login_rate_limit")
        error = f"Too many attempts; try again in {retry_after} s."
        return render_template("login.html", next_url=next_url, error=error), 429
    owner = state.owner_of(request.form.get("token", "").strip())
    if owner is None:
        return render_template("login.html", next_url=next_url, error="That token is not valid."), 401
    session.clear()
    session[SESSION_KEY] = owner
    return redirect(next_url)


@bp.post("/logout")
def logout():
    if _state().enabled:
        csrf.protect()
    session.clear()
    return redirect(url_for("auth.login"))


def require_token() -> None:
    """For endpoints outside `/api` that take the API's tokens (`/mcp`): the same 401 and 429."""
    state = _state()
    if state.enabled:
        _authenticate_api(state)
