//! Several labs on one machine: the unnamed lab (state in the state root, context
//! `resil-lab`) and named ones (`lab up --name region-a`: state in `<root>/labs/region-a`,
//! context, cluster and user `resil-region-a`). Each named lab is a whole lab of its own —
//! its own `lab.lock`, pid file, API port, credentials and store (see [`super::daemon`]) —
//! so the daemon machinery is the same for all; this module only says where each one
//! lives, which labs exist, and which node ports each one allocates from.
//!
//! Node ports: one loopback serves every lab's NodePort listeners, so two labs must not
//! hand out the same port. The unnamed lab keeps upstream's whole default range
//! (30000-32767, allocating from the bottom, as before); each named lab claims a slice of
//! [`SLOT_SIZE`] ports from [`NAMED_BASE`] up, the lowest slice no other named lab holds,
//! recorded in its `lab.node-ports` (`30500-30749`) so that it keeps it across restarts.
//! The claim is made under `<root>/labs/node-ports.lock`, so two labs starting at once
//! never take the same slice. A Service that names its own node port may still pick one
//! another lab serves: the proxy then cannot bind it and says so on the Service (annotation
//! and `NodePortBindFailed` Event, see [`super::proxy`]), and `lab status` lists it. This
//! mirrors a cluster started with `--service-node-port-range` for allocation only; ports
//! named in a Service stay valid anywhere in 30000-32767, as on a default cluster.

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::daemon::StateDir;
use super::kubeconfig::LAB_NAME;
use super::store::DEFAULT_NODE_PORTS;

/// The first node port of the named labs' slices; below it the unnamed lab allocates.
pub const NAMED_BASE: u16 = 30500;
/// Node ports per named lab.
pub const SLOT_SIZE: u16 = 250;
/// The file in a named lab's state directory that records its slice.
const NODE_PORTS_FILE: &str = "lab.node-ports";
/// How long a lab waits for another one to finish claiming its slice.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Why a lab name was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid lab name {name:?}: {reason}; a lab name is a DNS-1123 label (at most 63 \
     lowercase letters, digits and '-', starting and ending with a letter or digit), \
     e.g. `resil lab up --name region-a`"
)]
pub struct NameError {
    /// The name given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks `name` as a DNS-1123 label (upstream's `IsDNS1123Label`), the shape Kubernetes
/// asks of context-like names, and refuses `lab` (its context would be the unnamed lab's).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let refuse = |reason| {
        Err(NameError {
            name: name.to_string(),
            reason,
        })
    };
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 63 {
        return refuse("it is longer than 63 characters");
    }
    if !name.chars().all(|c| ok_char(c) || c == '-') {
        return refuse("it holds a character other than a-z, 0-9 and '-'");
    }
    if !name.starts_with(ok_char) || !name.ends_with(ok_char) {
        return refuse("it must start and end with a letter or digit");
    }
    if format!("resil-{name}") == LAB_NAME {
        return refuse("`lab` is taken by the unnamed lab's context `resil-lab`");
    }
    Ok(())
}

/// One lab: where it keeps its state and what its context is called.
#[derive(Debug, Clone)]
pub struct Target {
    /// `None` for the unnamed lab.
    pub name: Option<String>,
    /// The state root (the unnamed lab's state directory).
    pub root: PathBuf,
    /// This lab's own state directory.
    pub state: StateDir,
}

impl Target {
    /// The lab `name` (validated) under the state root `root`, or the unnamed lab.
    pub fn new(root: &StateDir, name: Option<String>) -> anyhow::Result<Target> {
        let state = match &name {
            None => root.clone(),
            Some(n) => {
                validate_name(n)?;
                StateDir::resolve(Some(root.path().join("labs").join(n)))?
            }
        };
        Ok(Target {
            name,
            root: root.path().to_path_buf(),
            state,
        })
    }

    /// The kubeconfig context, cluster and user name: `resil-lab` or `resil-<name>`.
    pub fn context(&self) -> String {
        match &self.name {
            None => LAB_NAME.to_string(),
            Some(n) => format!("resil-{n}"),
        }
    }

    /// How messages call it: "the lab" or "the lab region-a".
    pub fn called(&self) -> String {
        match &self.name {
            None => "the lab".to_string(),
            Some(n) => format!("the lab {n}"),
        }
    }

    /// The `--name` flag that picks it (with a leading space), empty for the unnamed lab.
    pub fn flag(&self) -> String {
        match &self.name {
            None => String::new(),
            Some(n) => format!(" --name {n}"),
        }
    }

    /// Where Services of this lab get node ports: the whole default range for the unnamed
    /// lab; for a named one the slice it claimed before, else a new one (see the module
    /// doc). Call it while holding the lab's `lab.lock`.
    pub async fn claim_node_ports(&self) -> anyhow::Result<RangeInclusive<u16>> {
        if self.name.is_none() {
            return Ok(DEFAULT_NODE_PORTS);
        }
        if let Some(range) = read_slice(&self.state.file(NODE_PORTS_FILE)) {
            return Ok(range);
        }
        let labs = StateDir::resolve(Some(self.root.join("labs")))?;
        let Some(_claiming) = labs.lock_wait("node-ports.lock", CLAIM_WAIT).await? else {
            bail!(
                "another lab has been claiming its node ports for over {}s ({} is held)",
                CLAIM_WAIT.as_secs(),
                labs.file("node-ports.lock").display()
            );
        };
        let taken: Vec<RangeInclusive<u16>> = named(&self.root)
            .iter()
            .filter(|other| other.name != self.name)
            .filter_map(|other| read_slice(&other.state.file(NODE_PORTS_FILE)))
            .collect();
        let Some(range) = free_slice(&taken) else {
            bail!(
                "every node port slice for named labs is taken ({} labs under {}); remove \
                 the state directory of a named lab you no longer need",
                taken.len(),
                labs.path().display()
            );
        };
        let path = self.state.file(NODE_PORTS_FILE);
        let text = format!("{}-{}\n", range.start(), range.end());
        resil_common::atomic::write(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(range)
    }
}

/// The named labs that have a state directory under `root`, by name.
pub fn named(root: &Path) -> Vec<Target> {
    let Ok(entries) = fs::read_dir(root.join("labs")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let state = StateDir::resolve(Some(root.join("labs").join(&name))).ok()?;
            Some(Target {
                name: Some(name),
                root: root.to_path_buf(),
                state,
            })
        })
        .collect()
}

/// `lab.node-ports` as a range, if it holds one.
fn read_slice(path: &Path) -> Option<RangeInclusive<u16>> {
    let text = fs::read_to_string(path).ok()?;
    let (start, end) = text.trim().split_once('-')?;
    let (start, end): (u16, u16) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some(start..=end)
}

/// The lowest named-lab slice that overlaps none of `taken`.
pub fn free_slice(taken: &[RangeInclusive<u16>]) -> Option<RangeInclusive<u16>> {
    let last = *DEFAULT_NODE_PORTS.end();
    (0u16..)
        .map(|k| u32::from(NAMED_BASE) + u32::from(k) * u32::from(SLOT_SIZE))
        .take_while(|start| start + u32::from(SLOT_SIZE) - 1 <= u32::from(last))
        .filter_map(|start| {
            let start = u16::try_from(start).ok()?;
            Some(start..=start + (SLOT_SIZE - 1))
        })
        .find(|slice| {
            taken
                .iter()
                .all(|t| t.end() < slice.start() || t.start() > slice.end())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_1123_labels_and_not_the_unnamed_labs() {
        for good in ["region-a", "b", "eu1", "a-b-c", &"x".repeat(63)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Region-a",
            "region_a",
            "-a",
            "a-",
            "a.b",
            "lab",
            &"x".repeat(64),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("DNS-1123"), "{bad}: {err}");
            assert!(err.contains("--name region-a"), "{bad}: {err}");
        }
    }

    #[test]
    fn slices_are_disjoint_lowest_first_and_bounded_by_the_range() {
        let first = free_slice(&[]).unwrap();
        assert_eq!(first, 30500..=30749);
        let second = free_slice(std::slice::from_ref(&first)).unwrap();
        assert_eq!(second, 30750..=30999);
        assert_eq!(free_slice(std::slice::from_ref(&second)), Some(first));
        let mut all = Vec::new();
        while let Some(next) = free_slice(&all) {
            assert!(next.end() <= DEFAULT_NODE_PORTS.end());
            all.push(next);
        }
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn a_named_lab_lives_under_the_root_with_its_own_context() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let unnamed = Target::new(&root, None).unwrap();
        assert_eq!(unnamed.context(), "resil-lab");
        assert_eq!(unnamed.state.path(), tmp.path());
        let a = Target::new(&root, Some("region-a".into())).unwrap();
        assert_eq!(a.context(), "resil-region-a");
        assert_eq!(a.state.path(), tmp.path().join("labs/region-a"));
        assert!(Target::new(&root, Some("A".into())).is_err());
        a.state.create().unwrap();
        fs::create_dir_all(tmp.path().join("labs/Not_A_Lab")).unwrap();
        let found: Vec<_> = named(tmp.path()).into_iter().map(|t| t.name).collect();
        assert_eq!(found, [Some("region-a".to_string())]);
    }

    #[tokio::test]
    async fn named_labs_claim_distinct_slices_and_keep_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let a = Target::new(&root, Some("a".into())).unwrap();
        let b = Target::new(&root, Some("b".into())).unwrap();
        for t in [&a, &b] {
            t.state.create().unwrap();
        }
        let ra = a.claim_node_ports().await.unwrap();
        let rb = b.claim_node_ports().await.unwrap();
        assert!(
            ra.end() < rb.start() || rb.end() < ra.start(),
            "{ra:?} {rb:?}"
        );
        assert_eq!(
            a.claim_node_ports().await.unwrap(),
            ra,
            "kept across starts"
        );
        let unnamed = Target::new(&root, None).unwrap();
        assert_eq!(unnamed.claim_node_ports().await.unwrap(), 30000..=32767);
    }
}
