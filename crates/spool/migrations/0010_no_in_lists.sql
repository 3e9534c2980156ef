-- statusrelay spool, schema 10: the status checks and the open-work indexes say `x = a OR
-- x = b` instead of `x IN (a, b, c)`. Both mean the same; SQLite treats them differently:
-- - A CHECK or an index WHERE of the form `x IN (three or more values)` makes SQLite build a
--   temporary table of the values at every INSERT and UPDATE that evaluates it: a pager, a
--   page cache and its memory, each time. Every recorded event paid it (the aggregator's
--   profile showed it as a fifth of a partition burst's CPU).
-- - A partial index whose WHERE is an IN list is not used by a query asking `status =
--   'pending'` (SQLite proves `x = a` implies `x = a OR ...`, not `x IN (...)`): the claim of
--   the next delivery read the whole outbox.
-- The tables are rebuilt (SQLite cannot change a CHECK in place) with every row, id and
-- AUTOINCREMENT sequence kept.

CREATE TABLE events_10 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    origin       TEXT    NOT NULL,              -- EventSource::origin: monit, event, relay, ...
    host         TEXT,
    service      TEXT,
    event        TEXT,
    description  TEXT,
    monit_date   TEXT,
    raw          TEXT    NOT NULL,              -- JSON: every MONIT_* variable or the CLI arguments
    test         TEXT,
    effect       TEXT,                          -- fail | recover | info
    status       TEXT    NOT NULL CHECK (status = 'applied' OR status = 'info'
                                         OR status = 'rejected' OR status = 'replayed'),
    error        TEXT                           -- why it was rejected
);
INSERT INTO events_10 (id, received_at, origin, host, service, event, description, monit_date,
                       raw, test, effect, status, error)
SELECT id, received_at, origin, host, service, event, description, monit_date,
       raw, test, effect, status, error FROM events;

CREATE TABLE outbox_10 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    component        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    event_id         INTEGER,
    message          TEXT,
    created_at       INTEGER NOT NULL,
    queued_at        INTEGER NOT NULL,          -- reset by replay; max_age counts from here
    status           TEXT    NOT NULL CHECK (status = 'pending' OR status = 'sending'
                                             OR status = 'done' OR status = 'superseded'
                                             OR status = 'skipped' OR status = 'dead'),
    force            INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    claim            TEXT,
    claimed_at       INTEGER,
    finished_at      INTEGER,
    held             TEXT
);
INSERT INTO outbox_10 (id, component, state, event_id, message, created_at, queued_at, status,
                       force, attempts, next_attempt_at, last_error, claim, claimed_at,
                       finished_at, held)
SELECT id, component, state, event_id, message, created_at, queued_at, status,
       force, attempts, next_attempt_at, last_error, claim, claimed_at, finished_at, held
FROM outbox;

CREATE TABLE incidents_10 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    backend      TEXT    NOT NULL,
    component    TEXT    NOT NULL,
    remote_id    TEXT,                         -- the page's id; NULL until confirmed or found
    status       TEXT    NOT NULL CHECK (status = 'opening' OR status = 'open'
                                         OR status = 'resolving' OR status = 'resolved'
                                         OR status = 'lost'),
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL,             -- component state last posted with it
    intent_at    INTEGER NOT NULL,
    opened_at    INTEGER,
    resolved_at  INTEGER,
    note         TEXT
);
INSERT INTO incidents_10 (id, backend, component, remote_id, status, name, state, intent_at,
                          opened_at, resolved_at, note)
SELECT id, backend, component, remote_id, status, name, state, intent_at,
       opened_at, resolved_at, note FROM incidents;

-- The AUTOINCREMENT sequences carry over: an id is never given twice, even one whose row was
-- pruned. (The copies' own rows, made by the inserts above, go first.)
DELETE FROM sqlite_sequence WHERE name IN ('events_10', 'outbox_10', 'incidents_10');
INSERT INTO sqlite_sequence (name, seq)
SELECT name || '_10', seq FROM sqlite_sequence WHERE name IN ('events', 'outbox', 'incidents');

DROP TABLE events;
DROP TABLE outbox;
DROP TABLE incidents;
ALTER TABLE events_10 RENAME TO events;
ALTER TABLE outbox_10 RENAME TO outbox;
ALTER TABLE incidents_10 RENAME TO incidents;

CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_rejected ON events (id) WHERE status = 'rejected';
CREATE INDEX outbox_open ON outbox (status, next_attempt_at)
    WHERE status = 'pending' OR status = 'sending' OR status = 'dead';
CREATE INDEX outbox_component ON outbox (component, id);
CREATE UNIQUE INDEX incidents_one_open ON incidents (backend, component)
    WHERE status = 'opening' OR status = 'open' OR status = 'resolving';
