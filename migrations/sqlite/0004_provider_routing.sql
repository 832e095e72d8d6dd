-- Provider routing: model aliases, translation, retries and fallbacks.

-- The model name the client asked for when it was an alias or a provider/model name.
ALTER TABLE requests ADD COLUMN alias TEXT;
-- '<provider>/<model>' of the deployment that answered (the last one tried when none did).
ALTER TABLE requests ADD COLUMN deployment TEXT;
-- Upstream attempts made for this exchange (NULL for a plain pass-through).
ALTER TABLE requests ADD COLUMN attempts INTEGER;
-- The body actually sent upstream, when it differs from the client's (translated, model rewritten).
ALTER TABLE requests ADD COLUMN upstream_request_body TEXT;
-- Fingerprint of the gateway key the client presented.
ALTER TABLE requests ADD COLUMN gateway_key TEXT;

CREATE INDEX requests_deployment_started_at ON requests (deployment, started_at);

-- One row per upstream attempt of a routed exchange, written in the same batch as its request row.
CREATE TABLE attempts (
    id            TEXT PRIMARY KEY,
    record_id     TEXT NOT NULL,      -- requests.id
    attempt       INTEGER NOT NULL,   -- 1, 2, ... in the order tried
    deployment    TEXT NOT NULL,      -- '<provider>/<model>'
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    duration_ms   REAL,
    status        INTEGER,            -- the provider's status, NULL when none came
    outcome       TEXT NOT NULL,      -- 'answered', 'retried', 'failed_over', 'failed'
    error_kind    TEXT,
    error_message TEXT
);

CREATE INDEX attempts_record_id ON attempts (record_id);
CREATE INDEX attempts_started_at ON attempts (started_at);
