-- Carts, checkout manifests and their entries (issue 4). Times are Unix milliseconds.

-- What a user picked: a dataset, optionally narrowed to a sub-prefix of it (a
-- partition such as `year=2024/`). Items go with their dataset or user.
CREATE TABLE cart_items (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL DEFAULT '',   -- relative to the dataset's prefix
    added_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX cart_items_unique ON cart_items(user_id, dataset_id, prefix);

-- A checked-out manifest. `access_key_id`/`sealed_secret` are the credential that
-- exists only for this manifest (format signed-url): its presigned links are signed
-- with it, the S3 layer lets it read exactly the entries below, and deleting the
-- manifest row deletes it. The secret is sealed with the master key like
-- access_keys.sealed_secret (the key id as associated data).
CREATE TABLE manifests (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    format         TEXT NOT NULL CHECK (format IN ('signed-url', 'bucket-key')),
    created_at     INTEGER NOT NULL,   -- also the X-Amz-Date of every link
    expires_at     INTEGER NOT NULL,
    datasets       TEXT NOT NULL,      -- JSON array, as of checkout
    object_count   INTEGER NOT NULL DEFAULT 0,
    total_bytes    INTEGER NOT NULL DEFAULT 0,
    access_key_id  TEXT UNIQUE,
    sealed_secret  BLOB
);
CREATE INDEX manifests_by_user ON manifests(user_id, id);

-- One row per object, as it was at checkout. The primary key is the lookup the S3
-- layer makes for every download through a link.
CREATE TABLE manifest_entries (
    manifest_id  INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    dataset_id   INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    checksum     TEXT,                -- objects.checksum (JSON) or NULL
    PRIMARY KEY (manifest_id, bucket, key)
) WITHOUT ROWID;
