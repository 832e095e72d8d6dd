-- Dashboard: full-text search in prompt and reply text, and indexes for the list's filters.

-- An external-content FTS5 index over the requests' bodies and assembled reply text: the text
-- is stored once (in requests); the index holds only tokens, keyed by the requests rowid.
-- Triggers keep it in step with every insert, update and delete (retention included).
CREATE VIRTUAL TABLE requests_fts USING fts5(
    request_body,
    response_text,
    response_body,
    content = 'requests',
    content_rowid = 'rowid'
);

CREATE TRIGGER requests_fts_insert AFTER INSERT ON requests BEGIN
    INSERT INTO requests_fts (rowid, request_body, response_text, response_body)
    VALUES (new.rowid, new.request_body, new.response_text, new.response_body);
END;

CREATE TRIGGER requests_fts_delete AFTER DELETE ON requests BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, request_body, response_text, response_body)
    VALUES ('delete', old.rowid, old.request_body, old.response_text, old.response_body);
END;

CREATE TRIGGER requests_fts_update AFTER UPDATE OF request_body, response_text, response_body
ON requests BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, request_body, response_text, response_body)
    VALUES ('delete', old.rowid, old.request_body, old.response_text, old.response_body);
    INSERT INTO requests_fts (rowid, request_body, response_text, response_body)
    VALUES (new.rowid, new.request_body, new.response_text, new.response_body);
END;

-- Rows recorded before this migration.
INSERT INTO requests_fts (requests_fts) VALUES ('rebuild');

-- The list is ordered by id (a ULID: creation time, then random); each equality filter gets an
-- index that yields its rows already in that order, so the first page reads ~50 index entries.
CREATE INDEX requests_provider_id ON requests (provider, id);
CREATE INDEX requests_model_id ON requests (model, id);
CREATE INDEX requests_outcome_id ON requests (outcome, id);
CREATE INDEX requests_status_id ON requests (status, id);
CREATE INDEX requests_ended_at ON requests (ended_at);
