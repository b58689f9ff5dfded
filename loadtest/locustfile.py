"""ragspin load test: a scenario mix of what real clients do.

    make loadtest                       # local: test host + fake Azure OpenAI
    LOADTEST_HOST=https://ragspin.example.com LOADTEST_PASSWORD=... make loadtest

Each simulated user logs in once, then picks tasks by weight:

| task            | weight | request                                            |
|-----------------|--------|----------------------------------------------------|
| search          | 4      | POST /v1/search                                    |
| query           | 3      | POST /v1/query (a pool of questions, so repeats hit the answer cache; 1 in 3 is new) |
| streamed query  | 2      | POST /v1/query {"stream": true}, read to the `done` event |
| upload          | 1      | POST /v1/indexes/{index}/documents (new text: chunking + embeddings) |
| login           | 1      | POST /auth/token (Argon2id: deliberately expensive) |

Before users start, `test_start` creates the index (PUT, idempotent) and
uploads a few seed documents. Environment:
  LOADTEST_USERNAME (admin), LOADTEST_PASSWORD (required),
  LOADTEST_INDEX (loadtest), LOADTEST_DIMENSIONS (256).
"""

from __future__ import annotations

import json
import os
import random
import uuid

import requests
from locust import HttpUser, between, events, task

USERNAME = os.environ.get("LOADTEST_USERNAME", "admin")
PASSWORD = os.environ.get("LOADTEST_PASSWORD", "")
INDEX = os.environ.get("LOADTEST_INDEX", "loadtest")
DIMENSIONS = int(os.environ.get("LOADTEST_DIMENSIONS", "256"))

TOPICS = [
    ("battery", "The phone battery lasts two days; the charger is a 30 W USB-C charger."),
    ("parking", "Visitors park in the north lot; the garage closes at 22:00 on weekdays."),
    ("refunds", "Refunds are paid within 14 days to the original payment method."),
    ("warranty", "The warranty covers manufacturing defects for 24 months from delivery."),
    ("shipping", "Orders ship from the Leipzig warehouse; express delivery takes one day."),
    ("security", "Badges are required in the server room; visitors sign in at reception."),
    ("lunch", "The cafe serves lunch from 11:30 to 14:00 and a vegan dish every day."),
    ("vpn", "Remote staff connect through the VPN with their hardware token."),
]
QUESTIONS = [
    "How long does the battery last?",
    "Where do visitors park?",
    "How fast are refunds paid?",
    "What does the warranty cover?",
    "How long does express delivery take?",
    "Who may enter the server room?",
    "When is lunch served?",
    "How do remote staff connect?",
]


def seed_document(topic: str, text: str) -> dict:
    body = "\n\n".join(
        [f"# {topic.title()}", text, f"## Details\n{text} Ask the {topic} team for exceptions."]
    )
    return {"filename": f"{topic}.md", "content": body, "content_type": "text/markdown", "metadata": {"topic": topic}}


@events.test_start.add_listener
def create_index(environment, **_kwargs):
    """Index + seed documents, once, before any user starts."""
    if not PASSWORD:
        raise SystemExit("LOADTEST_PASSWORD is not set")
    host = environment.host.rstrip("/")
    session = requests.Session()
    r = session.post(f"{host}/auth/token", json={"username": USERNAME, "password": PASSWORD}, timeout=60)
    r.raise_for_status()
    session.headers["authorization"] = f"Bearer {r.json()['access_token']}"
    r = session.put(f"{host}/v1/indexes/{INDEX}", json={"dimensions": DIMENSIONS}, timeout=60)
    if r.status_code not in (200, 201):
        raise SystemExit(f"PUT /v1/indexes/{INDEX}: {r.status_code} {r.text[:300]}")
    for topic, text in TOPICS:
        r = session.post(f"{host}/v1/indexes/{INDEX}/documents", json=seed_document(topic, text), timeout=120)
        if r.status_code not in (200, 201, 202):
            raise SystemExit(f"seed {topic}: {r.status_code} {r.text[:300]}")


class RagUser(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self):
        self.login()

    def login(self):
        with self.client.post(
            "/auth/token",
            json={"username": USERNAME, "password": PASSWORD},
            name="/auth/token",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            self.client.headers["authorization"] = f"Bearer {r.json()['access_token']}"

    @task(1)
    def login_task(self):
        self.login()

    @task(1)
    def upload(self):
        topic, text = random.choice(TOPICS)
        doc = seed_document(topic, f"{text} Revision {uuid.uuid4().hex[:12]}.")
        doc["filename"] = f"{topic}-{uuid.uuid4().hex[:8]}.md"
        with self.client.post(
            f"/v1/indexes/{INDEX}/documents", json=doc, name="/v1/indexes/{index}/documents", catch_response=True
        ) as r:
            if r.status_code not in (200, 201, 202):
                r.failure(f"{r.status_code}: {r.text[:200]}")

    @task(4)
    def search(self):
        query = random.choice(QUESTIONS)
        with self.client.post(
            "/v1/search", json={"index": INDEX, "query": query, "top_k": 5}, name="/v1/search", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")

    def question(self) -> str:
        q = random.choice(QUESTIONS)
        # One in three is new text, so it misses the answer cache.
        return q if random.random() < 2 / 3 else f"{q} (case {random.randint(1, 10**6)})"

    @task(3)
    def query(self):
        with self.client.post(
            "/v1/query", json={"index": INDEX, "question": self.question()}, name="/v1/query", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif "answer" not in r.json():
                r.failure("no answer in the body")

    @task(2)
    def streamed_query(self):
        with self.client.post(
            "/v1/query",
            json={"index": INDEX, "question": self.question(), "stream": True},
            name="/v1/query [stream]",
            stream=True,
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            events_seen = []
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("event:"):
                    events_seen.append(line.split(":", 1)[1].strip())
            if not events_seen or events_seen[-1] != "done":
                r.failure(f"stream ended without `done`: {json.dumps(events_seen[-5:])}")
