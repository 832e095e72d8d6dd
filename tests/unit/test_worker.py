"""The worker's pieces that need no server: error rendering and the request thread pool."""

from __future__ import annotations

import json
import threading

from gunicorn.http import errors as http_errors

from simple_gateway.worker import RequestThreads, error_response, http_layer_error


def test_parse_errors_map_to_statuses_and_codes():
    assert http_layer_error(http_errors.LimitRequestHeaders("too big")).status == 431
    assert http_layer_error(http_errors.LimitRequestLine(9000, 4094)).status == 414
    assert http_layer_error(http_errors.InvalidRequestLine("x")).code == "bad_request"
    assert http_layer_error(http_errors.InvalidHeaderName("x")).status == 400
    assert http_layer_error(ValueError("boom")).status == 500


def test_an_error_response_is_a_complete_json_http_message():
    raw = error_response(http_layer_error(http_errors.InvalidRequestLine("x")), "rid-1")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["x-request-id"] == "rid-1"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_request_threads_run_more_tasks_than_were_prestarted_without_blocking_submit():
    pool = RequestThreads(max_workers=20, prestart=2)
    together = threading.Barrier(20, timeout=30)  # passes only with 20 threads running at once
    try:
        futures = [pool.submit(together.wait) for _ in range(20)]
        assert sorted(f.result(timeout=30) for f in futures) == list(range(20))
    finally:
        pool.shutdown(wait=True)
