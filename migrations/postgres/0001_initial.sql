-- simple-gateway schema, PostgreSQL dialect. Released migrations are never edited: changes go
-- in a new numbered file. Same tables, columns and views as the SQLite dialect.

-- One row per exchange through the gateway; the columns are those of Record.to_row().
CREATE TABLE requests (
    id                      text PRIMARY KEY,  -- ULID made by the gateway: unique, sorts by time
    request_id              text NOT NULL,     -- x-request-id returned to the client; not unique
    started_at              timestamptz NOT NULL,
    first_byte_at           timestamptz,
    ended_at                timestamptz,
    provider                text NOT NULL,
    method                  text NOT NULL,
    path                    text NOT NULL,
    query                   text NOT NULL DEFAULT '',
    upstream_url            text NOT NULL DEFAULT '',
    model                   text,
    stream                  boolean NOT NULL DEFAULT false,
    status                  integer,
    duration_ms             double precision,
    ttfb_ms                 double precision,
    client_addr             text,
    user_agent              text,
    request_headers         jsonb NOT NULL DEFAULT '{}',
    response_headers        jsonb NOT NULL DEFAULT '{}',
    request_body            text,
    request_body_truncated  boolean NOT NULL DEFAULT false,
    request_body_size       bigint NOT NULL DEFAULT 0,
    request_content_type    text,
    request_file_id         text,
    response_body           text,
    response_body_truncated boolean NOT NULL DEFAULT false,
    response_body_size      bigint NOT NULL DEFAULT 0,
    response_content_type   text,
    response_file_id        text,
    response_text           text,
    input_tokens            integer,
    output_tokens           integer,
    cached_tokens           integer,
    reasoning_tokens        integer,
    usage_source            text,
    cost_usd                numeric(18, 8),
    cost_status             text,
    error_kind              text,
    error_message           text,
    outcome                 text NOT NULL,
    bytes_in                bigint NOT NULL DEFAULT 0,
    bytes_out               bigint NOT NULL DEFAULT 0,
    response_sha256         text
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
    id           text PRIMARY KEY,
    request_id   text NOT NULL,
    direction    text NOT NULL,
    kind         text NOT NULL,
    path         text NOT NULL,
    content_type text,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    created_at   timestamptz NOT NULL
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
    left(coalesce(response_text, response_body), 200) AS preview
FROM requests
ORDER BY started_at DESC, id DESC;

-- How much was used, and what did it cost, per model and UTC day?
CREATE VIEW usage_by_model_day AS
SELECT
    (started_at AT TIME ZONE 'UTC')::date AS day,
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
    round(avg(duration_ms)::numeric, 1) AS avg_duration_ms
FROM requests
GROUP BY (started_at AT TIME ZONE 'UTC')::date, provider, model
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
