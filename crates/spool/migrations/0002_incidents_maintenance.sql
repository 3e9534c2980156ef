-- statusrelay spool, schema 2: incidents, maintenance windows, held deliveries.

-- Why a pending delivery is held back (maintenance, a human's incident); NULL when it is not.
ALTER TABLE outbox ADD COLUMN held TEXT;

-- Incidents statusrelay opened. The row is written with status 'opening' BEFORE the request that
-- creates the incident, so a crash or a lost response leaves a trace to look up, never a
-- second incident. At most one unresolved incident per component and page.
CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    backend      TEXT    NOT NULL,
    component    TEXT    NOT NULL,
    remote_id    TEXT,                         -- the page's id; NULL until confirmed or found
    status       TEXT    NOT NULL CHECK (status IN ('opening', 'open', 'resolving', 'resolved', 'lost')),
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL,             -- component state last posted with it
    intent_at    INTEGER NOT NULL,
    opened_at    INTEGER,
    resolved_at  INTEGER,
    note         TEXT
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (backend, component) WHERE status IN ('opening', 'open', 'resolving');

-- Local maintenance windows (`statusrelay maintenance start`).
CREATE TABLE maintenance (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    component  TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT,
    show       INTEGER NOT NULL DEFAULT 0,     -- the page shows under_maintenance while it lasts
    ended_at   INTEGER
);
CREATE INDEX maintenance_active ON maintenance (component) WHERE ended_at IS NULL;
