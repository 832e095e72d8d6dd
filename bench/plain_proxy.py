"""The reference point the targets are stated against: a plain Flask + requests proxy.

It forwards `/v1/*` to PLAIN_UPSTREAM and streams the answer back, the way a first
attempt at a gateway would, with nothing recorded. Served by gunicorn gthread like the
gateway, so the comparison is about the code in between.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import requests
from flask import Flask, Response, request

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}

app = Flask(__name__)
session = requests.Session()
upstream = os.environ.get("PLAIN_UPSTREAM", "http://127.0.0.1:9000")


@app.route("/v1/<path:path>", methods=["GET", "POST"])
def proxy(path: str) -> Response:
    headers = {k: v for k, v in request.headers if k.lower() not in HOP_BY_HOP}
    reply = session.request(
        request.method,
        f"{upstream}/v1/{path}",
        data=request.get_data(),
        headers=headers,
        stream=True,
    )

    def body() -> Iterator[bytes]:
        yield from reply.iter_content(None)

    kept = [(k, v) for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP]
    return Response(body(), status=reply.status_code, headers=kept)
