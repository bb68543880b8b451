-- Small objects live inline in the database: their bytes are committed in the same
-- group commit as their row, instead of costing a file fsync and a directory fsync each.
-- `objects.inline` = 1 says the bytes are the `object_bytes` row of the same bucket and
-- key (and `objects.data` is ''). They sit in their own table so that listing scans of
-- `objects` stay dense.
ALTER TABLE objects ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;

CREATE TABLE object_bytes (
    bucket_id  INTEGER NOT NULL REFERENCES buckets(id),
    key        TEXT NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (bucket_id, key)
) WITHOUT ROWID;
