//! What serde cannot check: values that must agree with each other or with the world (a URL,
//! ids, names that must be distinct, templates). Every error names the key and, where the text
//! has it, its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;

/// What is wrong, under which key: the key (with its place where known) and the message.
pub(super) type Problem = (String, String);

impl Config {
    pub(super) fn validate(&self, text: &str, path: &Path) -> Result<(), CoreError> {
        let invalid = |(key, message): Problem| invalid_at(text, path, key, message);
        self.check_spool().map_err(invalid)?;
        self.check_backend().map_err(invalid)?;
        self.check_monit().map_err(invalid)?;
        self.check_checks().map_err(invalid)?;
        self.check_collector().map_err(invalid)?;
        self.check_serve().map_err(invalid)?;
        self.check_store().map_err(invalid)?;
        self.check_delivery().map_err(invalid)?;
        self.check_components(text).map_err(invalid)?;
        Ok(())
    }

    /// The spool's path.
    fn check_spool(&self) -> Result<(), Problem> {
        if self.spool.as_os_str().is_empty() {
            return Err((
                "spool".into(),
                "is empty: name the spool file, e.g. spool = \"/var/lib/statusrelay/spool.db\""
                    .into(),
            ));
        }
        Ok(())
    }

    /// The page: a remote one's URL and credentials, the static page's directory, groups and history, status.io's containers.
    fn check_backend(&self) -> Result<(), Problem> {
        if let Some(r) = self.backend.remote() {
            validate_remote(r, self.backend.kind())?;
        }
        if let BackendConfig::Html {
            dir,
            groups,
            history_days,
            ..
        } = &self.backend
        {
            if dir.as_os_str().is_empty() {
                return Err(("backend.dir".into(), "must name a directory".into()));
            }
            if !(1..=366).contains(history_days) {
                return Err((
                    "backend.history_days".into(),
                    format!("{history_days}: use 1 to 366"),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for g in groups {
                for n in &g.components {
                    if !seen.insert(n.as_str()) {
                        return Err((
                            format!("backend.groups {:?}", g.name),
                            format!("component {n:?} is already in a group: list it once"),
                        ));
                    }
                    if !self.components.is_empty() && !self.components.iter().any(|c| &c.name == n)
                    {
                        return Err((
                            format!("backend.groups {:?}", g.name),
                            format!("{n:?} is not a configured [[component]] name"),
                        ));
                    }
                }
            }
        }
        let kind = self.backend.kind();
        for c in &self.components {
            if c.container.is_some() && kind != BackendKind::Statusio {
                return Err((
                    format!("component {:?}: container", c.name),
                    "only status.io components have a container: remove it".into(),
                ));
            }
        }
        Ok(())
    }

    /// Monit's interface, for `resync`.
    fn check_monit(&self) -> Result<(), Problem> {
        if let Some(m) = &self.monit {
            match (&m.url, &m.socket) {
                (None, None) => {
                    return Err((
                        "monit".into(),
                        "set url = \"http://127.0.0.1:2812\" or socket = \"/run/monit.sock\""
                            .into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(("monit".into(), "set only one of url and socket".into()));
                }
                (Some(u), None) if !u.starts_with("http://") => {
                    return Err((
                        "monit.url".into(),
                        format!(
                            "{u:?}: Monit's interface is read over plain http://, e.g. http://127.0.0.1:2812"
                        ),
                    ));
                }
                _ => {}
            }
            if m.user.is_some() && m.password_file.is_none() && m.password_env.is_none() {
                return Err((
                    "monit".into(),
                    "user is set: also set password_file or password_env".into(),
                ));
            }
            if m.resync_interval
                .is_some_and(|d| d < Duration::from_secs(1))
            {
                return Err(("monit.resync_interval".into(), "must be at least 1s".into()));
            }
        }
        Ok(())
    }

    /// The checks `monit-config` writes.
    fn check_checks(&self) -> Result<(), Problem> {
        for (i, c) in self.checks.iter().enumerate() {
            let key = format!("check[{}] ({:?})", i + 1, c.service);
            if c.service.is_empty()
                || !c
                    .service
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
            {
                return Err((
                    format!("{key}.service"),
                    "use letters, digits, _, - and . only (a Monit service name)".into(),
                ));
            }
            if !CHECK_TYPES.contains(&c.kind.as_str()) {
                return Err((
                    format!("{key}.type"),
                    format!("{:?} is not one of {}", c.kind, CHECK_TYPES.join(", ")),
                ));
            }
            if c.tests.is_empty()
                || c.tests
                    .iter()
                    .any(|t| t.trim().is_empty() || t.contains('\n'))
            {
                return Err((
                    format!("{key}.tests"),
                    "list one or more single-line Monit conditions".into(),
                ));
            }
            for (k, v) in [
                ("start", &c.start),
                ("stop", &c.stop),
                ("target", &Some(c.target.clone())),
            ] {
                if v.as_deref()
                    .is_some_and(|v| v.contains('\n') || (k != "target" && v.contains('"')))
                {
                    return Err((
                        format!("{key}.{k}"),
                        "must be one line without double quotes".into(),
                    ));
                }
            }
            match &c.component {
                Some(name)
                    if !self.components.is_empty()
                        && !self.components.iter().any(|x| &x.name == name) =>
                {
                    return Err((
                        format!("{key}.component"),
                        format!("no [[component]] named {name:?}"),
                    ));
                }
                None if !self.components.is_empty() && self.route(&c.service).is_empty() => {
                    return Err((
                        format!("{key}.service"),
                        format!(
                            "{:?} feeds no [[component]]: add it to a component's services or set component",
                            c.service
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A Monit-only node's collector URL and name.
    fn check_collector(&self) -> Result<(), Problem> {
        if let Some(c) = &self.collector {
            let ok = (c.url.starts_with("https://") || c.url.starts_with("http://"))
                && !c.url.contains('@')
                && !c.url.chars().any(|ch| ch.is_whitespace() || ch == '"');
            if !ok {
                return Err((
                    "collector.url".into(),
                    format!(
                        "{:?}: the aggregator's collector URL without credentials, e.g. \"https://aggregator.example.com:8731/collector\" (the node's name and secret are added from `node` and secret_file)",
                        c.url
                    ),
                ));
            }
            if self.node.is_none() {
                return Err((
                    "collector".into(),
                    "needs `node = \"NAME\"` at the top: the name the aggregator knows this node by (`statusrelay nodes add NAME`)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The aggregator's listener, TLS and bounds.
    fn check_serve(&self) -> Result<(), Problem> {
        if let Some(sv) = &self.serve {
            if sv.tls_cert.is_some() != sv.tls_key.is_some() {
                return Err((
                    if sv.tls_cert.is_some() {
                        "serve.tls_key"
                    } else {
                        "serve.tls_cert"
                    }
                    .into(),
                    "TLS needs both tls_cert (the PEM chain) and tls_key (its PEM key)".into(),
                ));
            }
            if !sv.listen.ip().is_loopback() && !sv.allow_plain_http && sv.tls_cert.is_none() {
                return Err((
                    "serve.listen".into(),
                    format!(
                        "{} is not loopback: node credentials would cross the network in plain HTTP; set tls_cert and tls_key, or allow_plain_http = true to accept that (a TLS-terminating proxy in front), or listen on 127.0.0.1",
                        sv.listen
                    ),
                ));
            }
            if sv.max_connections == 0 || sv.node_rate == 0 || sv.node_burst == 0 {
                return Err((
                    "serve".into(),
                    "max_connections, node_rate and node_burst must be at least 1".into(),
                ));
            }
            if sv.max_body < 1024 || sv.request_timeout < Duration::from_secs(1) {
                return Err((
                    "serve".into(),
                    "max_body must be at least 1024 bytes and request_timeout at least 1s".into(),
                ));
            }
            if sv.body_budget < sv.max_body {
                return Err((
                    "serve.body_budget".into(),
                    format!(
                        "= {} is below max_body = {}: one largest request could never be read; make it at least max_body (default 32 MiB)",
                        sv.body_budget, sv.max_body
                    ),
                ));
            }
            if sv.max_connections_per_peer == 0 || sv.max_failed_auth == 0 {
                return Err((
                    "serve".into(),
                    "max_connections_per_peer and max_failed_auth must be at least 1".into(),
                ));
            }
            if sv.stale_after < 2 {
                return Err((
                    "serve.stale_after".into(),
                    format!(
                        "= {}: a node would flap between stale and back at every late report; use 2 or more missed periods (default 3)",
                        sv.stale_after
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Retries, dead-lettering and read-back.
    fn check_delivery(&self) -> Result<(), Problem> {
        let d = &self.delivery;
        if d.backoff_base.is_zero() || d.backoff_cap < d.backoff_base {
            return Err((
                "delivery".into(),
                "need 0 < backoff_base <= backoff_cap".into(),
            ));
        }
        if d.max_age.is_zero() {
            return Err((
                "delivery.max_age".into(),
                "must be more than 0s: it is how long an undelivered state is retried before it is dead-lettered (e.g. \"24h\")".into(),
            ));
        }
        if d.verify_after < Duration::from_secs(1) {
            return Err((
                "delivery.verify_after".into(),
                "must be at least 1s: the page is read back this long after a write whose outcome is unknown".into(),
            ));
        }
        Ok(())
    }

    /// The components: names distinct (also as Monit's slugs and Cachet's case-blind names), ids, node rules, incident templates.
    fn check_components(&self, text: &str) -> Result<(), Problem> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut slugs: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in self.components.iter().enumerate() {
            let key = format!("component[{}] (line {})", i + 1, component_line(text, i));
            if c.name.trim().is_empty() || c.name.len() > 190 {
                return Err((format!("{key}.name"), "must be 1 to 190 characters".into()));
            }
            if let Some(prev) = seen.insert(c.name.as_str(), i) {
                return Err((
                    format!("{key}.name"),
                    format!("{:?} is already component[{}]", c.name, prev + 1),
                ));
            }
            if c.slug().is_empty() {
                return Err((
                    format!("{key}.name"),
                    format!(
                        "{:?} has no letter or digit: Monit's exec line needs one to name it",
                        c.name
                    ),
                ));
            }
            if let Some(prev) = slugs.insert(c.slug(), i) {
                return Err((
                    format!("{key}.name"),
                    format!(
                        "{:?} and {:?} (component[{}]) differ only in case, spaces or punctuation: Cachet on MySQL compares names without case, and Monit's exec line names both {:?}; rename one",
                        c.name,
                        self.components[prev].name,
                        prev + 1,
                        c.slug()
                    ),
                ));
            }
            if let Some(id) = &c.id
                && self.backend.kind().numeric_ids()
                && !id.parse::<u64>().is_ok_and(|n| n > 0)
            {
                return Err((
                    format!("{key}.id"),
                    format!("{id:?}: Cachet ids are numbers starting at 1"),
                ));
            }
            if let Some(problem) = c.nodes.problem() {
                return Err((format!("{key}.nodes"), problem));
            }
            for (k, t) in [
                ("incident_name", &c.incident_name),
                ("incident_message", &c.incident_message),
            ] {
                if let Some(t) = t {
                    crate::template::validate(t).map_err(|m| (format!("{key}.{k}"), m))?;
                }
            }
        }
        Ok(())
    }
}

/// Validate the API settings of `kind`; the error is (key, message).
fn validate_remote(r: &Remote, kind: BackendKind) -> Result<(), (String, String)> {
    let url = r.url_for(kind);
    if url.is_empty() {
        return Err((
            "backend.url".into(),
            "is required: the page's base URL, e.g. url = \"https://status.example.com\"".into(),
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err((
            "backend.url".into(),
            format!("{url:?} is not an http(s) URL, e.g. https://status.example.com"),
        ));
    }
    if kind == BackendKind::Relay {
        let path = url
            .splitn(4, '/')
            .nth(3)
            .unwrap_or("")
            .trim_end_matches('/');
        if path.ends_with("collector") || path.ends_with("v1/reports") {
            return Err((
                "backend.url".into(),
                format!(
                    "{url:?} names an endpoint: url is the aggregator's base URL (e.g. \"https://aggregator.example.com:8731\"); the node posts to /v1/reports under it, and /collector is Monit's own way in (`set mmonit`)"
                ),
            ));
        }
    }
    let need = |v: &Option<String>, key: &str, example: &str| match v.as_deref() {
        Some(s)
            if !s.trim().is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(())
        }
        Some(s) => Err((
            format!("backend.{key}"),
            format!("{s:?} is not an id (letters, digits, - and _ only)"),
        )),
        None => Err((
            "backend".into(),
            format!("kind = {:?} needs {key} = {example:?}", kind.as_str()),
        )),
    };
    match kind {
        BackendKind::Statuspage => need(&r.page_id, "page_id", "kctbh9vrtdwd")?,
        BackendKind::Statusio => {
            need(&r.page_id, "page_id", "568d8a3e3cada8c2490000dd")?;
            need(&r.api_id, "api_id", "6d3f4c6e-....")?;
        }
        _ => {}
    }
    match (&r.token_file, &r.token_env) {
        (None, None) => {
            return Err((
                "backend".into(),
                format!(
                    "kind = {:?} needs a token: set token_file = \"/etc/statusrelay/token\" or token_env = \"STATUSRELAY_TOKEN\"",
                    kind.as_str()
                ),
            ));
        }
        (Some(_), Some(_)) => {
            return Err((
                "backend".into(),
                "set only one of token_file and token_env".into(),
            ));
        }
        _ => {}
    }
    if r.timeout.is_zero() {
        return Err(("backend.timeout".into(), "must be more than 0s".into()));
    }
    if r.min_interval.is_some_and(|d| d > MAX_MIN_INTERVAL) {
        return Err((
            "backend.min_interval".into(),
            format!(
                "{}: at most {}s; the first request of every run waits one interval (the published rate limits are about 1 request/s)",
                crate::duration::format(r.min_interval.unwrap_or_default()),
                MAX_MIN_INTERVAL.as_secs()
            ),
        ));
    }
    Ok(())
}
