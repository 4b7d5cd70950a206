//! The dashboard's picture of the room: which colour the Service selects, ready/total pods
//! per colour, the last two minutes of load, the markers and the figures. One task owns a
//! [`Board`] and feeds it [`Input`]s (the watcher's updates, timeline events, reports
//! rebuilt from the results directory); [`Board::frame`] turns it into the JSON the page
//! draws. No I/O here, and the clock is passed in.
//!
//! Figures, SLO verdicts and the markers of faults, failovers and scale-ups come from the
//! report model (`crate::report`), so the page and `resil report -o json` of the same
//! directory agree; the watcher's updates only add what the report does not hold yet.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Color;
use crate::report::model::Report;
use crate::results::timeline::{Event, EventKind};
use crate::watch::Update;

use super::pods::{Change, NodeSeen, PodSeen};

/// How much load history the charts show.
pub const WINDOW_MS: i64 = 120_000;
/// How long a deleted pod's tile stays on the page (red, `deleted`), so the room sees it
/// die before its replacement appears.
pub const GONE_SHOWN_MS: i64 = 5_000;

/// What the board is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// The watcher's view of the cluster.
    Watch(Update),
    /// One event of the run's timeline.
    Event(Event),
    /// A pod or node changed.
    Pods(Change),
    /// The report of the results directory as it stands; `complete`: the run has ended.
    Report { report: Box<Report>, complete: bool },
}

/// One colour's tile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tile {
    pub color: String,
    pub ready: u32,
    pub total: u32,
}

/// One second of load per colour, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The second's start, ms since the epoch.
    pub at_ms: i64,
    /// Requests and errors per served-by colour in that second.
    pub requests: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// All responses' latency in that second.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Per served-by colour (empty for a timeline written without it).
    pub latency: BTreeMap<String, Latency>,
}

/// The median and 99th percentile of one second's responses, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A vertical line on the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    pub at_ms: i64,
    /// `fault`, `failover`, `failback`, `scale`, `rollout` (a step) or `rollback`.
    pub kind: String,
    pub label: String,
    /// Why, in words (shown on hover).
    pub reason: String,
}

/// One node's pods, for the tiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeTiles {
    /// `None`: pods not bound to a node yet.
    pub node: Option<String>,
    pub zone: Option<String>,
    /// The node's Ready condition (true when the node is not known).
    pub ready: bool,
    pub pods: Vec<PodTile>,
}

/// One pod's tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodTile {
    pub name: String,
    pub color: Option<String>,
    /// `ready`, `not ready` or `deleted`.
    pub state: &'static str,
}

/// A pod as the board holds it: its last state, and when it was deleted.
#[derive(Debug, Clone)]
struct PodEntry {
    seen: PodSeen,
    gone_at: Option<DateTime<Utc>>,
}

/// What the page receives, many times a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    /// The board's clock (ms since the epoch): now live, the played-back time in a replay.
    pub now_ms: i64,
    pub selected: Option<String>,
    pub tiles: Vec<Tile>,
    pub points: Vec<Point>,
    pub markers: Vec<Marker>,
    /// Pod tiles by node, the nodes sorted by zone then name (empty without a cluster).
    pub nodes: Vec<NodeTiles>,
    /// The report as far as it is known (figures and SLO verdicts), when a results
    /// directory is followed.
    pub report: Option<Report>,
    /// The run has ended: the verdict in `report` is final.
    pub complete: bool,
    /// A replay, not a live run.
    pub replay: bool,
}

/// The dashboard's state.
#[derive(Debug, Clone, Default)]
pub struct Board {
    selected: Option<Color>,
    tiles: BTreeMap<Color, Tile>,
    points: VecDeque<Point>,
    /// The demo's pods by name, deleted ones for [`GONE_SHOWN_MS`].
    pods: BTreeMap<String, PodEntry>,
    nodes: BTreeMap<String, NodeSeen>,
    /// Markers the report does not hold (the watcher's failovers, live).
    live_markers: Vec<Marker>,
    /// The last decision's rule, the reason for the next failover marker.
    last_reason: Option<String>,
    report: Option<Report>,
    complete: bool,
    replay: bool,
}

impl Board {
    /// An empty board; `replay` marks the frames as a replay's.
    pub fn new(replay: bool) -> Board {
        let mut board = Board {
            replay,
            ..Board::default()
        };
        for color in [Color::Blue, Color::Green] {
            board.tiles.insert(
                color,
                Tile {
                    color: color.as_str().to_string(),
                    ..Tile::default()
                },
            );
        }
        board
    }

    /// Takes in one input.
    pub fn apply(&mut self, input: Input) {
        match input {
            Input::Watch(update) => self.apply_update(update),
            Input::Event(event) => self.apply_event(event),
            Input::Pods(change) => self.apply_change(change),
            Input::Report { report, complete } => {
                self.report = Some(*report);
                self.complete = complete;
            }
        }
    }

    fn apply_update(&mut self, update: Update) {
        match update {
            Update::Snapshot(s) => {
                self.selected = s.selected;
                for ((color, ready), (_, desired)) in s.ready.into_iter().zip(s.desired) {
                    let tile = self.tiles.entry(color).or_default();
                    tile.ready = ready;
                    tile.total = desired.max(ready);
                }
            }
            Update::Decision { rule, action } => {
                self.last_reason = Some(format!("{rule}: {action}"));
            }
            Update::Failover(f) => {
                self.live_markers.push(Marker {
                    at_ms: f.completed_at.timestamp_millis(),
                    kind: f.direction.clone(),
                    label: format!(
                        "{} {} → {} in {} ms",
                        f.direction, f.from, f.to, f.duration_ms
                    ),
                    reason: self.last_reason.take().unwrap_or_default(),
                });
            }
            Update::Warning(_) => {}
        }
    }

    fn apply_change(&mut self, change: Change) {
        let entry = |seen| PodEntry {
            seen,
            gone_at: None,
        };
        match change {
            Change::Pod(seen) => {
                self.pods.insert(seen.name.clone(), entry(seen));
            }
            Change::PodGone { name, at } => {
                let cutoff = at - chrono::Duration::milliseconds(GONE_SHOWN_MS);
                self.pods
                    .retain(|_, p| p.gone_at.is_none_or(|gone| gone >= cutoff));
                if let Some(pod) = self.pods.get_mut(&name) {
                    pod.gone_at = Some(at);
                    pod.seen.ready = false;
                }
            }
            Change::Pods(all) => {
                self.pods = all
                    .into_iter()
                    .map(|p| (p.name.clone(), entry(p)))
                    .collect();
            }
            Change::Node(node) => {
                self.nodes.insert(node.name.clone(), node);
            }
            Change::NodeGone(name) => {
                self.nodes.remove(&name);
            }
            Change::Nodes(all) => {
                self.nodes = all.into_iter().map(|n| (n.name.clone(), n)).collect();
            }
        }
    }

    /// The pods shown at `now`, by node; nodes in zone order, then by name, unbound pods
    /// last.
    fn node_tiles(&self, now: DateTime<Utc>) -> Vec<NodeTiles> {
        let mut by_node: BTreeMap<Option<&str>, Vec<PodTile>> = BTreeMap::new();
        for node in self.nodes.keys() {
            by_node.insert(Some(node.as_str()), Vec::new());
        }
        let shown_since = now - chrono::Duration::milliseconds(GONE_SHOWN_MS);
        for pod in self.pods.values() {
            let state = match pod.gone_at {
                Some(gone) if gone < shown_since => continue,
                Some(_) => "deleted",
                None if pod.seen.ready => "ready",
                None => "not ready",
            };
            by_node
                .entry(pod.seen.node.as_deref())
                .or_default()
                .push(PodTile {
                    name: pod.seen.name.clone(),
                    color: pod.seen.color.clone(),
                    state,
                });
        }
        let mut tiles: Vec<NodeTiles> = by_node
            .into_iter()
            .map(|(node, pods)| {
                let known = node.and_then(|n| self.nodes.get(n));
                NodeTiles {
                    node: node.map(str::to_string),
                    zone: known.and_then(|n| n.zone.clone()),
                    ready: known.is_none_or(|n| n.ready),
                    pods,
                }
            })
            .collect();
        // Zones first in order, nodes without a zone after them, unbound pods last.
        tiles.sort_by(|a, b| {
            let key = |t: &NodeTiles| (t.node.is_none(), t.zone.is_none(), t.zone.clone());
            key(a).cmp(&key(b)).then_with(|| a.node.cmp(&b.node))
        });
        tiles.retain(|t| t.node.is_some() || !t.pods.is_empty());
        tiles
    }

    fn apply_event(&mut self, event: Event) {
        let at_ms = event.ts.timestamp_millis();
        match event.kind {
            EventKind::LoadBucket {
                requests: _,
                errors: _,
                p50_us,
                p99_us,
                by_color,
                latency_by_color,
                ..
            } => {
                let point = Point {
                    at_ms,
                    requests: by_color
                        .iter()
                        .map(|(c, s)| (c.clone(), s.requests))
                        .collect(),
                    errors: by_color
                        .iter()
                        .map(|(c, s)| (c.clone(), s.errors))
                        .collect(),
                    p50_ms: p50_us as f64 / 1000.0,
                    p99_ms: p99_us as f64 / 1000.0,
                    latency: latency_by_color
                        .iter()
                        .map(|(c, l)| {
                            let latency = Latency {
                                p50_ms: l.p50_us as f64 / 1000.0,
                                p99_ms: l.p99_us as f64 / 1000.0,
                            };
                            (c.clone(), latency)
                        })
                        .collect(),
                };
                self.points.push_back(point);
                while self
                    .points
                    .front()
                    .is_some_and(|p| p.at_ms < at_ms - WINDOW_MS)
                {
                    self.points.pop_front();
                }
            }
            EventKind::SelectorSwitched { to, .. } => {
                self.selected = parse_color(&to).or(self.selected);
            }
            EventKind::DeploymentReplicas {
                color,
                desired,
                ready,
                ..
            } => {
                if let Some(color) = color.as_deref().and_then(parse_color) {
                    let tile = self.tiles.entry(color).or_default();
                    tile.ready = u32::try_from(ready).unwrap_or(0);
                    tile.total = u32::try_from(desired).unwrap_or(0).max(tile.ready);
                }
            }
            _ => {}
        }
    }

    /// The frame at `now`: load points of the last two minutes, and the markers and
    /// figures known by then.
    pub fn frame(&self, now: DateTime<Utc>) -> Frame {
        let now_ms = now.timestamp_millis();
        let mut markers: Vec<Marker> = self
            .report
            .as_ref()
            .map(markers_of)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.at_ms <= now_ms)
            .collect();
        for live in &self.live_markers {
            let known = markers
                .iter()
                .any(|m| m.kind == live.kind && (m.at_ms - live.at_ms).abs() < 1_000);
            if !known {
                markers.push(live.clone());
            }
        }
        markers.sort_by_key(|m| m.at_ms);
        Frame {
            now_ms,
            selected: self.selected.map(|c| c.as_str().to_string()),
            tiles: self.tiles.values().cloned().collect(),
            points: self
                .points
                .iter()
                .filter(|p| p.at_ms > now_ms - WINDOW_MS && p.at_ms <= now_ms)
                .cloned()
                .collect(),
            markers,
            nodes: self.node_tiles(now),
            report: self.report.clone(),
            complete: self.complete,
            replay: self.replay,
        }
    }
}

fn parse_color(text: &str) -> Option<Color> {
    match text {
        "blue" => Some(Color::Blue),
        "green" => Some(Color::Green),
        _ => None,
    }
}

/// The markers a report holds: every fault, failover or fail-back, scale-up, rollout step
/// and rollback, each with the reason the report gives for it.
pub fn markers_of(report: &Report) -> Vec<Marker> {
    let mut markers = Vec::new();
    for c in &report.chaos {
        markers.push(Marker {
            at_ms: c.at.timestamp_millis(),
            kind: "fault".to_string(),
            label: c.action.clone(),
            reason: c.targets.join(", "),
        });
    }
    for f in &report.failovers {
        // The decision that started it: the last one of the watcher at or before its end.
        let reason = report
            .decisions
            .iter()
            .rfind(|d| d.controller == "watch" && d.at <= f.completed_at)
            .map(|d| format!("{}: {}", d.rule, d.action))
            .unwrap_or_default();
        markers.push(Marker {
            at_ms: f.completed_at.timestamp_millis(),
            kind: f.direction.clone(),
            label: format!(
                "{} {} → {} in {} ms",
                f.direction, f.from, f.to, f.control_plane_ms
            ),
            reason,
        });
    }
    for s in &report.scaling {
        markers.push(Marker {
            at_ms: s.desired_at.timestamp_millis(),
            kind: "scale".to_string(),
            label: format!("{} {} → {}", s.color, s.from_replicas, s.to_replicas),
            reason: match s.latency_ms {
                Some(ms) => format!("HPA scale-up, ready in {ms} ms"),
                None => "HPA scale-up, not ready by the end".to_string(),
            },
        });
    }
    for r in &report.rollouts {
        for step in &r.steps {
            markers.push(Marker {
                at_ms: step.at.timestamp_millis(),
                kind: "rollout".to_string(),
                label: format!("{} {} at {}%", r.deployment, step.step, step.weight_percent),
                reason: step.detail.clone(),
            });
        }
        if let Some(rb) = &r.rollback {
            let took = match rb.breach_to_done_ms {
                Some(ms) => format!("done {ms} ms after the breach"),
                None => "not done by the end".to_string(),
            };
            markers.push(Marker {
                at_ms: rb.started_at.timestamp_millis(),
                kind: "rollback".to_string(),
                label: format!("rollback {}, {took}", r.deployment),
                reason: format!("interval {}: {}", rb.interval, rb.reason),
            });
        }
    }
    markers.sort_by_key(|m| m.at_ms);
    markers
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;
