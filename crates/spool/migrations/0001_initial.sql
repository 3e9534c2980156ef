-- statusrelay spool, schema 1. Times are unix milliseconds; ids are the spool's own sequence,
-- the only ordering statusrelay trusts (MONIT_DATE has no zone and clocks move).

-- Every event ever received, raw, for replay and audit.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    origin       TEXT    NOT NULL,              -- monit | event | replay
    host         TEXT,
    service      TEXT,
    event        TEXT,
    description  TEXT,
    monit_date   TEXT,
    raw          TEXT    NOT NULL,              -- JSON: every MONIT_* variable or the CLI arguments
    test         TEXT,
    effect       TEXT,                          -- fail | recover | info
    status       TEXT    NOT NULL CHECK (status IN ('applied', 'info', 'rejected', 'replayed')),
    error        TEXT                           -- why it was rejected
);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_rejected ON events (id) WHERE status = 'rejected';

-- Per (component, host, service, test): is the test failing, and as which state. Monit keeps
-- state per test, so does statusrelay. event_id guards against older events applied late.
CREATE TABLE tests (
    component  TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    service    TEXT    NOT NULL,
    test       TEXT    NOT NULL,
    state      TEXT,                            -- NULL while the test passes
    event_id   INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    PRIMARY KEY (component, host, service, test)
) WITHOUT ROWID;

-- The state each component should show: the worst failing test, else operational.
CREATE TABLE desired (
    component   TEXT PRIMARY KEY,
    state       TEXT    NOT NULL,
    event_id    INTEGER,
    changed_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Deliveries: one row per change of desired state. Only the newest pending row of a component
-- is ever sent; older ones become 'superseded'. Retry state lives on the row.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    component        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    event_id         INTEGER,
    message          TEXT,
    created_at       INTEGER NOT NULL,
    queued_at        INTEGER NOT NULL,          -- reset by replay; max_age counts from here
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'done', 'superseded', 'skipped', 'dead')),
    force            INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    claim            TEXT,
    claimed_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX outbox_open ON outbox (status, next_attempt_at) WHERE status IN ('pending', 'sending', 'dead');
CREATE INDEX outbox_component ON outbox (component, id);

-- What the status page shows, as last confirmed by its API, and the component's id there.
CREATE TABLE page (
    backend       TEXT    NOT NULL,
    component     TEXT    NOT NULL,
    remote_id     TEXT,
    state         TEXT,
    confirmed_at  INTEGER,
    PRIMARY KEY (backend, component)
) WITHOUT ROWID;

-- The flusher's liveness and last results, for `status`.
CREATE TABLE flusher (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    pid              INTEGER,
    started_at       INTEGER,
    heartbeat_at     INTEGER,
    last_success_at  INTEGER,
    last_error       TEXT,
    last_error_at    INTEGER
);
