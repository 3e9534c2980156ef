-- statusrelay spool, schema 3: read the page back after a write whose outcome is unknown.

-- When to read the component's state back from the page: set after a write whose answer was
-- lost or was a server error (the server may still carry it out, late), cleared once the page
-- has been read. NULL when nothing is in doubt.
ALTER TABLE page ADD COLUMN verify_at INTEGER;
