-- statusrelay's PostgreSQL store, schema 3: the nodes' reports (the seam's part
-- statusrelay_spool::store::Reports), as the SQLite spool keeps them. Times are milliseconds
-- since the epoch on the recording instance's clock, as the spool's are.

-- A node's marks, on its row: a report's transaction locks it (FOR UPDATE), so two reports of
-- one node are recorded one after the other, whichever instances took them.
ALTER TABLE nodes
    ADD COLUMN via            TEXT,
    ADD COLUMN period_ms      BIGINT,
    ADD COLUMN last_seen_at   BIGINT,
    ADD COLUMN epoch          BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_seq       BIGINT,      -- the newest whole report applied
    ADD COLUMN stale_since    BIGINT,
    ADD COLUMN reporter       TEXT,
    ADD COLUMN reporter_peer  TEXT,
    ADD COLUMN rival          TEXT,
    ADD COLUMN rival_peer     TEXT,
    ADD COLUMN rival_seen_at  BIGINT,
    ADD COLUMN conflict_since BIGINT;
CREATE INDEX nodes_stale ON nodes (name) WHERE stale_since IS NOT NULL;

-- Every event, as it arrived (`raw`, its JSON as text: kept as it was written).
CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  BIGINT NOT NULL,
    origin       TEXT   NOT NULL,
    host         TEXT,
    service      TEXT,
    event        TEXT,
    description  TEXT,
    monit_date   TEXT,
    raw          TEXT   NOT NULL,
    test         TEXT,
    effect       TEXT,
    status       TEXT   NOT NULL CHECK (status IN ('applied', 'info', 'rejected', 'replayed')),
    error        TEXT
);

-- Each test's state per component and host: NULL while it passes. Changed only by an event
-- newer (a greater id) than the one that last changed it.
CREATE TABLE tests (
    component    TEXT   NOT NULL,
    host         TEXT   NOT NULL,
    service      TEXT   NOT NULL,
    test         TEXT   NOT NULL,
    state        TEXT,
    event_id     BIGINT NOT NULL,
    since        BIGINT NOT NULL,
    description  TEXT,
    PRIMARY KEY (component, host, service, test)
);
CREATE INDEX tests_failing ON tests (component, state) WHERE state IS NOT NULL;

-- The state each component should show. Computed under a transaction lock of the component
-- (pg_advisory_xact_lock), so the last computation saw every earlier one's tests.
CREATE TABLE desired (
    component   TEXT   PRIMARY KEY,
    state       TEXT   NOT NULL,
    event_id    BIGINT,
    changed_at  BIGINT NOT NULL
);

-- Deliveries: one row per change of a component's desired state.
CREATE TABLE outbox (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    event_id         BIGINT,
    message          TEXT,
    created_at       BIGINT  NOT NULL,
    queued_at        BIGINT  NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'done',
                                                        'superseded', 'skipped', 'dead')),
    force            BOOLEAN NOT NULL DEFAULT false,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT
);
CREATE INDEX outbox_open ON outbox (component, id) WHERE status = 'pending' OR status = 'sending';

-- Per component a node feeds, the mark of the last report applied there.
CREATE TABLE feeds (
    node       TEXT    NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    component  TEXT    NOT NULL,
    epoch      BIGINT  NOT NULL,
    seq        BIGINT  NOT NULL,
    since      BIGINT  NOT NULL,
    stale      BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (node, component)
);
CREATE INDEX feeds_component ON feeds (component);
CREATE INDEX feeds_stale ON feeds (component) WHERE stale;
