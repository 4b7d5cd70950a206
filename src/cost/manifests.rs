//! Pod requests from the demo's Deployment manifests: the `web` container's CPU and memory
//! requests, read with k8s-openapi's types so the file means what the cluster reads.
//! Called by the cost command when no `--cpu-request`/`--memory-request` is given.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;

use super::CostError;
use super::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::results::summary::PodRequests;

/// The demo's container whose requests are priced.
pub const WEB_CONTAINER: &str = "web";

/// The requests a pod gets when neither flags nor manifests say: the original demo's
/// 100m CPU and 128Mi memory.
pub const DEFAULT_POD_REQUESTS: PodRequests = PodRequests {
    cpu_millis: 100,
    memory_bytes: 128 << 20,
};

/// Reads every `*.yaml`/`*.yml` file of `dir` (sorted by name) and returns the `web`
/// container's requests of the first Deployment that has one, with the file it came from.
/// A request the container leaves out takes [`DEFAULT_POD_REQUESTS`]'s value.
/// `Ok(None)`: no Deployment in `dir` has a `web` container.
pub fn pod_requests_from_manifests(
    dir: &Path,
) -> Result<Option<(PodRequests, std::path::PathBuf)>, CostError> {
    let read_err = |source| CostError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| CostError::Read {
            path: file.clone(),
            source,
        })?;
        if let Some(requests) = pod_requests_from_yaml(&text, &file.display().to_string())? {
            return Ok(Some((requests, file)));
        }
    }
    Ok(None)
}

/// The `web` container's requests in the first Deployment of a (multi-document) YAML text;
/// `origin` names the text in errors.
pub fn pod_requests_from_yaml(text: &str, origin: &str) -> Result<Option<PodRequests>, CostError> {
    let manifest_err = |message: String| CostError::Manifest {
        origin: origin.to_string(),
        message,
    };
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| manifest_err(e.to_string()))?;
    for doc in documents {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("Deployment") {
            continue;
        }
        let deployment: Deployment =
            serde_json::from_value(doc).map_err(|e| manifest_err(e.to_string()))?;
        let containers = deployment
            .spec
            .template
            .spec
            .map(|s| s.containers)
            .unwrap_or_default();
        let Some(web) = containers.into_iter().find(|c| c.name == WEB_CONTAINER) else {
            continue;
        };
        let requests = web.resources.and_then(|r| r.requests).unwrap_or_default();
        let cpu_millis = match requests.get("cpu") {
            Some(q) => parse_cpu_millis(&q.0)?,
            None => DEFAULT_POD_REQUESTS.cpu_millis,
        };
        let memory_bytes = match requests.get("memory") {
            Some(q) => parse_memory_bytes(&q.0)?,
            None => DEFAULT_POD_REQUESTS.memory_bytes,
        };
        return Ok(Some(PodRequests {
            cpu_millis,
            memory_bytes,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-blue
  labels: {app: web, version: blue}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web, version: blue}
  template:
    metadata:
      labels: {app: web, version: blue}
    spec:
      containers:
        - name: sidecar
          image: busybox
          resources:
            requests: {cpu: "1", memory: 1Gi}
        - name: web
          image: resil-demo:latest
          resources:
            requests:
              cpu: 250m
              memory: 256Mi
"#;

    #[test]
    fn the_web_containers_requests_are_read_from_a_deployment() {
        let requests = pod_requests_from_yaml(SAMPLE, "sample").unwrap().unwrap();
        assert_eq!(requests.cpu_millis, 250);
        assert_eq!(requests.memory_bytes, 256 << 20);
    }

    #[test]
    fn a_missing_request_takes_the_default_and_no_deployment_reads_as_none() {
        let no_memory = SAMPLE.replace("              memory: 256Mi\n", "");
        let requests = pod_requests_from_yaml(&no_memory, "s").unwrap().unwrap();
        assert_eq!(requests.cpu_millis, 250);
        assert_eq!(requests.memory_bytes, DEFAULT_POD_REQUESTS.memory_bytes);
        let service_only = SAMPLE.split("---").next().unwrap();
        assert_eq!(pod_requests_from_yaml(service_only, "s").unwrap(), None);
    }

    #[test]
    fn manifests_are_read_from_a_directory_and_bad_yaml_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deployment-blue.yaml"), SAMPLE).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let (requests, file) = pod_requests_from_manifests(dir.path()).unwrap().unwrap();
        assert_eq!(requests.cpu_millis, 250);
        assert!(file.ends_with("deployment-blue.yaml"));

        std::fs::write(
            dir.path().join("a-broken.yaml"),
            "kind: Deployment\nspec: [",
        )
        .unwrap();
        let err = pod_requests_from_manifests(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-broken.yaml"), "{err}");
    }
}
