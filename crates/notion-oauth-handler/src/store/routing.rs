//! Which targets hear which events. A store is given this once, when it is made, and queues one
//! delivery per target that an event's type names.

use crate::domain::EventType;

/// The targets that want each event type: the configured webhooks and command hook, and an
/// embedding app's hooks.
#[derive(Debug, Clone)]
pub struct Routing {
    targets: Vec<(String, Vec<EventType>)>,
}

impl Routing {
    /// No targets: history is kept, nothing is queued.
    pub fn none() -> Self {
        Self { targets: Vec::new() }
    }

    /// `self` with the target `name` hearing `events`.
    #[must_use]
    pub fn with_target(mut self, name: impl Into<String>, events: &[EventType]) -> Self {
        self.targets.push((name.into(), events.to_vec()));
        self
    }

    /// The names of the targets that want `event`.
    pub fn targets_for(&self, event: EventType) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter(move |(_, events)| events.contains(&event))
            .map(|(name, _)| name.as_str())
    }

    /// Whether any target wants `event`.
    pub fn wants(&self, event: EventType) -> bool {
        self.targets_for(event).next().is_some()
    }
}
