//! An in-memory status page, so the flusher's decisions can be tested in milliseconds with an
//! injected clock, no server and no sleeping.
//!
//! Invariants:
//! - It keeps what the flusher relies on a page for, as the API contracts describe it
//!   (docs/status-page-apis.md): components found by name or id, one state each, incidents with
//!   a name and a text, maintenance in progress, and a read-back of a component's state.
//! - It fails exactly as a test scripts it: each call takes the next failure queued for its
//!   operation, and a failure can be one the page carried out all the same (an answer lost on
//!   the way back), which is what makes a write's outcome unknown.
//! - Every call is recorded in order, so a test asserts what was sent, not how long it took.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use statusrelay_core::State;

use crate::{
    Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance, ReadBack,
};

/// The operations a failure can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    SetState,
    OpenIncident,
    OpenIncidents,
    UpdateIncident,
    ResolveIncident,
}

/// How a scripted call fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An HTTP error status, with a Retry-After when given; nothing is applied.
    Http(u16, Option<Duration>),
    /// No answer; with `applied`, the page carried the request out all the same.
    Timeout { applied: bool },
}

impl Failure {
    fn error(&self) -> BackendError {
        match self {
            Failure::Http(status, retry_after) => BackendError::Http {
                status: *status,
                message: format!("scripted HTTP {status}"),
                retry_after: *retry_after,
            },
            Failure::Timeout { .. } => BackendError::Transport("timed out (scripted)".into()),
        }
    }

    fn applied(&self) -> bool {
        matches!(self, Failure::Timeout { applied: true })
    }
}

/// An incident on the in-memory page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryIncident {
    pub id: String,
    pub component_id: String,
    pub name: String,
    pub text: String,
    pub resolved: bool,
}

/// Everything the page holds; tests read and change it through [`PageHandle`].
#[derive(Debug, Default)]
pub struct PageState {
    /// (id, name, state) per component.
    pub components: Vec<(String, String, State)>,
    pub incidents: Vec<MemoryIncident>,
    pub maintenance: Vec<PageMaintenance>,
    /// Every call, in order: `set db cluster major_outage`, `open incident #1`, ...
    pub calls: Vec<String>,
    failures: VecDeque<(Op, Failure)>,
}

impl PageState {
    fn name_of(&self, id: &str) -> String {
        self.components
            .iter()
            .find(|c| c.0 == id)
            .map(|c| c.1.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// The next failure queued for `op`, if any (failures for other operations stay queued).
    fn failure(&mut self, op: Op) -> Option<Failure> {
        let i = self.failures.iter().position(|(o, _)| *o == op)?;
        self.failures.remove(i).map(|(_, f)| f)
    }
}

/// The test's side of the page.
#[derive(Debug, Clone, Default)]
pub struct PageHandle(Arc<Mutex<PageState>>);

impl PageHandle {
    pub fn state(&self) -> MutexGuard<'_, PageState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state the page shows for the component named `name`.
    pub fn shows(&self, name: &str) -> Option<State> {
        self.state()
            .components
            .iter()
            .find(|c| c.1 == name)
            .map(|c| c.2)
    }

    /// Make the next call of `op` fail so.
    pub fn fail_next(&self, op: Op, failure: Failure) {
        self.state().failures.push_back((op, failure));
    }

    /// The calls so far that set a state: (component name, state).
    pub fn sets(&self) -> Vec<String> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.starts_with("set "))
            .cloned()
            .collect()
    }

    /// Open an incident as a person would (no statusrelay marker).
    pub fn human_incident(&self, component_id: &str, name: &str) -> String {
        let mut s = self.state();
        let id = (s.incidents.len() + 1).to_string();
        s.incidents.push(MemoryIncident {
            id: id.clone(),
            component_id: component_id.to_string(),
            name: name.to_string(),
            text: "We are looking into it.".into(),
            resolved: false,
        });
        id
    }

    /// Unresolved incidents.
    pub fn open(&self) -> Vec<MemoryIncident> {
        self.state()
            .incidents
            .iter()
            .filter(|i| !i.resolved)
            .cloned()
            .collect()
    }
}

/// The page as the flusher sees it: a [`Backend`].
pub struct MemoryPage(PageHandle);

impl MemoryPage {
    /// A page with these (id, name) components, all operational.
    pub fn new(components: &[(&str, &str)]) -> (MemoryPage, PageHandle) {
        let h = PageHandle::default();
        h.state().components = components
            .iter()
            .map(|(id, name)| (id.to_string(), name.to_string(), State::Operational))
            .collect();
        (MemoryPage(h.clone()), h)
    }

    /// Another view of a page a test already holds (one per flusher run).
    pub fn from_handle(h: PageHandle) -> MemoryPage {
        MemoryPage(h)
    }

    /// Run a call: take its scripted failure, apply it unless it failed before reaching the
    /// page, and record it.
    fn call<T>(
        &self,
        op: Op,
        what: String,
        apply: impl FnOnce(&mut PageState) -> T,
    ) -> Result<T, BackendError> {
        let mut s = self.0.state();
        let failure = s.failure(op);
        let applied = failure.as_ref().is_none_or(Failure::applied);
        s.calls.push(match &failure {
            None => what,
            Some(f) => format!("{what} -> {f:?}"),
        });
        let out = applied.then(|| apply(&mut s));
        match (failure, out) {
            (Some(f), _) => Err(f.error()),
            (None, Some(out)) => Ok(out),
            (None, None) => unreachable!("applied when nothing failed"),
        }
    }
}

impl Backend for MemoryPage {
    fn identity(&self) -> String {
        "memory page".into()
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = &component.id {
            return Ok(id.clone());
        }
        let s = self.0.state();
        let ids = s
            .components
            .iter()
            .filter(|c| c.1 == component.name)
            .map(|c| c.0.clone())
            .collect();
        crate::unique_id(&component.name, ids)
    }

    fn set_state(
        &mut self,
        remote_id: &str,
        _component: &ComponentRef,
        state: State,
        _message: Option<&str>,
    ) -> Result<State, BackendError> {
        let name = self.0.state().name_of(remote_id);
        let id = remote_id.to_string();
        self.call(
            Op::SetState,
            format!("set {name} {state}"),
            move |s| match s.components.iter_mut().find(|c| c.0 == id) {
                Some(c) => {
                    c.2 = state;
                    Ok(state)
                }
                None => Err(BackendError::Http {
                    status: 404,
                    message: format!("no component {id}"),
                    retry_after: None,
                }),
            },
        )?
    }

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        components
            .iter()
            .map(|c| CheckLine {
                ok: self.resolve(c).is_ok(),
                what: format!("component {:?}", c.name),
            })
            .collect()
    }

    fn read_back(&mut self, remote_id: &str, state: State) -> Result<ReadBack, BackendError> {
        let s = self.0.state();
        let shows = s.components.iter().find(|c| c.0 == remote_id).map(|c| c.2);
        Ok(match shows {
            Some(x) if x == state => ReadBack::Shows,
            Some(x) => ReadBack::Differs(x.to_string()),
            None => ReadBack::Differs("no such component".into()),
        })
    }

    fn supports_incidents(&self) -> bool {
        true
    }

    fn open_incident(
        &mut self,
        remote_id: &str,
        _state: State,
        name: &str,
        message: &str,
        _notify: bool,
    ) -> Result<String, BackendError> {
        let (id, name, text) = (remote_id.to_string(), name.to_string(), message.to_string());
        self.call(
            Op::OpenIncident,
            format!("open incident {name:?}"),
            move |s| {
                let n = (s.incidents.len() + 1).to_string();
                s.incidents.push(MemoryIncident {
                    id: n.clone(),
                    component_id: id,
                    name,
                    text,
                    resolved: false,
                });
                n
            },
        )
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        let id = remote_id.to_string();
        self.call(Op::OpenIncidents, "list incidents".into(), move |s| {
            s.incidents
                .iter()
                .rev()
                .filter(|i| !i.resolved && i.component_id == id)
                .map(|i| PageIncident {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    text: i.text.clone(),
                })
                .collect()
        })
    }

    fn update_incident(
        &mut self,
        incident: &str,
        _remote_id: &str,
        state: State,
        _message: &str,
    ) -> Result<(), BackendError> {
        self.call(
            Op::UpdateIncident,
            format!("update incident #{incident} {state}"),
            |_| (),
        )
    }

    fn resolve_incident(
        &mut self,
        incident: &str,
        _remote_id: &str,
        _message: &str,
        _notify: bool,
    ) -> Result<(), BackendError> {
        let id = incident.to_string();
        self.call(
            Op::ResolveIncident,
            format!("resolve incident #{incident}"),
            move |s| {
                if let Some(i) = s.incidents.iter_mut().find(|i| i.id == id) {
                    i.resolved = true;
                }
            },
        )
    }

    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        Ok(self.0.state().maintenance.clone())
    }
}
