//! The chaos engine: injects one fault at a time — journaled first, then acted, then
//! recorded (timeline event and Kubernetes Event) — and reverts it. Shared by the chaos
//! commands and the scenario runner; never prints.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::execute::{ExecuteError, MANAGER, Scope, Undone};
use super::journal::{Entry, Journal, Undo};
use super::nodes::{Drained, Power};
use super::plan::{Faults, ProxyFault, Selection};
use crate::cluster::events::{self, Involved, Severity};
use crate::domain::Color;
use crate::results::RunDir;
use crate::results::timeline::{Event, EventKind};

/// Injects and reverts faults in one cluster context.
#[derive(Clone)]
pub struct Injector {
    pub scope: Scope,
    /// The kubeconfig context (journaled, so a revert goes back to the same cluster).
    pub context: String,
    pub journal: Journal,
    /// Results directory to write timeline events into.
    pub out: Option<RunDir>,
}

impl Injector {
    /// A new journal entry for an action about to happen.
    pub fn entry(&self, action: &str, targets: Vec<String>, detail: String, undo: Undo) -> Entry {
        let now = crate::results::now_ms();
        Entry {
            id: format!("{action}-{}", uuid::Uuid::new_v4().simple()),
            action: action.to_string(),
            context: self.context.clone(),
            namespace: self.scope.namespace.clone(),
            targets,
            detail,
            injected_at: now,
            revert_at: None,
            undo,
            reverted_at: None,
        }
    }

    /// Journals, acts, records. When the action fails half-way, what it did is reverted.
    pub async fn inject<F>(
        &self,
        mut entry: Entry,
        duration: Option<Duration>,
        act: F,
    ) -> anyhow::Result<Entry>
    where
        F: AsyncFnOnce(&Scope) -> Result<(), ExecuteError>,
    {
        entry.revert_at = duration.and_then(|d| {
            chrono::Duration::from_std(d)
                .ok()
                .map(|d| entry.injected_at + d)
        });
        // A fault with something to undo claims its targets: a second one stacked on
        // them would be undone by the first one's revert, or would restore its value.
        if entry.undo == Undo::Nothing {
            self.journal.record(&entry)?;
        } else {
            self.journal.claim(&entry)?;
        }
        // A control-plane outage refuses the event: it is posted just before the switch.
        let event_first = entry.undo == Undo::ControlPlane;
        if event_first {
            self.event(&entry, Severity::Warning, "ChaosInjected", &entry.detail)
                .await;
        }
        if let Err(e) = act(&self.scope).await {
            let err = anyhow::Error::new(e).context(format!("injecting {}", entry.action));
            // Undo what the action did before it failed; the entry closes only once that
            // worked, so the journal never forgets a fault still in place.
            return match self.scope.revert(&entry).await {
                Ok(()) => {
                    self.journal.close(&entry.id, crate::results::now_ms())?;
                    Err(err)
                }
                Err(undo) => Err(err.context(format!(
                    "undoing the partial {} failed too ({undo}); it stays open in the \
                     journal {} — run `resil chaos revert`",
                    entry.action,
                    self.journal.path().display()
                ))),
            };
        }
        self.timeline(EventKind::ChaosInjected {
            id: entry.id.clone(),
            action: entry.action.clone(),
            targets: entry.targets.clone(),
            detail: entry.detail.clone(),
        })?;
        if !event_first {
            self.event(&entry, Severity::Warning, "ChaosInjected", &entry.detail)
                .await;
        }
        Ok(entry)
    }

    /// Reverts and closes an entry.
    pub async fn revert(&self, entry: &Entry) -> anyhow::Result<()> {
        self.restore(entry).await.map(|_| ())
    }

    /// [`Injector::revert`], answering the targets that had disappeared or been changed
    /// by someone else since (nothing of this fault was left to undo there; the entry is
    /// closed all the same). When the revert fails the entry stays open for `resil chaos
    /// revert`.
    pub async fn restore(&self, entry: &Entry) -> anyhow::Result<Undone> {
        let undone = self.scope.undo(entry).await.with_context(|| {
            format!(
                "reverting {} ({}); it stays open in the journal {} — fix the cause and run \
                 `resil chaos revert`",
                entry.action,
                entry.id,
                self.journal.path().display()
            )
        })?;
        self.journal.close(&entry.id, crate::results::now_ms())?;
        self.timeline(EventKind::ChaosReverted {
            id: entry.id.clone(),
            action: entry.action.clone(),
            targets: entry.targets.clone(),
            detail: entry.detail.clone(),
        })?;
        self.event(
            entry,
            Severity::Normal,
            "ChaosReverted",
            &format!("reverted: {}", entry.detail),
        )
        .await;
        Ok(undone)
    }

    fn timeline(&self, kind: EventKind) -> anyhow::Result<()> {
        if let Some(dir) = &self.out {
            dir.timeline()?.append(&Event::now("chaos", kind))?;
        }
        Ok(())
    }

    async fn event(&self, entry: &Entry, severity: Severity, reason: &str, message: &str) {
        for target in &entry.targets {
            let (kind, name) = match target.split_once('/') {
                Some(("deployment", n)) => ("Deployment", n),
                Some(("service", n)) => ("Service", n),
                Some(("hpa", n)) => ("HorizontalPodAutoscaler", n),
                Some(("node", n)) => ("Node", n),
                Some(("namespace", n)) => ("Namespace", n),
                Some((_, n)) => ("Pod", n),
                None => ("Pod", target.as_str()),
            };
            let api_version = match kind {
                "Deployment" => "apps/v1",
                "HorizontalPodAutoscaler" => "autoscaling/v2",
                _ => "v1",
            };
            let involved = Involved {
                api_version,
                kind,
                name,
            };
            events::emit(
                &self.scope.client,
                &self.scope.namespace,
                involved,
                severity,
                reason,
                message,
                MANAGER,
            )
            .await;
        }
    }

    /// Chooses pods now; an empty choice is an error that says what matched.
    pub async fn choose(&self, selection: &Selection, seed: u64) -> anyhow::Result<Vec<String>> {
        let candidates = self.scope.candidates(&selection.selector).await?;
        let chosen = selection.choose(&candidates, Utc::now(), seed);
        if chosen.is_empty() {
            anyhow::bail!(
                "no pod to target: {} pod(s) match `{}` in {}, none eligible (terminating or \
                 younger than --min-age). Is the demo deployed (`resil status`)?",
                candidates.len(),
                selection.selector,
                self.scope.namespace
            );
        }
        Ok(chosen)
    }

    /// Deletes `pods` (grace 0 with `force`). Nothing to revert: their Deployment
    /// replaces them, which is the point.
    pub async fn kill_pods(&self, pods: &[String], force: bool) -> anyhow::Result<Entry> {
        let how = if force {
            "force-delete (grace 0)"
        } else {
            "delete (graceful)"
        };
        let entry = self.entry(
            "kill-pods",
            pods.iter().map(|p| format!("pod/{p}")).collect(),
            format!("{how} {}", pods.join(", ")),
            Undo::Nothing,
        );
        let entry = self
            .inject(entry, None, async |scope: &Scope| {
                for pod in pods {
                    scope.kill(pod, force).await?;
                }
                Ok(())
            })
            .await?;
        self.journal.close(&entry.id, crate::results::now_ms())?;
        Ok(entry)
    }

    /// Scales `color` to zero; the entry restores the replica count it had.
    pub async fn outage(&self, color: Color, duration: Duration) -> anyhow::Result<Entry> {
        let deployment = format!("web-{}", color.as_str());
        let targets = vec![format!("deployment/{deployment}")];
        // An open outage is the likeliest reason for 0 replicas: name it first.
        self.journal
            .check_free(&self.context, &self.scope.namespace, &targets)?;
        let replicas = self.scope.replicas(&deployment).await?;
        if replicas == 0 {
            anyhow::bail!(
                "deployment/{deployment} already has 0 replicas: nothing to take down (is \
                 another outage open? `resil chaos revert` restores it)"
            );
        }
        let entry = self.entry(
            "outage",
            targets,
            format!("{deployment} scaled {replicas} → 0"),
            Undo::Replicas {
                deployment: deployment.clone(),
                replicas,
                injected: Some(0),
            },
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            scope.scale(&deployment, 0).await
        })
        .await
    }

    /// Sets the demo app's fault switches on `pods` until `duration` has passed — the app
    /// also reverts by itself at that deadline, should nobody come back.
    pub async fn pod_faults(
        &self,
        action: &str,
        pods: &[String],
        faults: Faults,
        duration: Duration,
    ) -> anyhow::Result<Entry> {
        let faults = Faults {
            until: Some(Utc::now() + chrono::Duration::from_std(duration)?),
            ..faults
        };
        let entry = self.entry(
            action,
            pods.iter().map(|p| format!("pod/{p}")).collect(),
            format!("{faults} on {}", pods.join(", ")),
            Undo::PodFaults {
                pods: pods.to_vec(),
                faults: faults.clone(),
            },
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            for pod in pods {
                scope.set_faults(pod, &faults).await?;
            }
            Ok(())
        })
        .await
    }

    /// Sets the lab Service proxy's fault on `service`.
    pub async fn proxy_fault(
        &self,
        service: &str,
        fault: &ProxyFault,
        duration: Duration,
    ) -> anyhow::Result<Entry> {
        let targets = vec![format!("service/{service}")];
        // Checked before `previous` is read: with another fault open, the value read
        // would be that fault's, and this one's revert would put it back.
        self.journal
            .check_free(&self.context, &self.scope.namespace, &targets)?;
        let previous = self.scope.proxy_fault(service).await?;
        let value = fault.annotation();
        let entry = self.entry(
            "latency",
            targets,
            value.clone(),
            Undo::ProxyFault {
                service: service.to_string(),
                previous,
                injected: Some(value.clone()),
            },
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            scope.set_proxy_fault(service, Some(&value)).await
        })
        .await
    }

    /// Takes the lab's API down for `duration` (pods keep serving); it comes back by
    /// itself then, and the entry removes the switch.
    pub async fn control_plane_outage(&self, duration: Duration) -> anyhow::Result<Entry> {
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let entry = self.entry(
            "region-outage",
            vec!["namespace/kube-system".to_string()],
            format!(
                "control plane down until {} (the API answers 503; pods keep serving)",
                until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            Undo::ControlPlane,
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            scope.set_api_outage(Some(until)).await
        })
        .await
    }

    /// Scales every Deployment of `replicas` to zero until `duration` has passed (a region
    /// outage where nodes cannot be powered off); the entry restores each count.
    pub async fn workloads_outage(
        &self,
        replicas: &std::collections::BTreeMap<String, i32>,
        duration: Duration,
    ) -> anyhow::Result<Entry> {
        let targets: Vec<String> = replicas.keys().map(|d| format!("deployment/{d}")).collect();
        self.journal
            .check_free(&self.context, &self.scope.namespace, &targets)?;
        let detail = replicas
            .iter()
            .map(|(d, n)| format!("{d} {n} → 0"))
            .collect::<Vec<_>>()
            .join(", ");
        let entry = self.entry(
            "region-outage",
            targets,
            format!("scaled {detail}"),
            Undo::Workloads {
                replicas: replicas.clone(),
            },
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            for deployment in replicas.keys() {
                scope.scale(deployment, 0).await?;
            }
            Ok(())
        })
        .await
    }

    /// Powers `nodes` off (the lab's stop switch, or the provider hook) until `duration`
    /// has passed; `action` is `node-failure` or `zone-outage`.
    pub async fn node_failure(
        &self,
        action: &str,
        nodes: &[String],
        power: &Power,
        duration: Duration,
    ) -> anyhow::Result<Entry> {
        let (how, undo) = match power {
            Power::Lab => (
                "lab stop switch: heartbeats stop, pod processes killed".to_string(),
                Undo::NodesStopped {
                    nodes: nodes.to_vec(),
                },
            ),
            Power::Hook(hook) => (
                format!("hook `{hook}`"),
                Undo::NodesHook {
                    hook: hook.clone(),
                    nodes: nodes.to_vec(),
                },
            ),
        };
        let entry = self.entry(
            action,
            nodes.iter().map(|n| format!("node/{n}")).collect(),
            format!("power off {} ({how})", nodes.join(", ")),
            undo,
        );
        self.inject(entry, Some(duration), async |scope: &Scope| {
            for node in nodes {
                match power {
                    Power::Lab => scope.set_stopped(node, true).await?,
                    Power::Hook(hook) => scope.run_hook(hook, "stop", node).await?,
                }
            }
            Ok(())
        })
        .await
    }

    /// Cordons `node` and evicts its pods through the Eviction API, retrying refusals by
    /// PodDisruptionBudgets until `timeout`. The entry uncordons; what the drain did is
    /// recorded on the timeline as a note.
    pub async fn drain(
        &self,
        node: &str,
        timeout: Duration,
        duration: Option<Duration>,
    ) -> anyhow::Result<(Entry, Drained)> {
        let entry = self.entry(
            "drain",
            vec![format!("node/{node}")],
            format!("cordon {node} and evict its pods"),
            Undo::Cordon {
                node: node.to_string(),
            },
        );
        let entry = self
            .inject(entry, duration, async |scope: &Scope| {
                scope.cordon(node, true).await
            })
            .await?;
        let drained = self.scope.drain(node, timeout).await?;
        self.timeline(EventKind::Note {
            message: format!("drain {node}: {}", drained.summary()),
        })?;
        Ok((entry, drained))
    }
}
