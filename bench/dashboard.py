"""Dashboard benchmark: the list, each filter, search, usage and export at a million records.

    python bench/dashboard.py                      # builds /tmp/sg-dashboard-bench/gateway.db once
    python bench/dashboard.py --rows 100000        # a smaller database
    python bench/dashboard.py --rebuild            # build the database again

The database is built in SQLite with the migrations before 0005, then 0005 is applied (so
the figure for building the search index over existing rows is measured too). Rows span 30
days and look like real traffic: chat, responses, messages and embeddings requests with
prompt and reply text, streams with SSE transcripts, errors, blocks and disconnects.

Each figure is the median of several runs of the real route (Flask test client, admin token,
JSON serialization included), with the first (cold) run reported beside it. Export runs in a
child process so its peak RSS is its own. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simple_gateway.ids import _TO_CROCKFORD  # noqa: E402
from simple_gateway.store.migrate import MIGRATIONS_ROOT, migrate_sqlite  # noqa: E402

TOKEN = "bench-admin-token"
DAYS = 30
WORDS = str.split(
    "refund order invoice shipping account password reset weather forecast summary translate "
    "python function error database query latency customer support billing subscription "
    "cancel upgrade plan report quarterly revenue meeting schedule calendar email draft reply "
    "recipe travel flight hotel booking review contract clause summary bullet points table "
    "chart image caption audio transcript kubernetes deploy rollback incident postmortem "
    "security vulnerability patch release notes changelog onboarding checklist marketing"
)
PROVIDERS = [
    ("openai", ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini"], 0.6),
    ("anthropic", ["claude-3-5-haiku", "claude-sonnet-4"], 0.3),
    ("ollama", ["llama3.1:8b", "qwen2.5:7b"], 0.1),
]
PATHS = {
    "openai": ["/v1/chat/completions"] * 6 + ["/v1/responses"] * 2 + ["/v1/embeddings"],
    "anthropic": ["/anthropic/v1/messages"],
    "ollama": ["/ollama/v1/chat/completions"],
}
COLUMNS = (
    "id",
    "request_id",
    "started_at",
    "first_byte_at",
    "ended_at",
    "provider",
    "method",
    "path",
    "model",
    "stream",
    "status",
    "duration_ms",
    "ttfb_ms",
    "request_headers",
    "response_headers",
    "request_body",
    "request_body_size",
    "request_content_type",
    "response_body",
    "response_body_size",
    "response_content_type",
    "response_text",
    "input_tokens",
    "output_tokens",
    "usage_source",
    "cost_usd",
    "cost_status",
    "error_kind",
    "error_message",
    "outcome",
    "bytes_in",
    "bytes_out",
)


def ulid(ms: int, rng: random.Random) -> str:
    """A ULID for a given instant, as simple_gateway.ids.new_id makes them."""
    value = (ms << 80) | rng.getrandbits(80)
    encoded = base64.b32encode((value << 30).to_bytes(20, "big"))[:26]
    return encoded.translate(_TO_CROCKFORD).decode()


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}+00:00"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n)).capitalize() + "."


def make_row(rng: random.Random, ms: int) -> tuple[object, ...]:
    provider, models, _ = rng.choices(PROVIDERS, weights=[p[2] for p in PROVIDERS])[0]
    model = rng.choice(models)
    path = rng.choice(PATHS[provider])
    stream = path != "/v1/embeddings" and rng.random() < 0.35
    prompt = sentence(rng, rng.randint(8, 60))
    reply = sentence(rng, rng.randint(10, 80))
    roll = rng.random()
    status, outcome, error_kind, error_message = 200, "completed", None, None
    if roll < 0.02:
        status, outcome, error_kind = 500 + rng.choice([0, 2, 3]), "upstream_error", "upstream"
        error_message = "The server had an error while processing your request."
    elif roll < 0.05:
        status, outcome, error_kind = rng.choice([400, 401, 429]), "upstream_error", "upstream"
        error_message = "Rate limit reached for requests"
    elif roll < 0.055:
        status, outcome, error_kind = 200, "blocked", "guardrail"
    elif roll < 0.06:
        status, outcome, error_kind = 200, "client_disconnected", "client"
    duration = rng.lognormvariate(7.0, 0.9)  # median ~1.1 s, long tail
    ttfb = duration * rng.uniform(0.05, 0.4)
    body = json.dumps(
        {
            "model": model,
            "stream": stream,
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": prompt},
            ],
        }
    )
    if stream:
        words = reply.split()
        events = [f'data: {{"choices":[{{"delta":{{"content":"{w} "}}}}]}}' for w in words[:40]]
        response = "\n\n".join([*events, "data: [DONE]"]) + "\n\n"
        content_type = "text/event-stream"
    else:
        response = json.dumps(
            {
                "id": "chatcmpl-x",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(reply) // 4},
            }
        )
        content_type = "application/json"
    ok = outcome == "completed"
    input_tokens = len(prompt) // 4 if ok else None
    output_tokens = len(reply) // 4 if ok else None
    cost = round((input_tokens or 0) * 1.5e-7 + (output_tokens or 0) * 6e-7, 8) if ok else None
    rid = ulid(ms, rng)
    return (
        rid,
        rid,
        iso(ms),
        iso(ms + int(ttfb)),
        iso(ms + int(duration)),
        provider,
        "POST",
        path,
        model,
        int(stream),
        status,
        round(duration, 3),
        round(ttfb, 3),
        '{"authorization": "[REDACTED] sha256:1a2b3c4d", "content-type": "application/json"}',
        '{"content-type": "' + content_type + '"}',
        body,
        len(body),
        "application/json",
        response,
        len(response),
        content_type,
        reply if ok else None,
        input_tokens,
        output_tokens,
        "response" if ok else None,
        cost,
        "priced" if ok else "no_usage",
        error_kind,
        error_message,
        outcome,
        len(body),
        len(response),
    )


def build(path: Path, rows: int) -> None:
    """Insert `rows` records with the migrations before 0005, then apply 0005 and time it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    early = Path(tempfile.mkdtemp(prefix="sg-bench-migrations-"))
    for dialect in ("sqlite", "postgres"):
        (early / dialect).mkdir()
        for file in (MIGRATIONS_ROOT / dialect).glob("*.sql"):
            if file.name < "0005":
                shutil.copy(file, early / dialect / file.name)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 16384")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    migrate_sqlite(conn, early)
    shutil.rmtree(early)
    rng = random.Random(7)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - DAYS * 86_400_000
    step = (end_ms - start_ms) / rows
    insert = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    started = time.perf_counter()
    batch = 20_000
    for first in range(0, rows, batch):
        conn.execute("BEGIN")
        conn.executemany(
            insert,
            (
                make_row(rng, int(start_ms + (first + i) * step))
                for i in range(min(batch, rows - first))
            ),
        )
        conn.execute("COMMIT")
        print(f"\r  inserted {first + batch:,} rows", end="", flush=True)
    print(f"\n  {rows:,} rows inserted in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    applied = migrate_sqlite(conn)
    print(f"  migration {applied} over {rows:,} rows: {time.perf_counter() - started:.0f} s")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"  database size: {path.stat().st_size / 1e9:.2f} GB")


def write_cost(rows: int = 20_000) -> None:
    """Rows per second inserted in batches of 500, without and with migration 0005's triggers."""
    rng = random.Random(3)
    start_ms = int(time.time() * 1000)
    batch = [make_row(rng, start_ms + i) for i in range(rows)]
    insert = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    # 0006 takes the triggers of 0005 off the insert again: the cost measured is theirs.
    schemas = (
        ("without 0005", lambda name: name < "0005"),
        ("with 0005", lambda name: name < "0006"),
    )
    for label, keep in schemas:
        folder = Path(tempfile.mkdtemp(prefix="sg-bench-write-"))
        for dialect in ("sqlite", "postgres"):
            (folder / dialect).mkdir()
            for file in (MIGRATIONS_ROOT / dialect).glob("*.sql"):
                if keep(file.name):
                    shutil.copy(file, folder / dialect / file.name)
        conn = sqlite3.connect(folder / "g.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate_sqlite(conn, folder)
        started = time.perf_counter()
        for first in range(0, rows, 500):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch[first : first + 500])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        shutil.rmtree(folder)
        print(f"write cost {label}: {rows / elapsed:,.0f} records/s (batches of 500, SQLite)")


def client(db_path: Path):  # type: ignore[no-untyped-def]
    from simple_gateway.app import create_app
    from simple_gateway.settings import load_settings

    settings = load_settings(
        {
            "DB_PATH": str(db_path),
            "ADMIN_TOKEN": TOKEN,
            "LOG_LEVEL": "warning",
            "FILE_STORAGE_PATH": str(db_path.parent / "files"),
        },
        dotenv_path=None,
    )
    app = create_app(settings)
    return app.test_client()


def timed(http, url: str, runs: int = 5) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    status = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = http.get(url, headers=headers)
        _ = response.data
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return times[0], statistics.median(times[1:] or times), status


def export_child(db_path: Path, fmt: str) -> None:
    http = client(db_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = http.get(
        f"/api/export?format={fmt}", headers={"Authorization": f"Bearer {TOKEN}"}, buffered=False
    )
    size = lines = 0
    for chunk in response.response:
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "bytes": size,
                "lines": lines,
                "rss_before_mb": before / 1024,
                "peak_rss_mb": peak / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/sg-dashboard-bench/gateway.db")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--export-child", choices=["csv", "jsonl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    db_path = Path(args.db)
    if args.export_child:
        export_child(db_path, args.export_child)
        return
    if args.rebuild or not db_path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        print(f"building {db_path} with {args.rows:,} records")
        build(db_path, args.rows)
    count = sqlite3.connect(db_path).execute("SELECT count(*) FROM requests").fetchone()[0]
    http = client(db_path)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86_400))
    cases = [
        ("list: first page", "/api/requests", 200),
        ("list: page 2 (keyset)", None, 200),
        ("filter provider=anthropic", "/api/requests?provider=anthropic", 200),
        ("filter model=o3-mini", "/api/requests?model=o3-mini", 200),
        ("filter status=5xx", "/api/requests?status=5xx", 200),
        ("filter outcome=errors", "/api/requests?outcome=errors", 200),
        ("filter outcome=blocked", "/api/requests?outcome=blocked", 200),
        ("filter outcome=client_disconnected", "/api/requests?outcome=client_disconnected", 200),
        ("filter path=embeddings", "/api/requests?path=embeddings", 200),
        (
            "filter time range (one day, 10 days ago)",
            f"/api/requests?since={day}T00:00&until={day}T23:59",
            200,
        ),
        ("filter min_ms=20000", "/api/requests?min_ms=20000", 200),
        (
            "filters combined (provider, model, 4xx, range)",
            f"/api/requests?provider=openai&model=gpt-4o&status=4xx&since={day}T00:00",
            200,
        ),
        ("live poll (after newest)", None, 200),
        ("page: /dashboard/ (HTML, first page)", "/dashboard/", 200),
        ("search: common word 'refund'", "/api/requests?q=refund", 500),
        ("search: two words 'kubernetes rollback'", "/api/requests?q=kubernetes+rollback", 500),
        ("search: absent word 'zyzzyva'", "/api/requests?q=zyzzyva", 500),
        (
            "search + filter (anthropic, 'invoice')",
            "/api/requests?q=invoice&provider=anthropic",
            500,
        ),
        ("usage: 24h", "/api/usage?range=24h", 1000),
        ("usage: 7d", "/api/usage?range=7d", 1000),
        ("usage: 30d (all rows)", "/api/usage?range=30d", 1000),
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = http.get("/api/requests", headers=headers).get_json()
    print(f"\n{count:,} records in {db_path} ({db_path.stat().st_size / 1e9:.2f} GB)\n")
    print("| query | cold ms | median ms | target ms | met |")
    print("|---|---:|---:|---:|---|")
    for name, url, target in cases:
        if name.startswith("list: page 2"):
            url = f"/api/requests?before={first['next_before']}"
        if name.startswith("live poll"):
            mark = urllib.parse.quote(first["poll_mark"])
            url = f"/api/requests?after={first['rows'][0]['id']}&ended_since={mark}"
        if url.startswith("/dashboard/"):
            cold, median, status = _page_timed(url)
        else:
            cold, median, status = timed(http, url)
        met = "yes" if median <= target and status == 200 else f"NO (status {status})"
        print(f"| {name} | {cold:.0f} | {median:.1f} | {target} | {met} |", flush=True)
    print()
    write_cost()
    for fmt in ("csv", "jsonl"):
        out = (
            subprocess.run(
                [sys.executable, __file__, "--db", str(db_path), "--export-child", fmt],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        figures = json.loads(out)
        print(
            f"\nexport {fmt}: {figures['lines']:,} lines, {figures['bytes'] / 1e6:.0f} MB in "
            f"{figures['seconds']:.1f} s; peak RSS {figures['peak_rss_mb']:.0f} MB "
            f"(after start-up {figures['rss_before_mb']:.0f} MB)"
        )


def _page_timed(url: str) -> tuple[float, float, int]:
    """An HTML page needs a session: log in through the form first."""
    import re

    http = client(Path(_ARGS_DB))
    page = http.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    http.post("/dashboard/login", data={"csrf_token": token, "token": TOKEN})
    times = []
    status = 0
    for _ in range(5):
        started = time.perf_counter()
        response = http.get(url)
        _ = response.data
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return times[0], statistics.median(times[1:]), status


_ARGS_DB = ""

if __name__ == "__main__":
    os.environ.pop("DATABASE_URL", None)
    _ARGS_DB = next(
        (sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--db"),
        "/tmp/sg-dashboard-bench/gateway.db",
    )
    main()
