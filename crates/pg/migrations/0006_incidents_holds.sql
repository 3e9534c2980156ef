-- statusrelay's PostgreSQL store, schema 6: the incidents statusrelay opens and the local
-- maintenance windows (the seam's parts statusrelay_spool::store::{Incidents, Holds}), as the
-- SQLite spool keeps them. An incident's intent is committed before the request that opens
-- it, so a writer taking over finds an opening whose answer was lost and looks it up on the
-- page before it creates another: one incident per outage across a takeover.
CREATE TABLE incidents (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    backend      TEXT   NOT NULL,
    component    TEXT   NOT NULL,
    remote_id    TEXT,
    status       TEXT   NOT NULL CHECK (status IN ('opening', 'open', 'resolving', 'resolved', 'lost')),
    name         TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    intent_at    BIGINT NOT NULL,
    opened_at    BIGINT,
    resolved_at  BIGINT,
    note         TEXT
);
-- One unresolved incident per page and component, whichever instance opens it.
CREATE UNIQUE INDEX incidents_one_open ON incidents (backend, component)
    WHERE status = 'opening' OR status = 'open' OR status = 'resolving';

CREATE TABLE maintenance (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component  TEXT    NOT NULL,
    starts_at  BIGINT  NOT NULL,
    ends_at    BIGINT  NOT NULL,
    reason     TEXT,
    show       BOOLEAN NOT NULL DEFAULT false,
    ended_at   BIGINT
);
CREATE INDEX maintenance_active ON maintenance (component) WHERE ended_at IS NULL;
