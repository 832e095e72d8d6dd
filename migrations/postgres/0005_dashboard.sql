-- Dashboard: full-text search in prompt and reply text, and indexes for the list's filters.

-- A GIN index over the tsvector of each exchange's prompt (the request body) and reply (the
-- assembled reply text, else the response body). The expression is
-- repeated verbatim by the dashboard's search query (simple_gateway/dashboard/queries/search.py)
-- so the planner uses this index. Each part is cut to 100,000 characters: a tsvector must stay
-- under 1 MB, and an insert must never fail because a body is large.
CREATE INDEX requests_search ON requests USING gin (
    to_tsvector(
        'simple'::regconfig,
        left(coalesce(request_body, ''), 100000) || ' '
        || left(coalesce(response_text, response_body, ''), 100000)
    )
);

-- The list is ordered by id (a ULID: creation time, then random); each equality filter gets an
-- index that yields its rows already in that order, so the first page reads ~50 index entries.
CREATE INDEX requests_provider_id ON requests (provider, id);
CREATE INDEX requests_model_id ON requests (model, id);
CREATE INDEX requests_ended_at ON requests (ended_at);

-- Exchanges that went wrong, in id order: the "errors" filter reads its first page directly.
CREATE INDEX requests_errors_id ON requests (id) WHERE outcome <> 'completed' OR status >= 400;
-- Narrow copies of the columns the other filters test: a filter on duration, status class or
-- outcome scans this index in id order without reading the (wide) rows it skips.
CREATE INDEX requests_list_filters ON requests (id, duration_ms, status, outcome);

-- Usage per UTC minute, provider and model, kept up to date by triggers on requests (inserts
-- add, deletes by retention subtract), so the usage page reads a few thousand small rows
-- instead of scanning every record in its range. d00..d14 count requests by duration band
-- (edges in ms: 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
-- 250000); the page estimates p50 and p95 from them.

CREATE TABLE usage_rollup (
    minute          text NOT NULL,  -- UTC minute of started_at: 2026-11-23T14:51
    provider        text NOT NULL,
    model           text NOT NULL DEFAULT '',  -- '' when the record has no model
    requests        bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    cost_usd        double precision NOT NULL DEFAULT 0,
    unpriced        bigint NOT NULL DEFAULT 0,
    duration_ms_sum double precision NOT NULL DEFAULT 0,
    d00             bigint NOT NULL DEFAULT 0,  -- duration in [0, 10) ms
    d01             bigint NOT NULL DEFAULT 0,  -- duration in [10, 25) ms
    d02             bigint NOT NULL DEFAULT 0,  -- duration in [25, 50) ms
    d03             bigint NOT NULL DEFAULT 0,  -- duration in [50, 100) ms
    d04             bigint NOT NULL DEFAULT 0,  -- duration in [100, 250) ms
    d05             bigint NOT NULL DEFAULT 0,  -- duration in [250, 500) ms
    d06             bigint NOT NULL DEFAULT 0,  -- duration in [500, 1000) ms
    d07             bigint NOT NULL DEFAULT 0,  -- duration in [1000, 2500) ms
    d08             bigint NOT NULL DEFAULT 0,  -- duration in [2500, 5000) ms
    d09             bigint NOT NULL DEFAULT 0,  -- duration in [5000, 10000) ms
    d10             bigint NOT NULL DEFAULT 0,  -- duration in [10000, 25000) ms
    d11             bigint NOT NULL DEFAULT 0,  -- duration in [25000, 50000) ms
    d12             bigint NOT NULL DEFAULT 0,  -- duration in [50000, 100000) ms
    d13             bigint NOT NULL DEFAULT 0,  -- duration in [100000, 250000) ms
    d14             bigint NOT NULL DEFAULT 0,  -- duration in [250000, inf) ms
    PRIMARY KEY (minute, provider, model)
);

-- Statement-level triggers: one grouped upsert per batch insert (or purge), its rows taken in
-- key order, so two workers writing batches at once lock rollup rows in the same order and
-- cannot deadlock each other.
CREATE FUNCTION requests_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup (minute, provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced, duration_ms_sum, d00, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14)
        SELECT
            to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS minute,
            provider,
            coalesce(model, '') AS model,
            count(*),
            sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END),
            sum(coalesce(input_tokens, 0)),
            sum(coalesce(output_tokens, 0)),
            sum(coalesce(cost_usd, 0)),
            sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END),
            sum(coalesce(duration_ms, 0)),
            sum(CASE WHEN duration_ms < 10 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 10 AND duration_ms < 25 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 25 AND duration_ms < 50 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 50 AND duration_ms < 100 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 100 AND duration_ms < 250 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 250 AND duration_ms < 500 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 500 AND duration_ms < 1000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 1000 AND duration_ms < 2500 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 2500 AND duration_ms < 5000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 5000 AND duration_ms < 10000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 10000 AND duration_ms < 25000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 25000 AND duration_ms < 50000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 50000 AND duration_ms < 100000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 100000 AND duration_ms < 250000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 250000 THEN 1 ELSE 0 END)
        FROM new_rows
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
    ON CONFLICT (minute, provider, model) DO UPDATE SET
            requests = usage_rollup.requests + excluded.requests,
            errors = usage_rollup.errors + excluded.errors,
            input_tokens = usage_rollup.input_tokens + excluded.input_tokens,
            output_tokens = usage_rollup.output_tokens + excluded.output_tokens,
            cost_usd = usage_rollup.cost_usd + excluded.cost_usd,
            unpriced = usage_rollup.unpriced + excluded.unpriced,
            duration_ms_sum = usage_rollup.duration_ms_sum + excluded.duration_ms_sum,
            d00 = usage_rollup.d00 + excluded.d00,
            d01 = usage_rollup.d01 + excluded.d01,
            d02 = usage_rollup.d02 + excluded.d02,
            d03 = usage_rollup.d03 + excluded.d03,
            d04 = usage_rollup.d04 + excluded.d04,
            d05 = usage_rollup.d05 + excluded.d05,
            d06 = usage_rollup.d06 + excluded.d06,
            d07 = usage_rollup.d07 + excluded.d07,
            d08 = usage_rollup.d08 + excluded.d08,
            d09 = usage_rollup.d09 + excluded.d09,
            d10 = usage_rollup.d10 + excluded.d10,
            d11 = usage_rollup.d11 + excluded.d11,
            d12 = usage_rollup.d12 + excluded.d12,
            d13 = usage_rollup.d13 + excluded.d13,
            d14 = usage_rollup.d14 + excluded.d14;
    RETURN NULL;
END;
$$;

CREATE FUNCTION requests_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE usage_rollup SET
            requests = usage_rollup.requests - gone.requests,
            errors = usage_rollup.errors - gone.errors,
            input_tokens = usage_rollup.input_tokens - gone.input_tokens,
            output_tokens = usage_rollup.output_tokens - gone.output_tokens,
            cost_usd = usage_rollup.cost_usd - gone.cost_usd,
            unpriced = usage_rollup.unpriced - gone.unpriced,
            duration_ms_sum = usage_rollup.duration_ms_sum - gone.duration_ms_sum,
            d00 = usage_rollup.d00 - gone.d00,
            d01 = usage_rollup.d01 - gone.d01,
            d02 = usage_rollup.d02 - gone.d02,
            d03 = usage_rollup.d03 - gone.d03,
            d04 = usage_rollup.d04 - gone.d04,
            d05 = usage_rollup.d05 - gone.d05,
            d06 = usage_rollup.d06 - gone.d06,
            d07 = usage_rollup.d07 - gone.d07,
            d08 = usage_rollup.d08 - gone.d08,
            d09 = usage_rollup.d09 - gone.d09,
            d10 = usage_rollup.d10 - gone.d10,
            d11 = usage_rollup.d11 - gone.d11,
            d12 = usage_rollup.d12 - gone.d12,
            d13 = usage_rollup.d13 - gone.d13,
            d14 = usage_rollup.d14 - gone.d14
    FROM (
        SELECT
            to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS minute,
            provider,
            coalesce(model, '') AS model,
            count(*),
            sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END),
            sum(coalesce(input_tokens, 0)),
            sum(coalesce(output_tokens, 0)),
            sum(coalesce(cost_usd, 0)),
            sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END),
            sum(coalesce(duration_ms, 0)),
            sum(CASE WHEN duration_ms < 10 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 10 AND duration_ms < 25 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 25 AND duration_ms < 50 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 50 AND duration_ms < 100 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 100 AND duration_ms < 250 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 250 AND duration_ms < 500 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 500 AND duration_ms < 1000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 1000 AND duration_ms < 2500 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 2500 AND duration_ms < 5000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 5000 AND duration_ms < 10000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 10000 AND duration_ms < 25000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 25000 AND duration_ms < 50000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 50000 AND duration_ms < 100000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 100000 AND duration_ms < 250000 THEN 1 ELSE 0 END),
            sum(CASE WHEN duration_ms >= 250000 THEN 1 ELSE 0 END)
        FROM old_rows
        GROUP BY 1, 2, 3
    ) AS gone (minute, provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced, duration_ms_sum, d00, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14)
    WHERE usage_rollup.minute = gone.minute AND usage_rollup.provider = gone.provider
      AND usage_rollup.model = gone.model;
    RETURN NULL;
END;
$$;

CREATE TRIGGER requests_rollup_insert AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION requests_rollup_insert();
CREATE TRIGGER requests_rollup_delete AFTER DELETE ON requests
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION requests_rollup_delete();

-- Rows recorded before this migration.
INSERT INTO usage_rollup (minute, provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced, duration_ms_sum, d00, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14)
SELECT
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), provider, coalesce(model, ''),
    count(*), sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END),
    sum(coalesce(input_tokens, 0)), sum(coalesce(output_tokens, 0)), sum(coalesce(cost_usd, 0)),
    sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), sum(coalesce(duration_ms, 0)),
    sum(CASE WHEN duration_ms < 10 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 10 AND duration_ms < 25 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 25 AND duration_ms < 50 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 50 AND duration_ms < 100 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 100 AND duration_ms < 250 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 250 AND duration_ms < 500 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 500 AND duration_ms < 1000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 1000 AND duration_ms < 2500 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 2500 AND duration_ms < 5000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 5000 AND duration_ms < 10000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 10000 AND duration_ms < 25000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 25000 AND duration_ms < 50000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 50000 AND duration_ms < 100000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 100000 AND duration_ms < 250000 THEN 1 ELSE 0 END),
    sum(CASE WHEN duration_ms >= 250000 THEN 1 ELSE 0 END)
FROM requests
GROUP BY 1, 2, 3;
