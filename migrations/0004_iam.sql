-- Principals (users, groups, access keys, API tokens), grants and the audit trail.
-- Times are Unix milliseconds.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  INTEGER NOT NULL
);

CREATE TABLE user_groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members(user_id);

-- The secret is sealed with the server's master key (XChaCha20-Poly1305, the access
-- key id as associated data): a copy of this file alone does not reveal it.
CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sealed_secret  BLOB NOT NULL,   -- 24-byte nonce || ciphertext+tag
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_by_user ON access_keys(user_id);

-- Bearer tokens, stored as SHA-256 of the token; the token itself is shown once.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER           -- NULL: until deleted
);

-- principal x resource x permission. Exactly one of user_id/group_id is set; bucket
-- and dataset grants reference their row so that they die with it (a re-created
-- bucket of the same name does not inherit old grants).
CREATE TABLE grants (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    group_id    INTEGER REFERENCES user_groups(id) ON DELETE CASCADE,
    resource    TEXT NOT NULL,    -- zone:NAME | bucket:NAME | dataset:ID
    zone        TEXT CHECK (zone IN ('raw', 'transformed', 'curated')),
    bucket_id   INTEGER REFERENCES buckets(id) ON DELETE CASCADE,
    dataset_id  INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
    permission  TEXT NOT NULL CHECK (permission IN ('read', 'write', 'manage')),
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    CHECK ((zone IS NOT NULL) + (bucket_id IS NOT NULL) + (dataset_id IS NOT NULL) = 1)
);
CREATE UNIQUE INDEX grants_unique ON grants(
    COALESCE(user_id, -1), COALESCE(group_id, -1), resource, permission);

-- Bumped by every change to the tables above, so that a running server notices
-- changes made by `tarn admin` and reloads its in-memory copy.
CREATE TABLE iam_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO iam_version (id, version) VALUES (1, 1);

-- Deleting a bucket or dataset cascades to its grants; the cached grants must follow,
-- or a re-created bucket (whose row id SQLite may reuse) would inherit them.
CREATE TRIGGER iam_version_on_bucket_delete AFTER DELETE ON buckets
BEGIN
    UPDATE iam_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER iam_version_on_dataset_delete AFTER DELETE ON datasets
BEGIN
    UPDATE iam_version SET version = version + 1 WHERE id = 1;
END;

-- One row per request. Never holds secrets or signatures.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,
    request_id     TEXT NOT NULL,
    principal      TEXT,            -- user name; NULL when unauthenticated
    access_key_id  TEXT,
    action         TEXT NOT NULL,   -- S3 operation or "METHOD /api/v1/route"
    resource       TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied', 'error')),
    status         INTEGER NOT NULL,
    bytes_in       INTEGER NOT NULL,
    bytes_out      INTEGER NOT NULL,
    source         TEXT,
    user_agent     TEXT
);
CREATE INDEX audit_by_time ON audit_log(time);
CREATE INDEX audit_by_principal ON audit_log(principal, id);
