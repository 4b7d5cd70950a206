//! Leader election over a `coordination.k8s.io/v1` Lease in the demo's namespace, so two
//! watchers never fight over the Service selector: the one holding the Lease acts, the
//! others record and wait as standbys and take over when the holder stops renewing.
//!
//! The rules follow Kubernetes' own leader election (client-go `leaderelection`): a
//! candidate may take a Lease that is empty, its own, or whose record (holder and
//! renewTime) has not changed for a whole lease duration *as measured on the candidate's
//! own clock* since it last saw it change, so clock skew between machines does not matter;
//! every write carries the read's resourceVersion, so of two candidates racing for an
//! expired Lease exactly one wins (the other gets 409 Conflict); a holder that cannot
//! renew within its renew deadline stops acting; a holder that stops cleanly releases the
//! Lease (empty holder) so a standby takes over at once.
//!
//! [`Election`] is the pure, clock-injected rule; [`run`] is the loop that reads and
//! writes the Lease and publishes the [`Leadership`] the controller gates its actions on.
//! Never prints.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::error_chain;

/// How long a release may take when the watcher stops.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Lease and how this candidate uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The Lease's name (in the demo's namespace).
    pub lease: String,
    /// This watcher's name in `holderIdentity`.
    pub identity: String,
    /// How long a Lease nobody renews stays taken.
    pub duration: Duration,
    /// A holder that could not renew for this long stops acting (shorter than `duration`,
    /// so it stops before anyone else may start).
    pub renew_deadline: Duration,
    /// How often the Lease is renewed or re-read.
    pub retry: Duration,
}

impl ElectionConfig {
    /// The Lease `lease` held as `identity` for `duration`; renew deadline and retry period
    /// in Kubernetes' proportions (15 s / 10 s / 2 s).
    pub fn new(lease: &str, identity: &str, duration: Duration) -> ElectionConfig {
        let duration = duration.max(Duration::from_millis(300));
        ElectionConfig {
            lease: lease.to_string(),
            identity: identity.to_string(),
            duration,
            renew_deadline: duration * 2 / 3,
            retry: (duration / 7).clamp(Duration::from_millis(50), Duration::from_secs(2)),
        }
    }
}

/// `host/pid` (`host/pid-N` for the N-th watcher of one process): unique, and says where
/// the holder runs.
pub fn default_identity() -> String {
    static WATCHERS: AtomicU32 = AtomicU32::new(0);
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string());
    let pid = std::process::id();
    match WATCHERS.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}/{pid}"),
        n => format!("{host}/{pid}-{}", n + 1),
    }
}

/// Where this watcher stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// The first attempt has not answered yet.
    Pending,
    /// This watcher holds the Lease and acts.
    Leading,
    /// Another watcher holds the Lease; this one records and waits.
    Standby {
        /// The holder's identity.
        holder: String,
        /// How long the holder's renewals may stop before this watcher takes over.
        takes_over_after: Duration,
    },
    /// The Lease cannot be read or written (or a holder could not renew in time): nobody
    /// here acts until it can.
    Unreachable { reason: String },
}

impl Leadership {
    /// Whether this watcher may change the cluster.
    pub fn leading(&self) -> bool {
        matches!(self, Leadership::Leading)
    }

    /// Whether `other` is news worth reporting (a different phase or holder, not merely
    /// a different countdown).
    pub fn differs_from(&self, other: &Leadership) -> bool {
        match (self, other) {
            (Leadership::Standby { holder: a, .. }, Leadership::Standby { holder: b, .. }) => {
                a != b
            }
            (Leadership::Unreachable { .. }, Leadership::Unreachable { .. }) => false,
            (a, b) => std::mem::discriminant(a) != std::mem::discriminant(b),
        }
    }
}

/// What the candidate may do with the record it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write itself in (`takeover`: the holder changes, so acquireTime and the transition
    /// count move).
    Take { takeover: bool },
    /// Someone else holds it; `remaining` of its lease is left as this candidate sees it.
    Wait { holder: String, remaining: Duration },
}

/// The Lease record as last read, and since when (local clock) it has looked like that.
#[derive(Debug, Clone)]
struct Observed {
    holder: String,
    renew_time: Option<String>,
    seen_at: Instant,
}

/// The election rule, pure: see the module docs.
#[derive(Debug, Clone)]
pub struct Election {
    config: ElectionConfig,
    observed: Option<Observed>,
    last_renewed: Option<Instant>,
}

impl Election {
    /// A candidate that has seen nothing yet.
    pub fn new(config: ElectionConfig) -> Election {
        Election {
            config,
            observed: None,
            last_renewed: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// Judges a record read at `now`: `holder` (empty: free), its raw `renew_time`, and the
    /// lease duration it declares (the holder's, when set).
    pub fn judge(
        &mut self,
        holder: &str,
        renew_time: Option<&str>,
        duration: Option<Duration>,
        now: Instant,
    ) -> Verdict {
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew_time.as_deref() != renew_time);
        if changed {
            self.observed = Some(Observed {
                holder: holder.to_string(),
                renew_time: renew_time.map(str::to_string),
                seen_at: now,
            });
        }
        if holder.is_empty() || holder == self.config.identity {
            return Verdict::Take {
                takeover: holder != self.config.identity,
            };
        }
        let duration = duration.unwrap_or(self.config.duration);
        let seen_at = self.observed.as_ref().map_or(now, |o| o.seen_at);
        let unchanged_for = now.saturating_duration_since(seen_at);
        if unchanged_for >= duration {
            return Verdict::Take { takeover: true };
        }
        Verdict::Wait {
            holder: holder.to_string(),
            remaining: duration - unchanged_for,
        }
    }

    /// This candidate wrote itself in at `now`.
    pub fn renewed(&mut self, now: Instant) {
        self.last_renewed = Some(now);
        self.observed = None;
    }

    /// A holder whose last successful renewal is older than the renew deadline must stop
    /// acting (it may no longer be the holder anyone else sees).
    pub fn renewal_overdue(&self, now: Instant) -> bool {
        self.last_renewed
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.renew_deadline)
    }
}

/// Errors reading or writing the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server refused or did not answer.
    #[error("cannot read or write lease {name}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("no answer from the API server within {}", humantime::format_duration(Duration::from_millis(after.as_millis() as u64)))]
    TimedOut { after: Duration },
}

/// Runs the election until `shutdown`, publishing every change of standing on `standing`;
/// releases the Lease on the way out if it holds it.
pub async fn run(
    client: Client,
    namespace: String,
    config: ElectionConfig,
    standing: watch::Sender<Leadership>,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut election = Election::new(config);
    loop {
        let now = Instant::now();
        // Bounded, so a hung request cannot keep a holder acting past its renew deadline,
        // and abandoned at shutdown.
        let limit = election.config().renew_deadline;
        let outcome = tokio::select! {
            () = shutdown.cancelled() => break,
            r = tokio::time::timeout(limit, attempt(&api, &mut election, now)) => {
                r.unwrap_or_else(|_| Err(LeaseError::TimedOut { after: limit }))
            }
        };
        let next = match outcome {
            Ok(Verdict::Take { .. }) => {
                election.renewed(now);
                Leadership::Leading
            }
            Ok(Verdict::Wait { holder, remaining }) => Leadership::Standby {
                holder,
                takes_over_after: remaining,
            },
            Err(e) => {
                let leading = standing.borrow().leading();
                if leading && !election.renewal_overdue(now) {
                    // Still inside the renew deadline: keep acting, try again soon.
                    tracing::warn!("renewing the lease failed: {}", error_chain(&e));
                    Leadership::Leading
                } else {
                    Leadership::Unreachable {
                        reason: error_chain(&e),
                    }
                }
            }
        };
        standing.send_if_modified(|current| {
            let news = current.differs_from(&next);
            *current = next;
            news
        });
        tokio::select! {
            // The watcher is stopping.
            () = shutdown.cancelled() => break,
            // Renew (or look again) a retry period later.
            () = tokio::time::sleep(election.config().retry) => {}
        }
    }
    if standing.borrow().leading() {
        let _ = tokio::time::timeout(RELEASE_TIMEOUT, release(&api, election.config())).await;
        standing.send_replace(Leadership::Pending);
    }
}

/// One read-judge-write round (client-go's tryAcquireOrRenew).
async fn attempt(
    api: &Api<Lease>,
    election: &mut Election,
    now: Instant,
) -> Result<Verdict, LeaseError> {
    let config = election.config().clone();
    let failed = |source| LeaseError::Api {
        name: config.lease.clone(),
        source,
    };
    let Some(mut lease) = api.get_opt(&config.lease).await.map_err(failed)? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.lease.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(held_spec(&config, None, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Verdict::Take { takeover: true }),
            // Another candidate created it first: look again next round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Verdict::Wait {
                holder: "another watcher".to_string(),
                remaining: config.duration,
            }),
            Err(e) => Err(failed(e)),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let renew_time = spec.renew_time.as_ref().map(|t| t.0.to_string());
    let declared = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs);
    let verdict = election.judge(&holder, renew_time.as_deref(), declared, now);
    let Verdict::Take { takeover } = verdict else {
        return Ok(verdict);
    };
    let transitions =
        spec.lease_transitions.unwrap_or(0) + i32::from(takeover && !holder.is_empty());
    lease.spec = Some(held_spec(
        &config,
        (!takeover).then_some(&spec),
        transitions,
    ));
    let name = lease.name_any();
    // The read's resourceVersion travels with the write: a racing candidate gets 409.
    match api.replace(&name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Verdict::Take { takeover }),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Verdict::Wait {
            holder: if holder.is_empty() {
                "another watcher".to_string()
            } else {
                holder
            },
            remaining: config.duration,
        }),
        Err(e) => Err(failed(e)),
    }
}

/// The spec of a Lease held by `config.identity` from now, after `transitions` changes of
/// holder; `renewing` keeps the acquireTime of a renewal.
fn held_spec(config: &ElectionConfig, renewing: Option<&LeaseSpec>, transitions: i32) -> LeaseSpec {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(seconds(config.duration)),
        acquire_time: renewing
            .and_then(|s| s.acquire_time.clone())
            .or_else(|| Some(now.clone())),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Whole seconds, at least 1 (the field's unit).
fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// Gives the Lease up (empty holder) so a standby takes over without waiting.
async fn release(api: &Api<Lease>, config: &ElectionConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.lease).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    let name = lease.name_any();
    if let Err(e) = api.replace(&name, &PostParams::default(), &lease).await {
        tracing::warn!("releasing lease {name}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn election(me: &str) -> Election {
        Election::new(ElectionConfig::new(
            "resil-watch",
            me,
            Duration::from_secs(15),
        ))
    }

    #[test]
    fn the_defaults_keep_kubernetes_proportions() {
        let c = ElectionConfig::new("l", "me", Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry, Duration::from_secs(2));
    }

    #[test]
    fn a_free_or_own_lease_is_taken_at_once() {
        let mut e = election("a");
        let t = Instant::now();
        assert_eq!(e.judge("", None, None, t), Verdict::Take { takeover: true });
        assert_eq!(
            e.judge("a", Some("t1"), None, t),
            Verdict::Take { takeover: false }
        );
    }

    #[test]
    fn a_renewed_lease_of_another_holder_is_left_alone() {
        let mut e = election("b");
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(matches!(
            e.judge("a", Some("t1"), None, t0),
            Verdict::Wait { ref holder, remaining } if holder == "a" && remaining == s(15)
        ));
        // The holder renews every few seconds: the clock restarts each time.
        assert!(matches!(
            e.judge("a", Some("t2"), None, t0 + s(10)),
            Verdict::Wait { .. }
        ));
        assert!(matches!(
            e.judge("a", Some("t3"), None, t0 + s(20)),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn a_lease_unchanged_for_its_duration_on_our_clock_is_taken_over() {
        let mut e = election("b");
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // The holder's renewTime says nothing about our clock: only how long we saw it
        // unchanged counts.
        e.judge("a", Some("2000-01-01T00:00:00Z"), Some(s(4)), t0);
        assert!(matches!(
            e.judge("a", Some("2000-01-01T00:00:00Z"), Some(s(4)), t0 + s(3)),
            Verdict::Wait { remaining, .. } if remaining == s(1)
        ));
        assert_eq!(
            e.judge("a", Some("2000-01-01T00:00:00Z"), Some(s(4)), t0 + s(4)),
            Verdict::Take { takeover: true }
        );
    }

    #[test]
    fn a_holder_stops_acting_once_renewals_fail_past_the_deadline() {
        let mut e = election("a");
        let t0 = Instant::now();
        assert!(e.renewal_overdue(t0), "never renewed");
        e.renewed(t0);
        assert!(!e.renewal_overdue(t0 + Duration::from_secs(9)));
        assert!(e.renewal_overdue(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn only_a_new_phase_or_holder_is_news() {
        let standby = |h: &str, s| Leadership::Standby {
            holder: h.to_string(),
            takes_over_after: Duration::from_secs(s),
        };
        assert!(!standby("a", 3).differs_from(&standby("a", 9)));
        assert!(standby("a", 3).differs_from(&standby("b", 3)));
        assert!(Leadership::Pending.differs_from(&Leadership::Leading));
        assert!(!Leadership::Leading.differs_from(&Leadership::Leading));
    }
}
