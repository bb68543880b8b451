-- Buckets, objects and multipart uploads: the metadata of the S3 object API.
-- Times are Unix milliseconds. Keys are TEXT compared with BINARY collation,
-- which orders UTF-8 strings by bytes, exactly as S3 lists them.

CREATE TABLE buckets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    region      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE objects (
    bucket_id      INTEGER NOT NULL REFERENCES buckets(id),
    key            TEXT NOT NULL,
    size           INTEGER NOT NULL,
    etag           TEXT NOT NULL,          -- without quotes
    last_modified  INTEGER NOT NULL,
    -- Where the bytes are: a comma-separated list of `blob:size` segments
    -- (one per part for multipart objects), or '' when the object is empty.
    data           TEXT NOT NULL,
    parts_count    INTEGER,                -- NULL unless created by multipart upload
    headers        TEXT NOT NULL,          -- JSON: content-type, user metadata, ...
    checksum       TEXT,                   -- JSON: {"algorithm","value","type"} or NULL
    tags           TEXT,                   -- JSON array of [key, value] or NULL
    PRIMARY KEY (bucket_id, key)
) WITHOUT ROWID;

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    bucket_id   INTEGER NOT NULL REFERENCES buckets(id),
    key         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    headers     TEXT NOT NULL,
    checksum_algorithm TEXT,
    tags        TEXT
);
CREATE INDEX uploads_by_key ON uploads(bucket_id, key, created_at);

CREATE TABLE parts (
    upload_id      TEXT NOT NULL REFERENCES uploads(id),
    part_number    INTEGER NOT NULL,
    blob           TEXT NOT NULL,
    size           INTEGER NOT NULL,
    etag           TEXT NOT NULL,
    last_modified  INTEGER NOT NULL,
    checksum       TEXT,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
