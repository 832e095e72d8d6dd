-- Provider routing: model aliases, translation, retries and fallbacks.

-- The model name the client asked for when it was an alias or a provider/model name.
ALTER TABLE requests ADD COLUMN alias text;
-- '<provider>/<model>' of the deployment that answered (the last one tried when none did).
ALTER TABLE requests ADD COLUMN deployment text;
-- Upstream attempts made for this exchange (NULL for a plain pass-through).
ALTER TABLE requests ADD COLUMN attempts integer;
-- The body actually sent upstream, when it differs from the client's (translated, model rewritten).
ALTER TABLE requests ADD COLUMN upstream_request_body text;
-- Fingerprint of the gateway key the client presented.
ALTER TABLE requests ADD COLUMN gateway_key text;

CREATE INDEX requests_deployment_started_at ON requests (deployment, started_at);

-- One row per upstream attempt of a routed exchange, written in the same batch as its request row.
CREATE TABLE attempts (
    id            text PRIMARY KEY,
    record_id     text NOT NULL,      -- requests.id
    attempt       integer NOT NULL,   -- 1, 2, ... in the order tried
    deployment    text NOT NULL,      -- '<provider>/<model>'
    provider      text NOT NULL,
    model         text NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision,
    status        integer,            -- the provider's status, NULL when none came
    outcome       text NOT NULL,      -- 'answered', 'retried', 'failed_over', 'failed'
    error_kind    text,
    error_message text
);

CREATE INDEX attempts_record_id ON attempts (record_id);
CREATE INDEX attempts_started_at ON attempts (started_at);
