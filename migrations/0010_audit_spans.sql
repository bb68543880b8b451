-- A leaner audit row: every request writes one, so its cost is paid on every request.
--
-- * `outcome` goes: it is a function of `status` (401 and 403 denied, other 4xx/5xx
--   error, the rest allowed), computed when read. Its text bind and CHECK went with it.
-- * `request_id` has no declared type: Tarn's ids (16 hex digits) are stored as the
--   64-bit integer they spell, anything else (older rows) as text.
-- * The index on `time` (one more B-tree insert per request) is replaced by
--   `audit_spans`: ranges of consecutive ids with the earliest and latest `time` among
--   them, kept by the writer at one row per ~4,096 records. A time window becomes an id
--   range through them (records are written in arrival order give or take the
--   requests in flight, so the range is tight), and the `time` test is applied to the
--   rows in that range.
CREATE TABLE audit_log_new (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,
    request_id     NOT NULL,
    principal      TEXT,            -- user name; NULL when unauthenticated
    access_key_id  TEXT,
    action         TEXT NOT NULL,   -- S3 operation or "METHOD /api/v1/route"
    resource       TEXT NOT NULL,
    status         INTEGER NOT NULL,
    bytes_in       INTEGER NOT NULL,
    bytes_out      INTEGER NOT NULL,
    source         TEXT,
    user_agent     TEXT
);
INSERT INTO audit_log_new (id, time, request_id, principal, access_key_id, action, resource,
                           status, bytes_in, bytes_out, source, user_agent)
    SELECT id, time, request_id, principal, access_key_id, action, resource,
           status, bytes_in, bytes_out, source, user_agent
    FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_by_principal ON audit_log(principal, id);

-- Every audit row's id lies in exactly one span, whose [min_time, max_time] holds the
-- row's time.
CREATE TABLE audit_spans (
    id        INTEGER PRIMARY KEY,
    first_id  INTEGER NOT NULL,
    last_id   INTEGER NOT NULL,
    min_time  INTEGER NOT NULL,
    max_time  INTEGER NOT NULL
);
INSERT INTO audit_spans (first_id, last_id, min_time, max_time)
    SELECT min(id), max(id), min(time), max(time) FROM audit_log GROUP BY id / 4096
    ORDER BY min(id);
