//! Incidents in the flusher.
//!
//! Invariants:
//! - Exactly one incident per outage. The intent is committed before the request that opens it;
//!   an attempt that ended ambiguously (timeout, lost response, a killed flusher) is followed by a
//!   lookup on the page before anything is created again.
//! - After every incident step the component's state is set explicitly: Cachet leaves a component
//!   at its outage status when an incident is fixed (cachet #2423), and 2.4's incident updates do
//!   not touch the component.
//! - Every incident statusrelay opens carries a marker of its intent (`[statusrelay ID.MS]`) in
//!   its text: a lookup after a lost answer finds it by the marker, and an incident with a
//!   marker is never taken for a human's. Duplicates a late request created are resolved with it.
//! - An incident deleted on the page (404) is recorded as lost and never blocks delivery.

use statusrelay_spool::store::Incidents;
use std::collections::BTreeMap;

use statusrelay_backend::BackendError;
use statusrelay_core::config::{
    DEFAULT_FLEET_INCIDENT_MESSAGE, DEFAULT_INCIDENT_MESSAGE, DEFAULT_INCIDENT_NAME,
};
use statusrelay_core::time::rfc3339;
use statusrelay_core::{State, duration, template};
use statusrelay_spool::{Claimed, Incident, IncidentStatus, Item};

use super::Flusher;
use crate::{AppError, info, warn};

/// The marker written into an incident statusrelay opens, unique to its intent.
fn marker_of(i: &Incident) -> String {
    statusrelay_backend::marker(&format!("{}.{}", i.id, i.intent_at))
}

/// Why a delivery with its incident stopped short.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The spool failed: fatal to the flusher.
    Spool(AppError),
    /// The page failed: the delivery is retried or dead-lettered by its error.
    Page(BackendError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::Spool(e)
    }
}

impl From<statusrelay_spool::SpoolError> for Failure {
    fn from(e: statusrelay_spool::SpoolError) -> Self {
        Failure::Spool(e.into())
    }
}

impl From<statusrelay_serve::store::StoreFailure> for Failure {
    fn from(e: statusrelay_serve::store::StoreFailure) -> Self {
        Failure::Spool(e.into())
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Page(e)
    }
}

/// What a delivery has looked up on the page so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Looked {
    /// For the incident of an opening whose answer was lost.
    pub lost_opening: bool,
    /// For a human's incident already open.
    pub human: bool,
}

/// The next step of a component's incident before its state is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncidentStep {
    /// An opening whose answer was lost: look for it on the page first.
    FindLost,
    /// Operational, and no incident to resolve: send the state.
    Recovered,
    /// Operational: resolve the open incident, then send.
    Resolve,
    /// Failing, the incident open with another state: update it, then send.
    Update,
    /// Failing, the incident open with this state: send.
    Keep,
    /// Failing, no incident, `respect_manual`: look for a human's incident on the page first.
    LookForHuman,
    /// Failing: open the incident (under the intent recorded, if any), then send.
    Open,
}

/// The next step for a component's new `state`, its incident and what was looked up
/// already (pure: see [`IncidentStep`]). Each lookup is asked for once, so a delivery takes
/// at most three steps.
pub(crate) fn incident_step(
    state: State,
    open: Option<&Incident>,
    respect_manual: bool,
    looked: Looked,
) -> IncidentStep {
    if open.is_some_and(|i| i.status == IncidentStatus::Opening) && !looked.lost_opening {
        return IncidentStep::FindLost;
    }
    let live = open.filter(|i| i.status != IncidentStatus::Opening);
    if state == State::Operational {
        return match live {
            Some(_) => IncidentStep::Resolve,
            None => IncidentStep::Recovered,
        };
    }
    match open {
        Some(i) if matches!(i.status, IncidentStatus::Open | IncidentStatus::Resolving) => {
            if i.state != state {
                IncidentStep::Update
            } else {
                IncidentStep::Keep
            }
        }
        None if respect_manual && !looked.human => IncidentStep::LookForHuman,
        _ => IncidentStep::Open,
    }
}

impl Flusher<'_> {
    /// A person deleted our incident on the page (404): record it as lost, never block on it.
    fn deleted_on_page(&mut self, i: &Incident, and: &str) -> Result<(), AppError> {
        warn!(
            "incident #{} for {} was deleted on the page; recorded as lost{and}",
            i.remote_id.as_deref().unwrap_or_default(),
            i.component
        );
        self.spool
            .incident_status(i.id, IncidentStatus::Lost, Some("deleted on the page"))?;
        Ok(())
    }

    /// Resolve incidents a retried open left behind: the first attempt's request, whose answer
    /// was lost, was carried out late, after the retry had opened another. Both carry the
    /// intent's marker; the one recorded is resolved already.
    pub(super) fn resolve_duplicates(
        &mut self,
        i: &Incident,
        resolved: &str,
        remote_id: &str,
        msg: &str,
    ) -> Result<(), BackendError> {
        let m = marker_of(i);
        for dup in self.page()?.open_incidents(remote_id)? {
            if dup.id != resolved && dup.carries(&m) {
                self.page()?
                    .resolve_incident(&dup.id, remote_id, msg, false)?;
                info!(
                    "resolved incident #{} for {} too: a duplicate of #{resolved}, opened late by a request whose answer was lost",
                    dup.id, i.component
                );
            }
        }
        Ok(())
    }

    /// Is the sink a status page that has incidents (an aggregator has none)?
    pub(crate) fn page_has_incidents(&self) -> bool {
        matches!(&self.sink, statusrelay_backend::Sink::Page(p) if p.supports_incidents())
    }

    /// Is `incidents = true` for this component, on a page that has incidents?
    pub(crate) fn incidents_for(&self, component: &str) -> bool {
        self.page_has_incidents()
            && self
                .config
                .components
                .iter()
                .any(|c| c.name == component && c.incidents)
    }

    /// Does the incident bookkeeping still have work although the page shows the state?
    pub(crate) fn incident_work_pending(&mut self, item: &Item) -> Result<bool, AppError> {
        let open = self.spool.open_incident(&self.identity, &item.component)?;
        Ok(match (item.state, open) {
            (State::UnderMaintenance, _) => false,
            (State::Operational, open) => open.is_some(),
            (state, Some(i)) => i.status != IncidentStatus::Open || i.state != state,
            (_, None) => true,
        })
    }

    pub(super) fn template_vars(
        &mut self,
        item: &Item,
        incident: Option<&Incident>,
    ) -> Result<BTreeMap<&'static str, String>, AppError> {
        let mut ctx = item
            .event_id
            .and_then(|id| self.spool.event_context(id).ok())
            .unwrap_or_default();
        // An aggregator's event is internal (a batch, a document, a silence): the page gets
        // the failing tests' words, their services and, where asked, their nodes.
        let fleet = self.page_words(item)?;
        if let Some(w) = &fleet {
            ctx.description = w.description.clone();
            ctx.service = Some(w.services.clone());
            ctx.host = Some(w.hosts.clone());
        }
        let now = self.spool.now();
        let since = incident
            .map(|i| i.opened_at.unwrap_or(i.intent_at))
            .unwrap_or(now);
        let message = if fleet.is_some() {
            None
        } else {
            item.message.as_deref()
        };
        let description = ctx
            .description
            .as_deref()
            .or(message)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(500)
            .collect();
        Ok(BTreeMap::from([
            ("component", item.component.clone()),
            ("state", item.state.as_str().to_string()),
            ("state_label", item.state.label().to_string()),
            ("service", ctx.service.unwrap_or_else(|| "-".into())),
            ("host", ctx.host.unwrap_or_else(|| "-".into())),
            ("description", description),
            (
                "time",
                rfc3339(if ctx.received_at > 0 {
                    ctx.received_at
                } else {
                    now
                }),
            ),
            (
                "duration",
                duration::format(std::time::Duration::from_millis(
                    (now - since).max(0) as u64 / 1000 * 1000,
                )),
            ),
        ]))
    }

    /// Deliver a state with its incident: the steps [`incident_step`] asks for, in a loop
    /// that ends by setting the component.
    pub(crate) fn send_with_incident(&mut self, c: &Claimed) -> Result<State, Failure> {
        let item = &c.item;
        let comp = self.component_ref(&item.component);
        if item.state == State::UnderMaintenance {
            return Ok(self.send(c)?);
        }
        let id = self.resolve(&comp, false)?;
        let notify = self.config.incidents.notify;
        let mut open = self.spool.open_incident(&self.identity, &item.component)?;
        let mut looked = Looked::default();
        loop {
            let step = incident_step(
                item.state,
                open.as_ref(),
                self.config.incidents.respect_manual,
                looked,
            );
            match (step, open.take()) {
                (IncidentStep::FindLost, Some(i)) => {
                    self.find_lost_opening(&i, item, &id)?;
                    open = self.spool.open_incident(&self.identity, &item.component)?;
                    looked.lost_opening = true;
                }
                (IncidentStep::LookForHuman, None) => {
                    // A human's incident already speaks for this outage: no second one.
                    let list = self.page()?.open_incidents(&id)?;
                    if let Some(h) = list.iter().find(|p| !p.by_statusrelay()) {
                        info!(
                            "not opening an incident for {}: #{} {:?} is already open on the page",
                            item.component, h.id, h.name
                        );
                        let (_, msg) = self.incident_text(item, None)?;
                        return Ok(self.send_state(&comp, item.state, Some(&msg))?);
                    }
                    looked.human = true;
                }
                (IncidentStep::Resolve, Some(i)) => {
                    self.resolve_open(&i, item, &id, notify)?;
                    return Ok(self.send_state(&comp, State::Operational, None)?);
                }
                (IncidentStep::Update, Some(i)) => {
                    let (_, msg) = self.incident_text(item, Some(&i))?;
                    self.update_open(&i, item, &id, &msg)?;
                    return Ok(self.send_state(&comp, item.state, Some(&msg))?);
                }
                (IncidentStep::Keep, i) => {
                    let (_, msg) = self.incident_text(item, i.as_ref())?;
                    return Ok(self.send_state(&comp, item.state, Some(&msg))?);
                }
                (IncidentStep::Open, existing) => {
                    let (name, msg) = self.incident_text(item, existing.as_ref())?;
                    self.open_new(existing, item, &id, &name, &msg, notify)?;
                    // Cachet sets the component with the incident; set it explicitly all
                    // the same.
                    return Ok(self.send_state(&comp, item.state, Some(&msg))?);
                }
                (IncidentStep::Recovered, _) => {
                    return Ok(self.send_state(&comp, State::Operational, None)?);
                }
                // Not made by `incident_step`: each step that acts on an incident has one.
                (step, _) => {
                    crate::error!(
                        "incident step {step:?} for {} came without its incident; sending the state alone",
                        item.component
                    );
                    return Ok(self.send_state(&comp, item.state, None)?);
                }
            }
        }
    }

    /// The incident's name and message for `item`, from the component's templates.
    fn incident_text(
        &mut self,
        item: &Item,
        open: Option<&Incident>,
    ) -> Result<(String, String), AppError> {
        let cfg = self
            .config
            .components
            .iter()
            .find(|x| x.name == item.component);
        let name_t = cfg
            .and_then(|c| c.incident_name.as_deref())
            .unwrap_or(DEFAULT_INCIDENT_NAME);
        let msg_t = cfg
            .and_then(|c| c.incident_message.as_deref())
            .unwrap_or(if self.is_fleet() {
                DEFAULT_FLEET_INCIDENT_MESSAGE
            } else {
                DEFAULT_INCIDENT_MESSAGE
            });
        let vars = self.template_vars(item, open)?;
        Ok((
            template::render(name_t, &vars),
            template::render(msg_t, &vars),
        ))
    }

    /// Open the outage's incident: under the intent an earlier attempt recorded, or a new one
    /// recorded first, so a lost answer is found again by its marker.
    fn open_new(
        &mut self,
        existing: Option<Incident>,
        item: &statusrelay_spool::Item,
        id: &str,
        name: &str,
        msg: &str,
        notify: bool,
    ) -> Result<(), Failure> {
        let intent = match existing {
            Some(i) => i,
            None => {
                self.spool
                    .incident_intent(&self.identity, &item.component, name, item.state)?
            }
        };
        // The marker lets a later lookup tell this incident from a human's, and find it
        // when the answer to this request is lost.
        let body = format!("{msg}\n\n{}", marker_of(&intent));
        let rid = self
            .page()?
            .open_incident(id, item.state, &intent.name, &body, notify)?;
        self.spool.incident_opened(intent.id, &rid, item.state)?;
        info!(
            "opened incident #{rid} {:?} for {}",
            intent.name, item.component
        );
        Ok(())
    }

    /// An incident whose opening answer was lost: found on the page by its marker (or, on
    /// pages that list no text, by its name) and adopted; not there and the component back,
    /// it is marked lost; not there and still failing, it is opened below under the same
    /// intent.
    fn find_lost_opening(
        &mut self,
        i: &Incident,
        item: &statusrelay_spool::Item,
        id: &str,
    ) -> Result<(), Failure> {
        let list = self.page()?.open_incidents(id)?;
        let found = list
            .iter()
            .find(|p| p.carries(&marker_of(i)))
            // Pages that list no incident text: the name, if no statusrelay wrote it.
            .or_else(|| {
                list.iter()
                    .find(|p| p.name == i.name && !p.by_statusrelay())
            });
        match found {
            Some(found) => {
                info!(
                    "incident #{} for {} was opened by an earlier attempt whose answer was lost: using it, not opening another",
                    found.id, item.component
                );
                self.spool.incident_opened(i.id, &found.id, i.state)?;
            }
            None if item.state == State::Operational => {
                self.spool.incident_status(
                    i.id,
                    IncidentStatus::Lost,
                    Some("never confirmed by the page; nothing to resolve"),
                )?;
            }
            None => {} // Not on the page: opened next, under the same intent.
        }
        Ok(())
    }

    /// The outage's state changed: say so on its incident (one deleted on the page is not
    /// reopened for this outage).
    fn update_open(
        &mut self,
        i: &Incident,
        item: &statusrelay_spool::Item,
        id: &str,
        msg: &str,
    ) -> Result<(), Failure> {
        let rid = i.remote_id.clone().unwrap_or_default();
        match self.page()?.update_incident(&rid, id, item.state, msg) {
            Ok(()) => {
                self.spool.incident_state(i.id, item.state)?;
                info!(
                    "updated incident #{rid} for {}: now {}",
                    item.component, item.state
                );
            }
            Err(e) if e.is_not_found() => {
                self.deleted_on_page(i, ", not reopened for this outage")?
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The component is operational again: resolve its incident (and any duplicate of it).
    fn resolve_open(
        &mut self,
        i: &Incident,
        item: &statusrelay_spool::Item,
        id: &str,
        notify: bool,
    ) -> Result<(), Failure> {
        let vars = self.template_vars(item, Some(i))?;
        let msg = template::render(
            "Resolved: {component} is operational again after {duration}.",
            &vars,
        );
        self.spool
            .incident_status(i.id, IncidentStatus::Resolving, None)?;
        let rid = i.remote_id.clone().unwrap_or_default();
        match self.page()?.resolve_incident(&rid, id, &msg, notify) {
            Ok(()) => {
                self.spool
                    .incident_status(i.id, IncidentStatus::Resolved, None)?;
                info!(
                    "resolved incident #{rid} for {} after {}",
                    item.component, vars["duration"]
                );
                self.resolve_duplicates(i, &rid, id, &msg)?;
            }
            Err(e) if e.is_not_found() => self.deleted_on_page(i, "")?,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    fn incident(status: IncidentStatus, state: State) -> Incident {
        Incident {
            id: 1,
            component: "db".into(),
            remote_id: Some("7".into()),
            status,
            name: "db is down".into(),
            state,
            intent_at: 0,
            opened_at: Some(0),
            resolved_at: None,
            note: None,
        }
    }

    #[test]
    fn a_table_of_outages_and_what_their_incident_needs() {
        use IncidentStatus as S;
        use State::{MajorOutage as Major, Operational as Ok_, PartialOutage as Partial};
        let none = Looked::default();
        let lost_looked = Looked {
            lost_opening: true,
            human: false,
        };
        let human_looked = Looked {
            lost_opening: false,
            human: true,
        };
        let cases = [
            (Ok_, None, true, none, IncidentStep::Recovered),
            (
                Ok_,
                Some(incident(S::Open, Major)),
                true,
                none,
                IncidentStep::Resolve,
            ),
            (
                Ok_,
                Some(incident(S::Resolving, Major)),
                false,
                none,
                IncidentStep::Resolve,
            ),
            // An opening whose answer was lost is looked for first, whatever the state.
            (
                Ok_,
                Some(incident(S::Opening, Major)),
                true,
                none,
                IncidentStep::FindLost,
            ),
            (
                Major,
                Some(incident(S::Opening, Major)),
                false,
                none,
                IncidentStep::FindLost,
            ),
            // Not found: an opening never confirmed is not resolved (nothing on the page)...
            (
                Ok_,
                Some(incident(S::Opening, Major)),
                true,
                lost_looked,
                IncidentStep::Recovered,
            ),
            // ... and a failing one is opened under the same intent, no human's looked for.
            (
                Major,
                Some(incident(S::Opening, Major)),
                true,
                lost_looked,
                IncidentStep::Open,
            ),
            (Major, None, true, none, IncidentStep::LookForHuman),
            (Major, None, true, human_looked, IncidentStep::Open),
            (Major, None, false, none, IncidentStep::Open),
            (
                Major,
                Some(incident(S::Open, Major)),
                true,
                none,
                IncidentStep::Keep,
            ),
            (
                Partial,
                Some(incident(S::Open, Major)),
                true,
                none,
                IncidentStep::Update,
            ),
            (
                Partial,
                Some(incident(S::Resolving, Major)),
                true,
                none,
                IncidentStep::Update,
            ),
        ];
        for (state, open, respect, looked, want) in cases {
            assert_eq!(
                incident_step(state, open.as_ref(), respect, looked),
                want,
                "{state} with {:?}, respect_manual {respect}, {looked:?}",
                open.map(|i| (i.status, i.state))
            );
        }
    }
}
