-- The record writer's inserts carry no per-row triggers: the usage rollup is added once per
-- batch, and the search index catches up after the rows are stored.
--
-- Per-row triggers cost SQLite's writer more than the inserts themselves (FTS5 tokenising each
-- row inside the insert statement, and one upsert of usage_rollup per row). Instead:
-- * the store adds each batch's rows to usage_rollup with one grouped upsert, in the batch's own
--   transaction (simple_gateway/store/usage_rollup.py, the same arithmetic the trigger had);
--   retention still subtracts through requests_rollup_delete;
-- * requests_fts_progress holds the highest requests rowid indexed; the writer thread indexes
--   the rows above it when idle (and under load once the lag grows), and a search first
--   indexes whatever is pending (simple_gateway/store/search_index.py).
-- PostgreSQL needs neither change (its 0006 is a note): its rollup trigger already runs once
-- per statement, and its search index is a GIN index the server keeps, off the worker's
-- interpreter.

DROP TRIGGER requests_rollup_insert;
DROP TRIGGER requests_fts_insert;

-- One row: every requests row with a rowid up to indexed_rowid is in requests_fts; none above.
CREATE TABLE requests_fts_progress (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_rowid INTEGER NOT NULL
);

-- Rows recorded before this migration were indexed by the insert trigger.
INSERT INTO requests_fts_progress (id, indexed_rowid)
SELECT 1, coalesce(max(rowid), 0) FROM requests;

-- A contentless index must be handed, to delete a row, exactly the values it was given: a
-- 'delete' of a row never indexed corrupts it. So only indexed rows are deleted or re-indexed.
-- SQLite gives a new row the rowid above the highest left: once the rows above the progress
-- mark are deleted, the mark comes down to the highest rowid left, so that a new row is never
-- taken for one already indexed. (One trigger, so the 'delete' is decided before the mark
-- moves.)
DROP TRIGGER requests_fts_delete;
CREATE TRIGGER requests_fts_delete AFTER DELETE ON requests BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, prompt, reply)
    SELECT 'delete', old.rowid, old.request_body, coalesce(old.response_text, old.response_body)
    WHERE old.rowid <= (SELECT indexed_rowid FROM requests_fts_progress);
    UPDATE requests_fts_progress
    SET indexed_rowid = (SELECT coalesce(max(rowid), 0) FROM requests)
    WHERE indexed_rowid > (SELECT coalesce(max(rowid), 0) FROM requests);
END;

DROP TRIGGER requests_fts_update;
CREATE TRIGGER requests_fts_update AFTER UPDATE OF request_body, response_text, response_body
ON requests WHEN old.rowid <= (SELECT indexed_rowid FROM requests_fts_progress) BEGIN
    INSERT INTO requests_fts (requests_fts, rowid, prompt, reply)
    VALUES ('delete', old.rowid, old.request_body, coalesce(old.response_text, old.response_body));
    INSERT INTO requests_fts (rowid, prompt, reply)
    VALUES (new.rowid, new.request_body, coalesce(new.response_text, new.response_body));
END;
