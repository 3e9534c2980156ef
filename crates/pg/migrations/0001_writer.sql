-- statusrelay's PostgreSQL store, schema 1: the one writer among the aggregator instances.
-- Times are the database server's (now()): one clock for every instance, whatever theirs say.

-- The lease: who delivers to the page, until when, and under which term. One row.
-- A writer renews before `expires_at`; another instance takes over only after it. `term`
-- grows with every new holder (and with a holder that lost the lease and took it back): every
-- claim and finish of a delivery checks it in its own transaction (fencing), so a deposed
-- writer that wakes late writes nothing.
CREATE TABLE writer (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    holder      TEXT        NOT NULL,
    term        BIGINT      NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Every instance, as it last said it was alive (`status` and `nodes` show them).
CREATE TABLE instances (
    name        TEXT        PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL
);
