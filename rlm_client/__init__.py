"""A Python client for RLM Engine: its HTTP API, sync (`RLMClient`) and async (`AsyncRLMClient`),
and `RLM`, an interface shaped like the reference implementation's, over a server or embedded.

Importing it loads httpx and pydantic only: no Flask, Celery, SQLAlchemy or litellm (embedded
mode imports the engine on first use). See docs/integrations/python.md.
"""

from rlm_client.aio import AsyncRLMClient
from rlm_client.client import RLMClient
from rlm_client.compat import RLM, ExecutionFailed, ModelUsageSummary, RLMChatCompletion, UsageSummary
from rlm_client.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RLMClientError,
    ServiceUnavailableError,
    WaitTimeout,
)
from rlm_client.http import RetryPolicy
from rlm_client.models import Event, Execution, Page, Session, Trace, TraceNode, Usage

__all__ = [
    "RLM",
    "APIError",
    "AsyncRLMClient",
    "AuthenticationError",
    "ConflictError",
    "Event",
    "Execution",
    "ExecutionFailed",
    "InvalidRequestError",
    "ModelUsageSummary",
    "NotFoundError",
    "Page",
    "RLMChatCompletion",
    "RLMClient",
    "RLMClientError",
    "RateLimitedError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Session",
    "Trace",
    "TraceNode",
    "Usage",
    "UsageSummary",
    "WaitTimeout",
]
