-- statusrelay's PostgreSQL store, schema 7: what `nodes` and `status` say of a node (the
-- seam's part statusrelay_spool::store::Nodes), as the SQLite spool keeps it: the last
-- report it was refused and how many, and its failing services no component takes.
ALTER TABLE nodes
    ADD COLUMN refused     TEXT,
    ADD COLUMN refused_at  BIGINT,
    ADD COLUMN refusals    BIGINT NOT NULL DEFAULT 0;

CREATE TABLE unrouted (
    node     TEXT   NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    service  TEXT   NOT NULL,
    tests    TEXT   NOT NULL,   -- the failing test families, comma-separated
    since    BIGINT NOT NULL,
    PRIMARY KEY (node, service)
);
