//! What an aggregator's page says: the failing tests' own words, never the aggregator's.
//!
//! Invariants:
//! - On an aggregator (`[serve]`), the text a delivery carries (the built-in page's message,
//!   an incident's `{description}`) is made from the component's failing tests as they stand
//!   when it is sent (`statusrelay_core::words::for_page`): Monit's descriptions grouped by
//!   service, node names only with `[backend] show_nodes`. The event that caused the change
//!   (a relay batch, a status document, a silence) is internal and never quoted.
//! - On a single node the event's own description speaks, as it always did.

use statusrelay_core::words::{self, Failing};
use statusrelay_spool::store::{Nodes, Reports};
use statusrelay_spool::{Item, LOCAL_MARK};

use super::Flusher;

/// The words of one delivery on an aggregator, and the template variables they fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PageWords {
    /// What is wrong, in the operator's words; None when nothing is (operational).
    pub description: Option<String>,
    /// The failing services, comma-separated.
    pub services: String,
    /// The nodes they fail on, comma-separated: empty unless `show_nodes`.
    pub hosts: String,
}

impl Flusher<'_> {
    /// Is this the aggregator's flusher (its page is the fleet's)?
    pub(crate) fn is_fleet(&self) -> bool {
        self.config.serve.is_some()
    }

    /// The public words of `item` on an aggregator; None on a single node.
    pub(crate) fn page_words(
        &mut self,
        item: &Item,
    ) -> Result<Option<PageWords>, statusrelay_serve::store::StoreFailure> {
        if !self.is_fleet() {
            return Ok(None);
        }
        let failing = self.spool.failing_tests(&item.component)?;
        let nodes = self.spool.component_nodes(&item.component)?;
        let nodes: Vec<(&str, bool)> = nodes.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let said: Vec<Failing<'_>> = failing
            .iter()
            .map(|t| Failing {
                service: &t.service,
                host: &t.host,
                local: t.host.starts_with(LOCAL_MARK),
                test: t.test.as_str(),
                state: t.state,
                description: t.description.as_deref(),
            })
            .collect();
        let show = self.config.show_nodes;
        let rule = self.config.node_rule(&item.component);
        let description = words::for_page(item.state, &said, &nodes, rule.stale, show);
        let quiet: std::collections::HashSet<&str> =
            nodes.iter().filter(|n| n.1).map(|n| n.0).collect();
        let heard: Vec<&Failing<'_>> = said
            .iter()
            .filter(|f| !f.local && !quiet.contains(f.host))
            .collect();
        let list = |of: &dyn Fn(&Failing<'_>) -> String| {
            let mut v: Vec<String> = heard.iter().map(|f| of(f)).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        Ok(Some(PageWords {
            description,
            services: list(&|f| f.service.to_string()),
            hosts: if show {
                list(&|f| f.host.to_string())
            } else {
                String::new()
            },
        }))
    }
}
