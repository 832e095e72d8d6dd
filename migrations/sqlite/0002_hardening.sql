-- Records that read right.
-- files.request_id held the exchange's requests.id, never the x-request-id that
-- requests.request_id holds: the column is named for what it holds, so the join reads
-- `files.record_id = requests.id`.
ALTER TABLE files RENAME COLUMN request_id TO record_id;
DROP INDEX files_request_id;
CREATE INDEX files_record_id ON files (record_id);

-- unpriced_requests counts exchanges whose model has no price, not those without usage.
DROP VIEW usage_by_model_day;
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
    sum(CASE WHEN cost_status = 'unpriced' THEN 1 ELSE 0 END) AS unpriced_requests,
    round(avg(duration_ms), 1) AS avg_duration_ms
FROM requests
GROUP BY date(started_at), provider, model
ORDER BY day DESC, provider, model NULLS LAST;
