//! nvidia-gpu-defaults: what a vLLM Pod on NVIDIA GPUs needs and a template
//! usually forgets: GPU limits (and equal requests), the `nvidia` runtime
//! class, a memory-backed /dev/shm, a toleration of the `nvidia.com/gpu`
//! taint, optionally a GPU-product node selector and NCCL env defaults.
//! Config as in Kthena's plugin proposal (runtimeClassName, gpuResourceName,
//! gpuCount) plus the multi-node extras; README.md has the table. Nothing the
//! Pod template sets explicitly is overridden unless `overwrite: true`.

use podplug_sdk::{defaults, Error, HookRequest, Mutations, StringMap, Value};
use serde::Deserialize;

/// The taint the GPU Operator, GKE and AKS put on GPU nodes (value varies: Exists).
const GPU_TAINT: &str = "nvidia.com/gpu";
/// Set on every GPU node by GPU Feature Discovery, e.g. `NVIDIA-A100-SXM4-80GB`.
const PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
const SHM_VOLUME: &str = "dshm";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// `null` (or `""`) leaves runtimeClassName alone.
    #[serde(default = "default_runtime_class")]
    runtime_class_name: Option<String>,
    #[serde(default = "default_resource")]
    gpu_resource_name: String,
    #[serde(default = "one")]
    gpu_count: u32,
    /// Containers that get GPUs, /dev/shm and NCCL env; default the first one.
    #[serde(default)]
    containers: Option<Vec<String>>,
    #[serde(default = "yes")]
    shm: bool,
    #[serde(default)]
    shm_size: Option<String>,
    #[serde(default = "yes")]
    tolerate_gpu_taint: bool,
    #[serde(default)]
    gpu_product: Option<String>,
    /// NCCL_* variables to default (none unless configured).
    #[serde(default)]
    nccl_env: StringMap<Value>,
    #[serde(default)]
    overwrite: bool,
}

fn default_runtime_class() -> Option<String> {
    Some("nvidia".into())
}
fn default_resource() -> String {
    "nvidia.com/gpu".into()
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Semantic checks after the type check the SDK derives from `Config`.
fn validate(_req: &HookRequest, cfg: &Config) -> Result<(), Error> {
    defaults::check_device_config(
        "gpu",
        cfg.gpu_count,
        &cfg.gpu_resource_name,
        "nvidia.com/gpu",
        cfg.containers.as_deref(),
        cfg.shm_size.as_deref(),
    )?;
    if cfg.gpu_product.as_deref() == Some("") {
        return Err("field gpuProduct: must not be empty".into());
    }
    for (name, value) in cfg.nccl_env.iter() {
        if !name.starts_with("NCCL_") || !podplug_sdk::k8s::is_env_name(name) {
            return Err(Error::new(format!("field ncclEnv: {:?} is not an NCCL_* variable name", name)));
        }
        defaults::env_text(&format!("ncclEnv.{}", name), value)?;
    }
    Ok(())
}

fn create(req: &HookRequest, cfg: &Config) -> Result<Mutations, Error> {
    let pod = req.pod();
    let containers = pod.select_containers(cfg.containers.as_deref())?;
    let mut m = Mutations::new();

    if let Some(rc) = cfg.runtime_class_name.as_deref().filter(|rc| !rc.is_empty()) {
        match pod.spec().runtime_class_name {
            Some(current) if current == rc => {}
            Some(_) if !cfg.overwrite => {}
            _ => {
                m.set_runtime_class_name(rc);
            }
        }
    }
    if cfg.tolerate_gpu_taint {
        m.tolerate(pod, GPU_TAINT);
    }
    if let Some(product) = &cfg.gpu_product {
        defaults::default_node_selector(&mut m, pod, PRODUCT_LABEL, product, cfg.overwrite);
    }

    for c in &containers {
        defaults::set_device_count(&mut m, c, &cfg.gpu_resource_name, cfg.gpu_count, cfg.overwrite);
        for (name, value) in cfg.nccl_env.iter() {
            let text = defaults::env_text(name, value)?;
            defaults::default_env(&mut m, c, name, &text, cfg.overwrite);
        }
    }
    if cfg.shm {
        defaults::shared_memory(&mut m, pod, &containers, SHM_VOLUME, cfg.shm_size.as_deref());
    }
    Ok(m)
}

podplug_sdk::plugin! {
    config: Config,
    validate_config: validate,
    on_pod_create: create,
    mutations: [setRuntimeClassName, addToleration, setNodeSelector, setResource, setEnv, addVolume, addVolumeMount],
}

#[cfg(test)]
mod tests {
    use super::*;
    use podplug_sdk::testing::{self, Request};

    const POD: &str = r#"{
        "metadata": {"name": "llama-0-decode-0-0", "namespace": "default"},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}, {"name": "metrics-sidecar"}]}
    }"#;

    fn create_with(config: &str, pod: &str) -> Result<Mutations, Error> {
        PLUGIN.create(&Request::create().config_json(config).role("decode", "decode-0", true).pod_json(pod).build())
    }

    #[test]
    fn defaults_give_the_first_container_one_gpu_and_shm() {
        let ops = create_with("{}", POD).unwrap();
        testing::assert_ops(
            &ops,
            r#"[
                {"op": "setRuntimeClassName", "value": "nvidia"},
                {"op": "addToleration", "toleration": {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}},
                {"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "1"},
                {"op": "setResource", "container": "vllm", "kind": "requests", "name": "nvidia.com/gpu", "quantity": "1"},
                {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory"}}},
                {"op": "addVolumeMount", "container": "vllm", "mount": {"name": "dshm", "mountPath": "/dev/shm"}}
            ]"#,
        );
    }

    #[test]
    fn a_gpu_request_alone_gets_an_equal_limit() {
        let pod = r#"{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "vllm",
            "resources": {"requests": {"nvidia.com/gpu": "4"}}}]}}"#;
        let ops = create_with(r#"{"shm": false, "tolerateGpuTaint": false, "runtimeClassName": null}"#, pod).unwrap();
        testing::assert_ops(&ops, r#"[{"op": "setResource", "container": "vllm", "kind": "limits", "name": "nvidia.com/gpu", "quantity": "4"}]"#);
    }

    #[test]
    fn naming_only_absent_containers_is_an_error() {
        let err = create_with(r#"{"containers": ["engine"]}"#, POD).unwrap_err();
        assert_eq!(
            err.message(),
            r#"none of the containers ["engine"] is in Pod llama-0-decode-0-0 (it has ["vllm", "metrics-sidecar"])"#
        );
    }

    #[test]
    fn semantic_config_errors_name_the_field() {
        for (config, message) in [
            (r#"{"gpuCount": 0}"#, "field gpuCount: must be at least 1"),
            (r#"{"shmSize": "16GB"}"#, "field shmSize: \"16GB\" is not a Kubernetes quantity"),
            (r#"{"ncclEnv": {"DEBUG": "INFO"}}"#, "field ncclEnv: \"DEBUG\" is not an NCCL_* variable name"),
            (r#"{"ncclEnv": {"NCCL_DEBUG": ["INFO"]}}"#, "field ncclEnv.NCCL_DEBUG: expected a string, integer or boolean"),
            (r#"{"gpuResourceName": "gpu"}"#, "field gpuResourceName"),
            (r#"{"gpuCount": -1}"#, "field gpuCount: invalid value: integer `-1`, expected u32"),
        ] {
            let req = Request::validate_config().config_json(config).build();
            let err = PLUGIN.validate(&req).unwrap_err();
            assert!(err.message().starts_with(message), "{}: {}", config, err.message());
        }
    }
}
