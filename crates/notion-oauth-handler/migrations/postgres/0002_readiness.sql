-- One row, rewritten by each readiness check: proof that the database takes a write now, which
-- a full disk, a read-only file or a lost primary would refuse.
CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
