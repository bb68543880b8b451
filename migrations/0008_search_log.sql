-- Which datasets' searchable content changed, in commit order. The in-memory search
-- index (src/catalog/index.rs) remembers the last `seq` it applied; a search first
-- re-reads the datasets logged after it, in the same read transaction as the search,
-- so results never lag a committed change. Only the latest 10,000 entries are kept:
-- an index further behind than that rebuilds from scratch.
CREATE TABLE search_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id INTEGER NOT NULL
);

CREATE TRIGGER search_log_prune AFTER INSERT ON search_log BEGIN
    DELETE FROM search_log WHERE seq <= NEW.seq - 10000;
END;

CREATE TRIGGER datasets_search_log_insert AFTER INSERT ON datasets BEGIN
    INSERT INTO search_log (dataset_id) VALUES (NEW.id);
END;

CREATE TRIGGER datasets_search_log_update AFTER UPDATE ON datasets BEGIN
    INSERT INTO search_log (dataset_id) VALUES (NEW.id);
END;

CREATE TRIGGER datasets_search_log_delete AFTER DELETE ON datasets BEGIN
    INSERT INTO search_log (dataset_id) VALUES (OLD.id);
END;
