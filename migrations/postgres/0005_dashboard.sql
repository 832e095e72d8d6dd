-- Dashboard: full-text search in prompt and reply text, and indexes for the list's filters.

-- A GIN index over the tsvector of the bodies and the assembled reply text. The expression is
-- repeated verbatim by the dashboard's search query (simple_gateway/dashboard/queries/search.py)
-- so the planner uses this index. Each part is cut to 100,000 characters: a tsvector must stay
-- under 1 MB, and an insert must never fail because a body is large.
CREATE INDEX requests_search ON requests USING gin (
    to_tsvector(
        'simple'::regconfig,
        left(coalesce(request_body, ''), 100000) || ' '
        || left(coalesce(response_text, ''), 100000) || ' '
        || left(coalesce(response_body, ''), 100000)
    )
);

-- The list is ordered by id (a ULID: creation time, then random); each equality filter gets an
-- index that yields its rows already in that order, so the first page reads ~50 index entries.
CREATE INDEX requests_provider_id ON requests (provider, id);
CREATE INDEX requests_model_id ON requests (model, id);
CREATE INDEX requests_outcome_id ON requests (outcome, id);
CREATE INDEX requests_status_id ON requests (status, id);
CREATE INDEX requests_ended_at ON requests (ended_at);
