//! The `resil-lab` entries in the user's kubeconfig: find the file (`--kubeconfig`, else the
//! first entry of `KUBECONFIG`, else `~/.kube/config`), add or replace the cluster, user
//! and context named `resil-lab` (`resil-<name>` for a named lab) and make it current
//! (`lab up`), or remove them and unset current-context when it pointed there (`lab down`)
//! — what kind does for its clusters.
//!
//! The file is handled as a generic YAML value, so fields resil does not know (other
//! contexts, `preferences`, `extensions`, exec plugins) survive a rewrite. A file that does
//! not parse is never overwritten: the error names it and the user decides. Writes are
//! atomic with mode 0600, as kubectl writes them. Called by the `lab` command layer; it
//! prints nothing.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The name of the lab's cluster, user and context.
pub const LAB_NAME: &str = "resil-lab";

/// Why the kubeconfig could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Neither `--kubeconfig`, `KUBECONFIG` nor `HOME` says where the file is.
    #[error("cannot tell where the kubeconfig is: set KUBECONFIG or HOME, or pass --kubeconfig")]
    NoPath,
    /// The file exists but could not be read.
    #[error("cannot read the kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not YAML; it was left as it is.
    #[error(
        "the kubeconfig {} is not valid YAML, so it was left untouched; fix it or move it away and retry",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        // Boxed: the parser's error is large and this is the cold path.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The file is YAML but not shaped like a kubeconfig; it was left as it is.
    #[error(
        "the kubeconfig {} does not look like a kubeconfig ({reason}), so it was left untouched; fix it or move it away and retry",
        path.display()
    )]
    NotAKubeconfig { path: PathBuf, reason: String },
    /// The updated file could not be written.
    #[error("cannot write the kubeconfig {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The lab's own kubeconfig lacks an entry `lab up` needs to copy.
    #[error("the lab's kubeconfig has no {0} entry")]
    LabEntryMissing(&'static str),
    /// The lab's own kubeconfig is not YAML.
    #[error("the lab's kubeconfig is not valid YAML")]
    LabCorrupt(#[source] Box<serde_saphyr::Error>),
    /// The merged document could not be rendered as YAML.
    #[error("cannot render the kubeconfig as YAML")]
    Render(#[source] Box<serde_saphyr::SerializeError>),
}

/// The user's kubeconfig path: `flag`, else the first entry of `KUBECONFIG`, else
/// `~/.kube/config` — the file kubectl writes to when it changes contexts.
pub fn user_path(flag: Option<&Path>) -> Result<PathBuf, KubeconfigError> {
    resolve_path(
        flag,
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME").filter(|h| !h.is_empty()),
    )
}

fn resolve_path(
    flag: Option<&Path>,
    kubeconfig_env: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, KubeconfigError> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    if let Some(list) = kubeconfig_env
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    home.map(|h| PathBuf::from(h).join(".kube").join("config"))
        .ok_or(KubeconfigError::NoPath)
}

/// The three `resil-lab` entries (the inner `cluster`, `user` and `context` objects) taken
/// from the lab's own kubeconfig, ready to merge into the user's under `name` (`resil-lab`,
/// or `resil-<name>` for a named lab: see [`LabEntries::named`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LabEntries {
    name: String,
    cluster: Value,
    user: Value,
    context: Value,
}

impl LabEntries {
    /// Reads the entries from the lab's kubeconfig YAML (the one `Lab` writes to its state
    /// directory). The entries named `resil-lab` win; otherwise the first of each kind.
    pub fn from_lab_kubeconfig(yaml: &str) -> Result<LabEntries, KubeconfigError> {
        let doc: Value =
            serde_saphyr::from_str(yaml).map_err(|e| KubeconfigError::LabCorrupt(Box::new(e)))?;
        let pick = |list: &str, field: &'static str| -> Result<Value, KubeconfigError> {
            let items = doc.get(list).and_then(Value::as_array);
            let items = items.map(Vec::as_slice).unwrap_or_default();
            let entry = items
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(LAB_NAME))
                .or_else(|| items.first());
            entry
                .and_then(|e| e.get(field))
                .cloned()
                .ok_or(KubeconfigError::LabEntryMissing(field))
        };
        let mut context = pick("contexts", "context")?;
        // Whatever the lab named them, the merged context must point at our own entries.
        if let Some(ctx) = context.as_object_mut() {
            ctx.insert("cluster".into(), LAB_NAME.into());
            ctx.insert("user".into(), LAB_NAME.into());
        }
        Ok(LabEntries {
            name: LAB_NAME.to_string(),
            cluster: pick("clusters", "cluster")?,
            user: pick("users", "user")?,
            context,
        })
    }

    /// Entries for a lab at `server` (`https://127.0.0.1:PORT`) trusting `ca_pem` and
    /// authenticating with the bearer `token`.
    pub fn new(server: &str, ca_pem: &str, token: &str) -> LabEntries {
        LabEntries {
            name: LAB_NAME.to_string(),
            cluster: json!({
                "server": server,
                "certificate-authority-data":
                    base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()),
            }),
            user: json!({ "token": token.trim() }),
            context: json!({ "cluster": LAB_NAME, "user": LAB_NAME }),
        }
    }

    /// The same entries under `name`: the cluster, user and context all take it.
    pub fn named(mut self, name: &str) -> LabEntries {
        if let Some(ctx) = self.context.as_object_mut() {
            ctx.insert("cluster".into(), name.into());
            ctx.insert("user".into(), name.into());
        }
        self.name = name.to_string();
        self
    }

    /// The same entries pointing at `server` (the address the running lab announced, which
    /// wins over whatever an older kubeconfig file says).
    pub fn with_server(mut self, server: &str) -> LabEntries {
        if let Some(cluster) = self.cluster.as_object_mut() {
            cluster.insert("server".into(), server.into());
        }
        self
    }

    /// A whole kubeconfig holding only these entries, theirs the current context.
    pub fn to_kubeconfig_yaml(&self) -> Result<String, KubeconfigError> {
        let mut doc = empty_config();
        upsert(&mut doc, self);
        serde_saphyr::to_string(&doc).map_err(|e| KubeconfigError::Render(Box::new(e)))
    }
}

/// What [`remove`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// At least one `resil-lab` entry was there and is gone.
    pub removed: bool,
    /// current-context was `resil-lab` and is now unset.
    pub unset_current: bool,
}

/// Adds or replaces the entries' cluster, user and context (`resil-lab`, or the name
/// [`LabEntries::named`] gave them) in the kubeconfig at `path` (created if missing) and
/// makes their context the current one.
pub fn merge(path: &Path, entries: &LabEntries) -> Result<(), KubeconfigError> {
    let path = follow_symlink(path);
    let mut doc = load(&path)?.unwrap_or_else(empty_config);
    upsert(&mut doc, entries);
    store(&path, &doc)
}

/// Removes the cluster, user and context called `name` (`resil-lab`, `resil-region-a`)
/// from the kubeconfig at `path` and unsets current-context if it was `name`. A missing
/// file, or one without the entries, is left as it is.
pub fn remove(path: &Path, name: &str) -> Result<Removal, KubeconfigError> {
    let path = follow_symlink(path);
    let Some(mut doc) = load(&path)? else {
        return Ok(Removal {
            removed: false,
            unset_current: false,
        });
    };
    let removal = remove_entries(&mut doc, name);
    if removal.removed || removal.unset_current {
        store(&path, &doc)?;
    }
    Ok(removal)
}

/// A kubeconfig with no entries, shaped the way kubectl writes a fresh one.
fn empty_config() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
        "preferences": {},
    })
}

/// Writing through a symlinked `~/.kube/config` must update the file it points to, not
/// replace the link with a regular file.
fn follow_symlink(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// The parsed document, `None` when the file does not exist or is empty; checks the shape
/// so that nothing is written over a file resil does not understand.
fn load(path: &Path) -> Result<Option<Value>, KubeconfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KubeconfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let doc: Value = serde_saphyr::from_str(&text).map_err(|source| KubeconfigError::Corrupt {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let not_a_kubeconfig = |reason: String| KubeconfigError::NotAKubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    let map = match &doc {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(not_a_kubeconfig("the top level is not a mapping".into())),
    };
    for list in ["clusters", "users", "contexts"] {
        match map.get(list) {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(_) => return Err(not_a_kubeconfig(format!("`{list}` is not a list"))),
        }
    }
    match map.get("current-context") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(not_a_kubeconfig("`current-context` is not a string".into()));
        }
    }
    Ok(Some(doc))
}

fn store(path: &Path, doc: &Value) -> Result<(), KubeconfigError> {
    let yaml = serde_saphyr::to_string(doc).map_err(|e| KubeconfigError::Render(Box::new(e)))?;
    resil_common::atomic::write_with_mode(path, yaml.as_bytes(), Some(0o600)).map_err(|source| {
        KubeconfigError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The named list (`clusters`, ...) as a mutable vector, created when absent or null.
/// `load` has already refused documents where it is something else.
fn list_mut<'a>(map: &'a mut Map<String, Value>, list: &str) -> Option<&'a mut Vec<Value>> {
    let slot = map.entry(list).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

fn is_lab_entry(entry: &Value, name: &str) -> bool {
    entry.get("name").and_then(Value::as_str) == Some(name)
}

fn upsert(doc: &mut Value, entries: &LabEntries) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    for (list, field, value) in [
        ("clusters", "cluster", &entries.cluster),
        ("users", "user", &entries.user),
        ("contexts", "context", &entries.context),
    ] {
        let new = json!({ "name": entries.name, field: value });
        if let Some(items) = list_mut(map, list) {
            match items.iter_mut().find(|e| is_lab_entry(e, &entries.name)) {
                Some(existing) => *existing = new,
                None => items.push(new),
            }
        }
    }
    map.insert("current-context".into(), entries.name.clone().into());
}

fn remove_entries(doc: &mut Value, name: &str) -> Removal {
    let mut removal = Removal {
        removed: false,
        unset_current: false,
    };
    let Some(map) = doc.as_object_mut() else {
        return removal;
    };
    for list in ["clusters", "users", "contexts"] {
        if let Some(Value::Array(items)) = map.get_mut(list) {
            let before = items.len();
            items.retain(|e| !is_lab_entry(e, name));
            removal.removed |= items.len() != before;
        }
    }
    if map.get("current-context").and_then(Value::as_str) == Some(name) {
        map.insert("current-context".into(), "".into());
        removal.unset_current = true;
    }
    removal
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: kind-resil
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: QUJD
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        custom: 'true'
users:
- name: kind-resil
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: get-token
      args: ['--profile', '0600']
contexts:
- name: kind-resil
  context:
    cluster: kind-resil
    user: kind-resil
    namespace: demo
current-context: kind-resil
preferences:
  colors: true
";

    fn entries() -> LabEntries {
        LabEntries::new(
            "https://127.0.0.1:41234",
            "-----BEGIN CERTIFICATE-----\nX\n",
            "tok",
        )
    }

    fn read(path: &Path) -> Value {
        serde_saphyr::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    fn names(doc: &Value, list: &str) -> Vec<String> {
        doc[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn merge_adds_the_lab_keeps_other_contexts_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, OTHER).unwrap();
        merge(&path, &entries()).unwrap();
        let doc = read(&path);
        assert_eq!(names(&doc, "contexts"), ["kind-resil", "resil-lab"]);
        assert_eq!(names(&doc, "clusters"), ["kind-resil", "resil-lab"]);
        assert_eq!(doc["current-context"], "resil-lab");
        assert_eq!(doc["preferences"]["colors"], true);
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "demo");
        // Strings that look like other scalars must stay strings.
        assert_eq!(
            doc["clusters"][0]["cluster"]["extensions"][0]["extension"]["custom"],
            "true"
        );
        assert_eq!(doc["users"][0]["user"]["exec"]["args"][1], "0600");
        assert_eq!(
            doc["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:41234"
        );
        assert_eq!(doc["users"][1]["user"]["token"], "tok");
    }

    #[test]
    fn merge_twice_replaces_the_lab_entries_instead_of_duplicating_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, OTHER).unwrap();
        merge(&path, &entries()).unwrap();
        let moved = LabEntries::new("https://127.0.0.1:50000", "CA", "tok2");
        merge(&path, &moved).unwrap();
        let doc = read(&path);
        assert_eq!(names(&doc, "users"), ["kind-resil", "resil-lab"]);
        assert_eq!(
            doc["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:50000"
        );
        assert_eq!(doc["users"][1]["user"]["token"], "tok2");
    }

    #[test]
    fn merge_creates_a_missing_file_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kube/config");
        merge(&path, &entries()).unwrap();
        let doc = read(&path);
        assert_eq!(names(&doc, "contexts"), ["resil-lab"]);
        assert_eq!(doc["kind"], "Config");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn merge_accepts_null_lists_as_kubectl_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "apiVersion: v1\nkind: Config\nclusters: null\nusers: null\ncontexts: null\ncurrent-context: \"\"\n").unwrap();
        merge(&path, &entries()).unwrap();
        assert_eq!(names(&read(&path), "users"), ["resil-lab"]);
    }

    #[test]
    fn remove_drops_only_the_lab_and_unsets_its_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, OTHER).unwrap();
        merge(&path, &entries()).unwrap();
        let removal = remove(&path, LAB_NAME).unwrap();
        assert_eq!(
            removal,
            Removal {
                removed: true,
                unset_current: true
            }
        );
        let doc = read(&path);
        assert_eq!(names(&doc, "contexts"), ["kind-resil"]);
        assert_eq!(names(&doc, "clusters"), ["kind-resil"]);
        assert_eq!(names(&doc, "users"), ["kind-resil"]);
        assert_eq!(doc["current-context"], "");
        assert_eq!(doc["preferences"]["colors"], true);
    }

    #[test]
    fn remove_keeps_another_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, OTHER).unwrap();
        merge(&path, &entries()).unwrap();
        let mut doc = read(&path);
        doc["current-context"] = "kind-resil".into();
        fs::write(&path, serde_saphyr::to_string(&doc).unwrap()).unwrap();
        let removal = remove(&path, LAB_NAME).unwrap();
        assert!(removal.removed && !removal.unset_current);
        assert_eq!(read(&path)["current-context"], "kind-resil");
    }

    #[test]
    fn remove_leaves_a_file_without_the_lab_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, OTHER).unwrap();
        let removal = remove(&path, LAB_NAME).unwrap();
        assert!(!removal.removed && !removal.unset_current);
        assert_eq!(fs::read_to_string(&path).unwrap(), OTHER);
        assert!(
            !remove(&dir.path().join("absent"), LAB_NAME)
                .unwrap()
                .removed
        );
        assert!(!dir.path().join("absent").exists());
    }

    #[test]
    fn named_labs_get_entries_of_their_own_beside_the_unnamed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        merge(&path, &entries()).unwrap();
        merge(&path, &entries().named("resil-region-a")).unwrap();
        merge(&path, &entries().named("resil-region-b")).unwrap();
        let doc = read(&path);
        let all = ["resil-lab", "resil-region-a", "resil-region-b"];
        assert_eq!(names(&doc, "contexts"), all);
        assert_eq!(names(&doc, "users"), all);
        assert_eq!(doc["contexts"][1]["context"]["cluster"], "resil-region-a");
        assert_eq!(doc["contexts"][1]["context"]["user"], "resil-region-a");
        assert_eq!(doc["current-context"], "resil-region-b");
        let removal = remove(&path, "resil-region-b").unwrap();
        assert!(removal.removed && removal.unset_current);
        let doc = read(&path);
        assert_eq!(names(&doc, "clusters"), ["resil-lab", "resil-region-a"]);
        let yaml = entries().named("resil-x").to_kubeconfig_yaml().unwrap();
        let doc: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(doc["current-context"], "resil-x");
    }

    #[test]
    fn a_corrupt_kubeconfig_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let corrupt = "clusters: [unclosed\n  - : :\n";
        fs::write(&path, corrupt).unwrap();
        let err = merge(&path, &entries()).unwrap_err();
        assert!(matches!(err, KubeconfigError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(remove(&path, LAB_NAME).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), corrupt);

        fs::write(&path, "clusters: 3\n").unwrap();
        let err = merge(&path, &entries()).unwrap_err();
        assert!(
            matches!(err, KubeconfigError::NotAKubeconfig { .. }),
            "{err:?}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "clusters: 3\n");
    }

    #[cfg(unix)]
    #[test]
    fn merge_writes_through_a_symlinked_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-config");
        let link = dir.path().join("config");
        fs::write(&real, OTHER).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        merge(&link, &entries()).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(names(&read(&real), "contexts"), ["kind-resil", "resil-lab"]);
    }

    #[test]
    fn lab_entries_round_trip_through_a_lab_kubeconfig() {
        let yaml = entries().to_kubeconfig_yaml().unwrap();
        let parsed = LabEntries::from_lab_kubeconfig(&yaml).unwrap();
        assert_eq!(parsed, entries());
        let doc: Value = serde_saphyr::from_str(&yaml).unwrap();
        let ca = doc["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap();
        assert!(decoded.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(matches!(
            LabEntries::from_lab_kubeconfig("apiVersion: v1\n"),
            Err(KubeconfigError::LabEntryMissing(_))
        ));
    }

    #[test]
    fn path_is_the_flag_then_the_first_kubeconfig_entry_then_home() {
        let flag = Path::new("/flag/config");
        let env = Some(OsString::from("/a/config:/b/config"));
        let home = Some(OsString::from("/home/u"));
        assert_eq!(
            resolve_path(Some(flag), env.clone(), home.clone()).unwrap(),
            flag
        );
        assert_eq!(
            resolve_path(None, env, home.clone()).unwrap(),
            Path::new("/a/config")
        );
        assert_eq!(
            resolve_path(None, Some(OsString::from(":/b/config")), None).unwrap(),
            Path::new("/b/config")
        );
        assert_eq!(
            resolve_path(None, Some(OsString::new()), home).unwrap(),
            Path::new("/home/u/.kube/config")
        );
        assert!(matches!(
            resolve_path(None, None, None),
            Err(KubeconfigError::NoPath)
        ));
    }
}
