-- Guardrails: one row per execution of a guardrail on an exchange, written in the same
-- batch as the exchange's own row; the name of the guardrail that refused an exchange.

ALTER TABLE requests ADD COLUMN blocked_by TEXT;

-- No foreign key to requests: the two rows travel together but must not depend on the
-- order of inserts in a batch (a lost metric row is what that race costs elsewhere).
CREATE TABLE guardrail_runs (
    id            TEXT PRIMARY KEY,   -- ULID
    record_id     TEXT NOT NULL,      -- requests.id
    started_at    TEXT NOT NULL,
    guardrail     TEXT NOT NULL,
    type          TEXT NOT NULL,
    stage         TEXT NOT NULL,      -- input | output
    priority      INTEGER NOT NULL,
    verdict       TEXT NOT NULL,      -- pass, block, redact, replace, error, timeout, cancelled
    enforced      INTEGER NOT NULL,   -- 0 in monitor mode
    reason        TEXT,
    score         REAL,
    duration_ms   REAL,
    error         TEXT,
    original_text TEXT,               -- the text checked, for blocks and replacements of replies
    override_text TEXT                -- the text that replaced it (redact, replace)
);

CREATE INDEX guardrail_runs_record_id ON guardrail_runs (record_id);
CREATE INDEX guardrail_runs_started_at ON guardrail_runs (started_at);

-- How does each guardrail do? Percentiles are nearest-rank (the value at position
-- ceil(n * p) of the sorted durations), computed the same way in both dialects; cancelled
-- runs count as runs but not in the durations.
CREATE VIEW guardrail_summary AS
WITH timed AS (
    SELECT
        guardrail,
        stage,
        duration_ms,
        row_number() OVER (PARTITION BY guardrail, stage ORDER BY duration_ms) AS position,
        count(*) OVER (PARTITION BY guardrail, stage) AS total
    FROM guardrail_runs
    WHERE verdict <> 'cancelled' AND duration_ms IS NOT NULL
),
percentiles AS (
    SELECT
        guardrail,
        stage,
        max(CASE WHEN position = (total * 50 + 99) / 100 THEN duration_ms END) AS p50_ms,
        max(CASE WHEN position = (total * 95 + 99) / 100 THEN duration_ms END) AS p95_ms
    FROM timed
    GROUP BY guardrail, stage
)
SELECT
    r.guardrail,
    r.stage,
    count(*) AS runs,
    sum(CASE WHEN r.verdict = 'block' THEN 1 ELSE 0 END) AS blocks,
    sum(CASE WHEN r.verdict = 'error' THEN 1 ELSE 0 END) AS errors,
    sum(CASE WHEN r.verdict = 'timeout' THEN 1 ELSE 0 END) AS timeouts,
    p.p50_ms,
    p.p95_ms
FROM guardrail_runs AS r
LEFT JOIN percentiles AS p ON p.guardrail = r.guardrail AND p.stage = r.stage
GROUP BY r.guardrail, r.stage, p.p50_ms, p.p95_ms
ORDER BY r.guardrail, r.stage;
