"""About the service rather than one resource: usage stats, health, the OpenAPI document."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from rlm_api.auth import owned
from rlm_api.database import db
from rlm_api.health import health_report
from rlm_api.launch import dispatch_mode
from rlm_api.openapi import openapi_document
from rlm_api.routes import bp
from rlm_shared.live_totals import answered_model_call, cancelled_sub_call
from rlm_shared.models import EXECUTION_STATUSES, MODEL_CALL_KINDS, Execution, TraceNode


@bp.get("/stats")
def stats():
    """Totals over the caller's executions, and model calls per model."""
    totals = db.session.execute(
        owned(
            sa.select(
                Execution.status,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(Execution.total_input_tokens), 0),
                sa.func.coalesce(sa.func.sum(Execution.total_output_tokens), 0),
                sa.func.coalesce(sa.func.sum(Execution.total_cost_usd), 0.0),
            ).group_by(Execution.status),
            Execution,
        )
    ).all()
    by_model = db.session.execute(
        owned(
            sa.select(
                TraceNode.model,
                sa.func.count().filter(answered_model_call()),
                sa.func.count().filter(cancelled_sub_call()),
                sa.func.coalesce(sa.func.sum(TraceNode.input_tokens), 0),
                sa.func.coalesce(sa.func.sum(TraceNode.output_tokens), 0),
                sa.func.coalesce(sa.func.sum(TraceNode.cost_usd), 0.0),
            )
            .join(Execution, Execution.id == TraceNode.execution_id)
            .where(TraceNode.kind.in_(MODEL_CALL_KINDS), TraceNode.model.is_not(None))
            .group_by(TraceNode.model)
            .order_by(sa.func.sum(TraceNode.cost_usd).desc(), TraceNode.model),
            Execution,
        )
    ).all()
    no_answer = db.session.scalar(
        owned(
            sa.select(sa.func.count()).where(
                Execution.status == "succeeded", Execution.answer_found.is_(False)
            ),
            Execution,
        )
    )
    by_status = dict.fromkeys(EXECUTION_STATUSES, 0)
    for status, count, *_ in totals:
        by_status[status] = int(count)
    return {
        "executions": sum(int(row[1]) for row in totals),
        "by_status": by_status,
        "total_input_tokens": sum(int(row[2]) for row in totals),
        "total_output_tokens": sum(int(row[3]) for row in totals),
        "total_cost_usd": round(sum(float(row[4]) for row in totals), 6),
        "no_answer_found": int(no_answer or 0),
        "by_model": [
            {
                "model": model,
                "calls": int(calls),
                "cancelled_calls": int(cancelled),
                "input_tokens": int(tokens_in),
                "output_tokens": int(tokens_out),
                "cost_usd": round(float(cost), 6),
            }
            for model, calls, cancelled, tokens_in, tokens_out, cost in by_model
        ],
    }


@bp.get("/health")
def health():
    report, status = health_report(dispatch_mode(), current_app.extensions["celery"])
    return report, status


@bp.get("/openapi.json")
def openapi():
    return openapi_document()
