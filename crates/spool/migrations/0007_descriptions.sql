-- statusrelay spool, schema 7: a failing test's own words.

-- What Monit (or the operator, for a local source) said when the test failed: its first
-- line, as the page may show it. NULL while the test passes, or when nothing was said (a
-- failure first seen in a status document): a later report without words keeps the ones the
-- failure began with.
ALTER TABLE tests ADD COLUMN description TEXT;
