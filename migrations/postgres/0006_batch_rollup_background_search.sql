-- SQLite's 0006 moves the usage rollup and the search index off its per-row insert triggers.
-- PostgreSQL keeps both as they are: its rollup trigger already runs once per statement (one
-- grouped upsert per batch), and its search index is a GIN index the server maintains, off
-- the worker's interpreter. This file keeps the two histories the same.
COMMENT ON TRIGGER requests_rollup_insert ON requests IS
    'One grouped upsert of usage_rollup per batch insert; SQLite does the same from its store.';
