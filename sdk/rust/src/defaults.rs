//! Defaults that never override the user: the helpers of the accelerator
//! plugins (nvidia-gpu-defaults, huawei-ascend-defaults), for any plugin that
//! fills in what a Pod lacks. Each one leaves a value the Pod's author set
//! alone unless `overwrite`, and emits no op when the Pod already has the
//! value, so a plugin built on them is idempotent.
//!
//! ```
//! use podplug_sdk::{defaults, testing, Mutations};
//!
//! let pod = testing::pod_json(r#"{"spec": {"containers": [
//!     {"name": "vllm", "env": [{"name": "NCCL_DEBUG", "value": "INFO"}]}]}}"#);
//! let vllm = &pod.containers()[0];
//! let mut m = Mutations::new();
//! defaults::set_device_count(&mut m, vllm, "nvidia.com/gpu", 2, false);
//! defaults::default_env(&mut m, vllm, "NCCL_DEBUG", "WARN", false); // the Pod's INFO stays
//! defaults::shared_memory(&mut m, &pod, &[vllm], "dshm", Some("16Gi"));
//! testing::assert_ops(&m, r#"[
//!     {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "2"},
//!     {"op": "setResource", "container": "vllm", "kind": "requests", "name": "nvidia.com/gpu", "quantity": "2"},
//!     {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}},
//!     {"op": "addVolumeMount", "container": "vllm", "mount": {"name": "dshm", "mountPath": "/dev/shm"}}
//! ]"#);
//! ```
//!
//! The syntax checks they build on are [`crate::k8s`]'s.

use crate::k8s::{is_qualified_name, is_quantity};
use crate::{Container, Error, Mutations, Pod, ResourceKind, Value};

/// `limits` and `requests` of an extended resource, which Kubernetes requires
/// to be equal. A container that already asks for it keeps its number unless
/// `overwrite`; one with only a request gets the same limit.
pub fn set_device_count(m: &mut Mutations, c: &Container, resource: &str, count: u32, overwrite: bool) {
    let want = count.to_string();
    let (limit, request) = (c.limit(resource), c.request(resource));
    let value = match (limit, request) {
        _ if overwrite => want,
        (Some(_), _) => return,
        (None, Some(req)) => req.as_str().to_string(),
        (None, None) => want,
    };
    if limit.map(|q| q.as_str()) != Some(value.as_str()) {
        m.set_resource_in(c.name, ResourceKind::Limits, resource, value.as_str());
    }
    if request.map(|q| q.as_str()) != Some(value.as_str()) {
        m.set_resource_in(c.name, ResourceKind::Requests, resource, value);
    }
}

/// A memory-backed emptyDir mounted at /dev/shm in each of `containers` that
/// has nothing there yet (NCCL/HCCL and PyTorch workers need far more than the
/// container runtime's 64 MiB). A Pod volume already named `volume` is reused.
pub fn shared_memory(m: &mut Mutations, pod: &Pod, containers: &[&Container], volume: &str, size: Option<&str>) {
    let needing: Vec<&&Container> = containers.iter().filter(|c| !c.mounts_at("/dev/shm")).collect();
    if needing.is_empty() {
        return;
    }
    if pod.volume(volume).is_none() {
        m.add_memory_empty_dir(volume, size);
    }
    for c in needing {
        m.mount_volume_in(c.name, volume, "/dev/shm");
    }
}

/// `setNodeSelector` unless the Pod selects another value for `key` already
/// and `overwrite` is off.
pub fn default_node_selector(m: &mut Mutations, pod: &Pod, key: &str, value: &str, overwrite: bool) {
    match pod.node_selector(key) {
        Some(current) if current == value => {}
        Some(_) if !overwrite => {}
        _ => {
            m.set_node_selector(key, value);
        }
    }
}

/// `setEnv` of a literal unless the container sets `name` already (any value,
/// or `valueFrom`) and `overwrite` is off.
pub fn default_env(m: &mut Mutations, c: &Container, name: &str, value: &str, overwrite: bool) {
    match c.env_var(name) {
        Some(e) if e.value == Some(value) && e.value_from.is_none() => {}
        Some(_) if !overwrite => {}
        _ => {
            m.set_env_in(c.name, name, value);
        }
    }
}

/// The config checks of an accelerator plugin: `kind` is `gpu` or `npu`
/// (fields `gpuCount`, `gpuResourceName`...), `example` a resource name.
pub fn check_device_config(
    kind: &str,
    count: u32,
    resource: &str,
    example: &str,
    containers: Option<&[String]>,
    shm_size: Option<&str>,
) -> Result<(), Error> {
    if count == 0 {
        return Err(Error::new(format!(
            "field {}Count: must be at least 1 (scope the plugin to the roles that need {}s instead)",
            kind,
            kind.to_ascii_uppercase()
        )));
    }
    if !is_qualified_name(resource) || !resource.contains('/') {
        return Err(Error::new(format!(
            "field {}ResourceName: {:?} is not an extended resource name like {}",
            kind, resource, example
        )));
    }
    if let Some(names) = containers {
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err("field containers: expected a non-empty list of container names".into());
        }
    }
    if let Some(size) = shm_size {
        if !is_quantity(size) {
            return Err(Error::new(format!("field shmSize: {:?} is not a Kubernetes quantity like 16Gi", size)));
        }
    }
    Ok(())
}

/// An env value from config: a string, or an integer or boolean written
/// without quotes in YAML (`NCCL_IB_DISABLE: 1`).
pub fn env_text(field: &str, v: &Value) -> Result<String, Error> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(Error::new(format!("field {}: expected a string, integer or boolean, got {}", field, other.type_name()))),
    }
}
