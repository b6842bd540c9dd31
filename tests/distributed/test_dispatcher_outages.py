"""A leaf task that failed only because a service was unreachable is sent again, not reported."""

from __future__ import annotations

from rlm_worker.dispatchers import _lost_a_service


def test_outage_failures_are_recognised_whatever_form_the_backend_returns():
    assert _lost_a_service(ConnectionError("Error 111 connecting to 127.0.0.1:6379"))
    assert _lost_a_service({"exc_type": "OperationalError", "exc_message": ["server closed"]})
    assert _lost_a_service(TimeoutError())


def test_a_failure_of_the_call_itself_is_not_an_outage():
    assert not _lost_a_service(ValueError("bad prompt"))
    assert not _lost_a_service({"exc_type": "KeyError", "exc_message": ["x"]})
    assert not _lost_a_service("FAILURE")
