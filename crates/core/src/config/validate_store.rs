//! `[store]` checked: the PostgreSQL store of several `serve` instances (`Config::validate`
//! calls it with the other tables' checks).

use std::time::Duration;

use super::Config;
use super::validate::Problem;

impl Config {
    /// The PostgreSQL store: a connection string with no password in it, a lease that
    /// outlasts a page request.
    pub(super) fn check_store(&self) -> Result<(), Problem> {
        let Some(st) = &self.store else {
            return Ok(());
        };
        let url = st.url.trim();
        let is_url = url.starts_with("postgresql://") || url.starts_with("postgres://");
        let is_words = !is_url && url.contains('=');
        if !is_url && !is_words {
            return Err((
                "store.url".into(),
                format!(
                    "{url:?} is not a PostgreSQL connection string: write a URL (\"postgresql://statusrelay@db1,db2/statusrelay?target_session_attrs=read-write\") or key=value words (\"host=db1,db2 dbname=statusrelay user=statusrelay\")"
                ),
            ));
        }
        let has_password = if is_url {
            url.split('/')
                .nth(2)
                .and_then(|authority| authority.split_once('@'))
                .is_some_and(|(user, _)| user.contains(':'))
                || url.contains("password=")
        } else {
            url.split_whitespace().any(|w| w.starts_with("password="))
        };
        if has_password {
            return Err((
                "store.url".into(),
                "holds a password: take it out, and put it in a file only statusrelay reads (password_file = \"/etc/statusrelay/pg-password\") or in PGPASSWORD in the service's environment".into(),
            ));
        }
        // The built-in page is written to a file: no request to outlast but the renewal.
        let timeout = self.backend.remote().map_or(Duration::ZERO, |r| r.timeout);
        let renewal = st.lease / 5;
        let needed = timeout + renewal + st.lease / 20;
        if st.lease <= needed || st.lease < Duration::from_secs(1) {
            return Err((
                "store.lease".into(),
                format!(
                    "= {}: the writer could never send a page request within it ({} of request timeout, {} between renewals, {} of margin); make it longer than {}, or `[backend] timeout` shorter",
                    crate::duration::format(st.lease),
                    crate::duration::format(timeout),
                    crate::duration::format(renewal),
                    crate::duration::format(st.lease / 20),
                    crate::duration::format(needed * 4 / 3)
                ),
            ));
        }
        Ok(())
    }
}
