-- statusrelay's PostgreSQL store, schema 5: the deliveries' claims and the page's state (the
-- seam's parts statusrelay_spool::store::{Deliveries, PageState}), as the SQLite spool keeps
-- them. Every write of these is fenced by the writer's term (`lease::fence`).

ALTER TABLE outbox
    ADD COLUMN claim       TEXT,
    ADD COLUMN claimed_at  BIGINT,
    ADD COLUMN term        BIGINT,      -- the writer's term the claim was made under
    ADD COLUMN finished_at BIGINT,
    ADD COLUMN held        TEXT;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';

-- What each page was last confirmed to show, its ids, and when to read it back.
CREATE TABLE page (
    backend       TEXT   NOT NULL,
    component     TEXT   NOT NULL,
    remote_id     TEXT,
    state         TEXT,
    confirmed_at  BIGINT,
    verify_at     BIGINT,
    PRIMARY KEY (backend, component)
);

-- The writer's last results, for `status`.
CREATE TABLE flusher (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    last_success_at  BIGINT,
    last_error       TEXT,
    last_error_at    BIGINT
);
