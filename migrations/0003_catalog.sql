-- Zones, the dataset catalog, live statistics and full-text search.
-- Times are Unix milliseconds; JSON columns hold objects written by the server.

-- Every bucket belongs to one zone. Existing buckets land in raw, like new ones.
ALTER TABLE buckets ADD COLUMN zone TEXT NOT NULL DEFAULT 'raw'
    CHECK (zone IN ('raw', 'transformed', 'curated'));

-- Small key/value facts about the catalog itself (e.g. whether the zone buckets
-- were created on first start) and the governance rules document.
CREATE TABLE catalog_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;

-- Per-bucket object count and bytes, maintained in the same transaction as every
-- object write and delete (see src/meta/stats.rs).
CREATE TABLE bucket_stats (
    bucket_id     INTEGER PRIMARY KEY REFERENCES buckets(id) ON DELETE CASCADE,
    object_count  INTEGER NOT NULL DEFAULT 0,
    total_bytes   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO bucket_stats (bucket_id, object_count, total_bytes)
    SELECT b.id, COUNT(o.key), COALESCE(SUM(o.size), 0)
    FROM buckets b LEFT JOIN objects o ON o.bucket_id = b.id GROUP BY b.id;

CREATE TABLE datasets (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    -- Denormalized from the bucket so that names can be unique per zone; updated
    -- together with the bucket's zone.
    zone         TEXT NOT NULL,
    bucket_id    INTEGER NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    prefix       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    owner        TEXT NOT NULL,
    format       TEXT,
    tags         TEXT NOT NULL,   -- JSON object of string -> string
    metadata     TEXT NOT NULL,   -- JSON object
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX datasets_name_per_zone ON datasets(zone, name);
CREATE UNIQUE INDEX datasets_by_prefix ON datasets(bucket_id, prefix);
CREATE INDEX datasets_by_owner ON datasets(owner, id);
CREATE INDEX datasets_by_format ON datasets(format, id);
CREATE INDEX datasets_by_zone ON datasets(zone, id);

-- Tags as rows, for filtering and facets.
CREATE TABLE dataset_tags (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (dataset_id, key)
) WITHOUT ROWID;
CREATE INDEX dataset_tags_by_pair ON dataset_tags(key, value, dataset_id);

-- Live statistics of the objects under each dataset's prefix. Prefixes of one
-- bucket never overlap, so an object belongs to at most one dataset: the one with
-- the greatest prefix <= key, if that prefix is a prefix of the key.
CREATE TABLE dataset_stats (
    dataset_id      INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    bucket_id       INTEGER NOT NULL,
    prefix          TEXT NOT NULL,
    object_count    INTEGER NOT NULL DEFAULT 0,
    total_bytes     INTEGER NOT NULL DEFAULT 0,
    first_modified  INTEGER,   -- oldest object's last_modified
    last_modified   INTEGER,   -- newest object's last_modified
    -- Set when a delete removed the object that held first/last_modified; the
    -- next read recomputes both with one range scan.
    bounds_stale    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX dataset_stats_by_prefix ON dataset_stats(bucket_id, prefix);

-- Crawled schema versions. A new version is stored only when the schema changed.
CREATE TABLE dataset_schemas (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    crawled_at  INTEGER NOT NULL,
    schema      TEXT NOT NULL,   -- JSON: format, columns, partitions, files
    diff        TEXT,            -- JSON: added/removed/retyped against version-1
    PRIMARY KEY (dataset_id, version)
) WITHOUT ROWID;

-- Full-text index over the searchable text of a dataset; rowid = datasets.id.
CREATE VIRTUAL TABLE dataset_fts USING fts5(
    name, description, tags, columns, metadata,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
