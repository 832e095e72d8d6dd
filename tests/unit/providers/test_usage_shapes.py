"""Usage and text read from Gemini and Replicate replies by their shape."""

from __future__ import annotations

import json

from simple_gateway.providers import register_builtin_types
from simple_gateway.proxy.sse import parse_sse
from simple_gateway.records.usage import summarise_stream, text_from_json, usage_from_json

GEMINI = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}],
    "usageMetadata": {
        "promptTokenCount": 10,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 5,
        "cachedContentTokenCount": 4,
    },
    "modelVersion": "gemini-2.5-flash",
}


def test_gemini_usage_counts_thinking_as_output():
    register_builtin_types()
    usage = usage_from_json(GEMINI)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (10, 8)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 5)
    assert text_from_json(GEMINI) == "Hi"


def test_gemini_stream_takes_the_last_usage_and_joins_the_text():
    register_builtin_types()
    first = {**GEMINI, "usageMetadata": {"promptTokenCount": 10}}
    data = f"data: {json.dumps(first)}\r\n\r\ndata: {json.dumps(GEMINI)}\r\n\r\n".encode()
    summary = summarise_stream(parse_sse(data))
    assert summary.text == "HiHi"
    assert summary.usage is not None and summary.usage.output_tokens == 8
    assert summary.model == "gemini-2.5-flash"


def test_replicate_prediction_metrics_and_token_output():
    register_builtin_types()
    prediction = {
        "id": "p",
        "status": "succeeded",
        "urls": {"get": "x"},
        "output": ["Hel", "lo"],
        "metrics": {"input_token_count": 7, "output_token_count": 2, "predict_time": 1.0},
    }
    usage = usage_from_json(prediction)
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (7, 2)
    assert text_from_json(prediction) == "Hello"
    image = {**prediction, "output": ["https://replicate.delivery/a.png"], "metrics": {}}
    assert text_from_json(image) is None and usage_from_json(image) is None
