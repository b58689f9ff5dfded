"""Drives ragspin's /v1/chat/completions with the official openai SDK.

Usage: python3 openai_sdk.py BASE_URL API_KEY   (BASE_URL ends with /v1)
Prints one JSON line summarising what the SDK saw; exits non-zero on failure.
"""

import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
question = [{"role": "user", "content": "What is the battery life of the Zephyr phone?"}]

plain = client.chat.completions.create(model="docs", messages=question)
assert plain.object == "chat.completion", plain
assert plain.choices[0].message.role == "assistant"
extra = plain.model_extra or {}
citations = extra.get("citations") or []

stream = client.chat.completions.create(
    model="docs",
    messages=question,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, streamed_citations, usage = [], [], None
for chunk in stream:
    if chunk.choices:
        delta = chunk.choices[0].delta
        if delta.content:
            pieces.append(delta.content)
        if chunk.choices[0].finish_reason:
            streamed_citations = (chunk.model_extra or {}).get("citations") or []
    if chunk.usage:
        usage = chunk.usage

try:
    client.chat.completions.create(model="no-such-index", messages=question)
    missing = 200
except openai.NotFoundError as e:
    missing = e.status_code

print(
    json.dumps(
        {
            "plain": plain.choices[0].message.content,
            "plain_citation": citations[0]["filename"] if citations else None,
            "streamed": "".join(pieces),
            "streamed_citation": streamed_citations[0]["filename"] if streamed_citations else None,
            "usage_total": usage.total_tokens if usage else 0,
            "missing_status": missing,
        }
    )
)
