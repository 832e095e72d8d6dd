-- simple-gateway schema, SQLite dialect. Released migrations are never edited: changes go in a
-- new numbered file. Timestamps are ISO-8601 UTC text (2026-11-23T14:51:00.123+00:00), which
-- sorts and compares correctly as text; booleans are 0/1; headers are JSON text.

-- One row per exchange through the gateway; the columns are those of Record.to_row().
CREATE TABLE requests (
    id                      TEXT PRIMARY KEY,  -- ULID made by the gateway: unique, sorts by time
    request_id              TEXT NOT NULL,     -- x-request-id returned to the client; not unique
    started_at              TEXT NOT NULL,
    first_byte_at           TEXT,
    ended_at                TEXT,
    provider                TEXT NOT NULL,
    method                  TEXT NOT NULL,
    path                    TEXT NOT NULL,
    query                   TEXT NOT NULL DEFAULT '',
    upstream_url            TEXT NOT NULL DEFAULT '',
    model                   TEXT,
    stream                  INTEGER NOT NULL DEFAULT 0,
    status                  INTEGER,
    duration_ms             REAL,
    ttfb_ms                 REAL,
    client_addr             TEXT,
    user_agent              TEXT,
    request_headers         TEXT NOT NULL DEFAULT '{}',
    response_headers        TEXT NOT NULL DEFAULT '{}',
    request_body            TEXT,
    request_body_truncated  INTEGER NOT NULL DEFAULT 0,
    request_body_size       INTEGER NOT NULL DEFAULT 0,
    request_content_type    TEXT,
    request_file_id         TEXT,
    response_body           TEXT,
    response_body_truncated INTEGER NOT NULL DEFAULT 0,
    response_body_size      INTEGER NOT NULL DEFAULT 0,
    response_content_type   TEXT,
    response_file_id        TEXT,
    response_text           TEXT,
    input_tokens            INTEGER,
    output_tokens           INTEGER,
    cached_tokens           INTEGER,
    reasoning_tokens        INTEGER,
    usage_source            TEXT,
    cost_usd                REAL,
    cost_status             TEXT,
    error_kind              TEXT,
    error_message           TEXT,
    outcome                 TEXT NOT NULL,
    bytes_in                INTEGER NOT NULL DEFAULT 0,
    bytes_out               INTEGER NOT NULL DEFAULT 0,
    response_sha256         TEXT
);

CREATE INDEX requests_started_at ON requests (started_at);
CREATE INDEX requests_request_id ON requests (request_id);
CREATE INDEX requests_model_started_at ON requests (model, started_at);
CREATE INDEX requests_provider_started_at ON requests (provider, started_at);
CREATE INDEX requests_errors_started_at ON requests (started_at)
    WHERE outcome <> 'completed' OR status >= 400;

-- Bodies kept as files. No foreign key to requests: a file row may be written before the row
-- of its exchange, and the two must not depend on the order of a batch.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL,
    direction    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    path         TEXT NOT NULL,
    content_type TEXT,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE INDEX files_request_id ON files (request_id);
CREATE INDEX files_created_at ON files (created_at);

-- What came through lately, and how did each exchange go? Newest first.
CREATE VIEW recent_requests AS
SELECT
    started_at,
    id,
    request_id,
    provider,
    method,
    path,
    model,
    status,
    outcome,
    duration_ms,
    ttfb_ms,
    input_tokens,
    output_tokens,
    cost_usd,
    error_kind,
    substr(coalesce(response_text, response_body), 1, 200) AS preview
FROM requests
ORDER BY started_at DESC, id DESC;

-- How much was used, and what did it cost, per model and UTC day?
CREATE VIEW usage_by_model_day AS
SELECT
    date(started_at) AS day,
    provider,
    model,
    count(*) AS requests,
    sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_requests,
    round(avg(duration_ms), 1) AS avg_duration_ms
FROM requests
GROUP BY date(started_at), provider, model
ORDER BY day DESC, provider, model NULLS LAST;

-- What went wrong lately? Exchanges that did not complete or got an HTTP error, newest first.
CREATE VIEW recent_errors AS
SELECT
    started_at,
    id,
    request_id,
    provider,
    method,
    path,
    model,
    status,
    outcome,
    error_kind,
    error_message,
    duration_ms
FROM requests
WHERE outcome <> 'completed' OR status >= 400
ORDER BY started_at DESC, id DESC;
