//! Which images the lab can run, and how it fails the others. The lab runs only the demo
//! image (as `resil demo-app`); any other image ends the way a real node reports an image
//! it cannot pull: `ErrImagePull` right after an attempt, then `ImagePullBackOff` while
//! waiting for the next one (back-off in `backoff.rs`). These are the data the kubelet
//! controller writes into `containerStatuses[].state.waiting` and into Events.

/// Whether `image` is the demo image: its repository name (the last path component,
/// without tag or digest) starts with one of `prefixes`; a prefix containing `/` is
/// matched against the whole reference instead (e.g. `ghcr.io/acme/resil`).
pub fn is_demo_image(image: &str, prefixes: &[String]) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let name = without_digest.rsplit('/').next().unwrap_or(without_digest);
    prefixes.iter().any(|prefix| {
        if prefix.contains('/') {
            image.starts_with(prefix.as_str())
                || normalized_reference(image).starts_with(prefix.as_str())
        } else {
            !prefix.is_empty() && name.starts_with(prefix.as_str())
        }
    })
}

/// The subcommands of the resil binary a container of the demo image may run through its
/// `command` (the image's entrypoint is `resil demo-app`).
pub const WORKER_SUBCOMMANDS: &[&str] = &["load-worker"];

/// What to run for a container of the demo image: `Ok(None)` for the image's entrypoint
/// (`resil demo-app`, the lab's own `--bind`/`--port`), `Ok(Some(args))` for a container
/// whose `command` is `resil <subcommand>` (or `/usr/local/bin/resil ...`) with one of
/// [`WORKER_SUBCOMMANDS`] — the arguments after `resil`, then the container's `args` — and
/// `Err` with the kubelet's message for any other command.
pub fn program_args(
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Result<Option<Vec<String>>, String> {
    let Some((program, rest)) = command.and_then(<[String]>::split_first) else {
        return Ok(None);
    };
    let runs_resil = program.rsplit('/').next() == Some("resil");
    let mut all: Vec<String> = rest.to_vec();
    all.extend(args.into_iter().flatten().cloned());
    match all.first().map(String::as_str) {
        Some("demo-app") if runs_resil => Ok(None),
        Some(sub) if runs_resil && WORKER_SUBCOMMANDS.contains(&sub) => Ok(Some(all)),
        _ => Err(format!(
            "failed to create containerd task: exec: {program:?}: the resil lab runs the demo \
             image's own entrypoint or `resil {}` only",
            WORKER_SUBCOMMANDS.join("|")
        )),
    }
}

/// The reference with registry and tag filled in the way container runtimes do:
/// `nginx` → `docker.io/library/nginx:latest`, `acme/web:1` → `docker.io/acme/web:1`.
pub fn normalized_reference(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or(&full);
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(digest) = digest {
        full.push('@');
        full.push_str(digest);
    }
    full
}

/// The image with a default `:latest` tag, as the kubelet names it in messages.
fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// A container's waiting state: `reason` and `message` as in `state.waiting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `ContainerCreating`.
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
}

/// An Event the kubelet records about the container (`type`, `reason`, `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    /// `Pulling`, `Failed`, `BackOff`.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// Why the pull failed, in the words containerd uses for a missing image, followed by
/// what the lab can run (so a user sees how to fix it).
fn pull_error(image: &str, prefixes: &[String]) -> String {
    let full = normalized_reference(image);
    format!(
        "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": \
         {full}: not found (the resil lab runs only the demo image: {})",
        prefixes
            .iter()
            .map(|p| format!("{p}*"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Right after a failed attempt: `ErrImagePull`.
pub fn err_image_pull(image: &str, prefixes: &[String]) -> Waiting {
    Waiting {
        reason: "ErrImagePull",
        message: pull_error(image, prefixes),
    }
}

/// While waiting for the next attempt: `ImagePullBackOff`.
pub fn image_pull_back_off(image: &str) -> Waiting {
    Waiting {
        reason: "ImagePullBackOff",
        message: format!("Back-off pulling image \"{}\"", with_default_tag(image)),
    }
}

/// The Events of one failed attempt, in the order the kubelet records them.
pub fn pull_attempt_events(image: &str, prefixes: &[String]) -> Vec<ImageEvent> {
    let tagged = with_default_tag(image);
    vec![
        ImageEvent {
            kind: "Normal",
            reason: "Pulling",
            message: format!("Pulling image \"{tagged}\""),
        },
        ImageEvent {
            kind: "Warning",
            reason: "Failed",
            message: format!(
                "Failed to pull image \"{tagged}\": {}",
                pull_error(image, prefixes)
            ),
        },
        ImageEvent {
            kind: "Warning",
            reason: "Failed",
            message: "Error: ErrImagePull".to_string(),
        },
    ]
}

/// The Events while backing off, in the order the kubelet records them.
pub fn back_off_events(image: &str) -> Vec<ImageEvent> {
    vec![
        ImageEvent {
            kind: "Normal",
            reason: "BackOff",
            message: format!("Back-off pulling image \"{}\"", with_default_tag(image)),
        },
        ImageEvent {
            kind: "Warning",
            reason: "Failed",
            message: "Error: ImagePullBackOff".to_string(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Vec<String> {
        vec!["resil-demo".to_string()]
    }

    #[test]
    fn the_demo_image_is_recognised_under_any_registry_or_tag() {
        for image in [
            "resil-demo",
            "resil-demo:latest",
            "resil-demo-green:v2",
            "ghcr.io/acme/resil-demo:1.0",
            "localhost:5000/resil-demo@sha256:abc",
        ] {
            assert!(is_demo_image(image, &demo()), "{image}");
        }
        for image in [
            "nginx",
            "acme/not-resil-demo",
            "resil:1",
            "docker.io/library/busybox",
        ] {
            assert!(!is_demo_image(image, &demo()), "{image}");
        }
        let by_path = vec!["ghcr.io/acme/".to_string()];
        assert!(is_demo_image("ghcr.io/acme/web:1", &by_path));
        assert!(!is_demo_image("web:1", &by_path));
    }

    #[test]
    fn a_resil_command_runs_the_binary_with_its_arguments() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(program_args(None, Some(&s(&["x"]))), Ok(None));
        assert_eq!(
            program_args(
                Some(&s(&["resil", "load-worker"])),
                Some(&s(&["--rate", "5"]))
            ),
            Ok(Some(s(&["load-worker", "--rate", "5"])))
        );
        assert_eq!(
            program_args(Some(&s(&["/usr/local/bin/resil", "demo-app"])), None),
            Ok(None)
        );
        assert!(program_args(Some(&s(&["sh", "-c", "true"])), None).is_err());
        assert!(program_args(Some(&s(&["resil", "chaos"])), None).is_err());
    }

    #[test]
    fn references_are_normalised_like_a_container_runtime() {
        assert_eq!(
            normalized_reference("nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(normalized_reference("acme/web:1"), "docker.io/acme/web:1");
        assert_eq!(
            normalized_reference("localhost:5000/web"),
            "localhost:5000/web:latest"
        );
        assert_eq!(
            normalized_reference("ghcr.io/a/b@sha256:00"),
            "ghcr.io/a/b@sha256:00"
        );
    }

    #[test]
    fn unpullable_images_wait_with_the_kubelets_reasons() {
        let failed = err_image_pull("nginx:nope", &demo());
        assert_eq!(failed.reason, "ErrImagePull");
        assert!(
            failed
                .message
                .starts_with("failed to pull and unpack image \"docker.io/library/nginx:nope\"")
        );
        assert!(failed.message.contains("resil-demo*"));
        let waiting = image_pull_back_off("nginx");
        assert_eq!(waiting.reason, "ImagePullBackOff");
        assert_eq!(waiting.message, "Back-off pulling image \"nginx:latest\"");
        let events = pull_attempt_events("nginx", &demo());
        let reasons: Vec<_> = events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["Pulling", "Failed", "Failed"]);
        assert_eq!(events[2].message, "Error: ErrImagePull");
        assert_eq!(
            back_off_events("nginx")[1].message,
            "Error: ImagePullBackOff"
        );
    }
}
