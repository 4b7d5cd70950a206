//! Connecting to a cluster through kube-rs: kubeconfig and context selection, the safety
//! guard that keeps mutating commands on local labs, server-side apply and rollout waits.
//! Every toolkit command reaches any cluster — the lab included — only through here.

pub mod events;
