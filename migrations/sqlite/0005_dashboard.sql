-- Dashboard: full-text search in prompt and reply text, and indexes for the list's filters.

-- A contentless FTS5 index of each exchange's prompt (the request body) and reply (the assembled
-- reply text, else the response body): the text stays in requests only, the index holds tokens
-- keyed by the requests rowid. Triggers keep it in step with every insert, update and delete
-- (retention included); a delete hands the index the same values the insert gave it.
-- detail=none keeps no positions: searches are sets of words, and the index stays small and
-- cheap to write.
CREATE VIRTUAL TABLE requests_fts USING fts5(prompt, reply, content = '', detail = none);

CREATE TRIGGER requests_fts_insert AFTER INSERT ON requests BEGIN
    INSERT INTO requests_fts (rowid, prompt, reply)
    VALUES (new.rowid, new.request_body, coalesce(new.response_text, new.response_body));
END;

CREATE TRIGGER requests_fts_delete AFTER DELETE ON requests BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, prompt, reply)
    VALUES ('delete', old.rowid, old.request_body, coalesce(old.response_text, old.response_body));
END;

CREATE TRIGGER requests_fts_update AFTER UPDATE OF request_body, response_text, response_body
ON requests BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, prompt, reply)
    VALUES ('delete', old.rowid, old.request_body, coalesce(old.response_text, old.response_body));
    INSERT INTO requests_fts (rowid, prompt, reply)
    VALUES (new.rowid, new.request_body, coalesce(new.response_text, new.response_body));
END;

-- Rows recorded before this migration.
INSERT INTO requests_fts (rowid, prompt, reply)
SELECT rowid, request_body, coalesce(response_text, response_body) FROM requests;

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
    minute          TEXT NOT NULL,  -- UTC minute of started_at: 2026-11-23T14:51
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL DEFAULT '',  -- '' when the record has no model
    requests        INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    unpriced        INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum REAL NOT NULL DEFAULT 0,
    d00             INTEGER NOT NULL DEFAULT 0,  -- duration in [0, 10) ms
    d01             INTEGER NOT NULL DEFAULT 0,  -- duration in [10, 25) ms
    d02             INTEGER NOT NULL DEFAULT 0,  -- duration in [25, 50) ms
    d03             INTEGER NOT NULL DEFAULT 0,  -- duration in [50, 100) ms
    d04             INTEGER NOT NULL DEFAULT 0,  -- duration in [100, 250) ms
    d05             INTEGER NOT NULL DEFAULT 0,  -- duration in [250, 500) ms
    d06             INTEGER NOT NULL DEFAULT 0,  -- duration in [500, 1000) ms
    d07             INTEGER NOT NULL DEFAULT 0,  -- duration in [1000, 2500) ms
    d08             INTEGER NOT NULL DEFAULT 0,  -- duration in [2500, 5000) ms
    d09             INTEGER NOT NULL DEFAULT 0,  -- duration in [5000, 10000) ms
    d10             INTEGER NOT NULL DEFAULT 0,  -- duration in [10000, 25000) ms
    d11             INTEGER NOT NULL DEFAULT 0,  -- duration in [25000, 50000) ms
    d12             INTEGER NOT NULL DEFAULT 0,  -- duration in [50000, 100000) ms
    d13             INTEGER NOT NULL DEFAULT 0,  -- duration in [100000, 250000) ms
    d14             INTEGER NOT NULL DEFAULT 0,  -- duration in [250000, inf) ms
    PRIMARY KEY (minute, provider, model)
) WITHOUT ROWID;  -- rows stored in key order: a range of minutes is read in one pass

CREATE TRIGGER requests_rollup_insert AFTER INSERT ON requests BEGIN
    INSERT INTO usage_rollup (minute, provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced, duration_ms_sum, d00, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14)
    VALUES (
        substr(new.started_at, 1, 16),
        new.provider,
        coalesce(new.model, ''),
        1,
        CASE WHEN new.outcome <> 'completed' OR new.status >= 400 THEN 1 ELSE 0 END,
        coalesce(new.input_tokens, 0),
        coalesce(new.output_tokens, 0),
        coalesce(new.cost_usd, 0),
        CASE WHEN new.cost_usd IS NULL THEN 1 ELSE 0 END,
        coalesce(new.duration_ms, 0),
        CASE WHEN new.duration_ms < 10 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 10 AND new.duration_ms < 25 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 25 AND new.duration_ms < 50 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 50 AND new.duration_ms < 100 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 100 AND new.duration_ms < 250 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 250 AND new.duration_ms < 500 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 500 AND new.duration_ms < 1000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 1000 AND new.duration_ms < 2500 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 2500 AND new.duration_ms < 5000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 5000 AND new.duration_ms < 10000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 10000 AND new.duration_ms < 25000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 25000 AND new.duration_ms < 50000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 50000 AND new.duration_ms < 100000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 100000 AND new.duration_ms < 250000 THEN 1 ELSE 0 END,
        CASE WHEN new.duration_ms >= 250000 THEN 1 ELSE 0 END
    )
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
END;

CREATE TRIGGER requests_rollup_delete AFTER DELETE ON requests BEGIN
    UPDATE usage_rollup SET
        requests = requests - (1),
        errors = errors - (CASE WHEN old.outcome <> 'completed' OR old.status >= 400 THEN 1 ELSE 0 END),
        input_tokens = input_tokens - (coalesce(old.input_tokens, 0)),
        output_tokens = output_tokens - (coalesce(old.output_tokens, 0)),
        cost_usd = cost_usd - (coalesce(old.cost_usd, 0)),
        unpriced = unpriced - (CASE WHEN old.cost_usd IS NULL THEN 1 ELSE 0 END),
        duration_ms_sum = duration_ms_sum - (coalesce(old.duration_ms, 0)),
        d00 = d00 - (CASE WHEN old.duration_ms < 10 THEN 1 ELSE 0 END),
        d01 = d01 - (CASE WHEN old.duration_ms >= 10 AND old.duration_ms < 25 THEN 1 ELSE 0 END),
        d02 = d02 - (CASE WHEN old.duration_ms >= 25 AND old.duration_ms < 50 THEN 1 ELSE 0 END),
        d03 = d03 - (CASE WHEN old.duration_ms >= 50 AND old.duration_ms < 100 THEN 1 ELSE 0 END),
        d04 = d04 - (CASE WHEN old.duration_ms >= 100 AND old.duration_ms < 250 THEN 1 ELSE 0 END),
        d05 = d05 - (CASE WHEN old.duration_ms >= 250 AND old.duration_ms < 500 THEN 1 ELSE 0 END),
        d06 = d06 - (CASE WHEN old.duration_ms >= 500 AND old.duration_ms < 1000 THEN 1 ELSE 0 END),
        d07 = d07 - (CASE WHEN old.duration_ms >= 1000 AND old.duration_ms < 2500 THEN 1 ELSE 0 END),
        d08 = d08 - (CASE WHEN old.duration_ms >= 2500 AND old.duration_ms < 5000 THEN 1 ELSE 0 END),
        d09 = d09 - (CASE WHEN old.duration_ms >= 5000 AND old.duration_ms < 10000 THEN 1 ELSE 0 END),
        d10 = d10 - (CASE WHEN old.duration_ms >= 10000 AND old.duration_ms < 25000 THEN 1 ELSE 0 END),
        d11 = d11 - (CASE WHEN old.duration_ms >= 25000 AND old.duration_ms < 50000 THEN 1 ELSE 0 END),
        d12 = d12 - (CASE WHEN old.duration_ms >= 50000 AND old.duration_ms < 100000 THEN 1 ELSE 0 END),
        d13 = d13 - (CASE WHEN old.duration_ms >= 100000 AND old.duration_ms < 250000 THEN 1 ELSE 0 END),
        d14 = d14 - (CASE WHEN old.duration_ms >= 250000 THEN 1 ELSE 0 END)
    WHERE minute = substr(old.started_at, 1, 16) AND provider = old.provider
      AND model = coalesce(old.model, '');
END;

-- Rows recorded before this migration.
INSERT INTO usage_rollup (minute, provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced, duration_ms_sum, d00, d01, d02, d03, d04, d05, d06, d07, d08, d09, d10, d11, d12, d13, d14)
SELECT
    substr(started_at, 1, 16), provider, coalesce(model, ''), count(*),
    sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END),
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
