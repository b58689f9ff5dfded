//! Fault injection: make chosen calls fail or slow down.

use serde::{Deserialize, Serialize};

/// The model routes a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `.../embeddings`.
    Embeddings,
    /// `.../chat/completions`, streamed or not.
    Chat,
}

impl Route {
    /// The name used in stats and fault JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Embeddings => "embeddings",
            Self::Chat => "chat",
        }
    }
}

/// One fault, as JSON for `POST /_fake/faults`:
///
/// ```json
/// {"route":"embeddings","status":429,"retry_after_ms":50,"times":2}
/// {"status":500,"after_calls":3}
/// {"delay_ms":2000}
/// ```
///
/// * `route`: `embeddings` or `chat`; absent = both.
/// * `status`: answer this status with an Azure-shaped error body
///   (`code`/`message` override its fields).
/// * `retry_after_ms` / `retry_after_s`: send `retry-after-ms` /
///   `Retry-After` (only the ones given).
/// * `delay_ms`: wait this long before answering (the fault's status, or
///   the normal answer when there is none).
/// * `after_calls`: let this many matching calls through first (counted
///   from when the fault is added).
/// * `times`: apply to this many calls, then stop (absent = forever).
///
/// A fault needs a `status` or a `delay_ms`. Faults are checked in the
/// order added, after routing, authentication and the deployment lookup;
/// every matching fault counts the call, the first applicable one acts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Which route; `None` = every model route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Status to answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `retry-after-ms` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// `Retry-After` header value (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Delay before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Matching calls let through before the fault acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_calls: Option<u32>,
    /// Calls the fault acts on; `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// `error.code` of the body (default depends on the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error.message` of the body (default depends on the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Fault {
    /// Answer `status` (on every route, forever, until narrowed).
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Wait `ms` before answering normally.
    pub fn delay(ms: u64) -> Self {
        Self {
            delay_ms: Some(ms),
            ..Self::default()
        }
    }

    /// Only on `route`.
    #[must_use]
    pub fn on(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    /// Send `retry-after-ms`.
    #[must_use]
    pub fn retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// Send `Retry-After` (seconds).
    #[must_use]
    pub fn retry_after_s(mut self, s: u64) -> Self {
        self.retry_after_s = Some(s);
        self
    }

    /// Also wait `ms` before answering.
    #[must_use]
    pub fn with_delay(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// Let `n` matching calls through first.
    #[must_use]
    pub fn after_calls(mut self, n: u32) -> Self {
        self.after_calls = Some(n);
        self
    }

    /// Act on `n` calls only.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Check that the fault does something.
    pub fn validate(&self) -> Result<(), String> {
        if self.status.is_none() && self.delay_ms.is_none() {
            return Err("a fault needs \"status\" or \"delay_ms\"".into());
        }
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err(format!("status {status} is not an HTTP status"));
        }
        Ok(())
    }
}

/// What to do with one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    /// Delay first.
    pub delay_ms: u64,
    /// Then answer this fault instead of the normal answer.
    pub fail: Option<Fault>,
}

#[derive(Debug)]
struct Active {
    fault: Fault,
    seen: u32,
    applied: u32,
}

/// The installed faults.
#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Active>,
}

impl Faults {
    /// Add a fault (validated by the caller).
    pub fn add(&mut self, fault: Fault) {
        self.active.push(Active {
            fault,
            seen: 0,
            applied: 0,
        });
    }

    /// Remove every fault.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// The faults, as added.
    pub fn list(&self) -> Vec<Fault> {
        self.active.iter().map(|a| a.fault.clone()).collect()
    }

    /// Count a call on `route` and decide what happens to it: `None` when
    /// no fault acts.
    pub fn on_call(&mut self, route: Route) -> Option<Action> {
        let mut chosen = None;
        for active in &mut self.active {
            if active.fault.route.is_some_and(|r| r != route) {
                continue;
            }
            active.seen += 1;
            let waited = active.seen > active.fault.after_calls.unwrap_or(0);
            let left = active.fault.times.is_none_or(|t| active.applied < t);
            if chosen.is_none() && waited && left {
                active.applied += 1;
                chosen = Some(Action {
                    delay_ms: active.fault.delay_ms.unwrap_or(0),
                    fail: active.fault.status.is_some().then(|| active.fault.clone()),
                });
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_json_shapes() {
        let f: Fault = serde_json::from_str(
            r#"{"route":"embeddings","status":429,"retry_after_ms":50,"times":2}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Fault::status(429)
                .on(Route::Embeddings)
                .retry_after_ms(50)
                .times(2)
        );
        let f: Fault = serde_json::from_str(r#"{"status":500,"after_calls":3}"#).unwrap();
        assert_eq!(f, Fault::status(500).after_calls(3));
        let f: Fault = serde_json::from_str(r#"{"delay_ms":2000}"#).unwrap();
        assert_eq!(f, Fault::delay(2000));
        assert!(serde_json::from_str::<Fault>(r#"{"stauts":500}"#).is_err());
        assert!(Fault::default().validate().is_err());
        assert!(Fault::status(1000).validate().is_err());
    }

    #[test]
    fn applies_a_fault_the_given_number_of_times_on_its_route_only() {
        let mut faults = Faults::default();
        faults.add(Fault::status(429).on(Route::Embeddings).times(2));
        assert!(faults.on_call(Route::Chat).is_none());
        assert!(faults.on_call(Route::Embeddings).is_some());
        assert!(faults.on_call(Route::Embeddings).is_some());
        assert!(faults.on_call(Route::Embeddings).is_none());
    }

    #[test]
    fn lets_calls_through_before_acting_after_calls() {
        let mut faults = Faults::default();
        faults.add(Fault::status(500).after_calls(2));
        let acted: Vec<bool> = (0..4)
            .map(|_| faults.on_call(Route::Chat).is_some())
            .collect();
        assert_eq!(acted, [false, false, true, true]);
    }

    #[test]
    fn the_first_applicable_fault_acts_and_all_matching_ones_count() {
        let mut faults = Faults::default();
        faults.add(Fault::status(503).times(1));
        faults.add(Fault::status(500).after_calls(1));
        let first = faults.on_call(Route::Embeddings).unwrap();
        assert_eq!(first.fail.unwrap().status, Some(503));
        let second = faults.on_call(Route::Embeddings).unwrap();
        assert_eq!(second.fail.unwrap().status, Some(500));
    }

    #[test]
    fn a_delay_only_fault_delays_without_failing() {
        let mut faults = Faults::default();
        faults.add(Fault::delay(25));
        assert_eq!(
            faults.on_call(Route::Chat),
            Some(Action {
                delay_ms: 25,
                fail: None
            })
        );
    }
}
