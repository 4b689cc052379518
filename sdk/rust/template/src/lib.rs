//! {{name}}: a podplug plugin.
//!
//! Gives the serving container a memory-backed /dev/shm (NCCL and PyTorch
//! need more than the container runtime's 64 MiB default) and labels entry
//! Pods with their role. Config:
//!
//! | key         | type   | default | meaning                          |
//! |-------------|--------|---------|----------------------------------|
//! | `sizeLimit` | string | none    | `emptyDir.sizeLimit`, e.g. `16Gi` |
//! | `container` | string | first   | the container to mount it in     |

use podplug_sdk::{bail, Error, HookRequest, Mutations};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    size_limit: Option<String>,
    #[serde(default)]
    container: Option<String>,
}

fn create(req: &HookRequest, config: &Config) -> Result<Mutations, Error> {
    let pod = req.pod();
    let container = match &config.container {
        Some(name) => match pod.container(name) {
            Some(c) => c,
            None => bail!("container {:?} is not in the Pod", name),
        },
        None => match pod.main_container() {
            Some(c) => c,
            None => bail!("the Pod has no containers"),
        },
    };

    let mut m = Mutations::new();
    if pod.volume("dshm").is_none() {
        m.add_memory_empty_dir("dshm", config.size_limit.as_deref());
    }
    if container.volume_mount("/dev/shm").is_none() {
        m.mount_volume_in(container.name, "dshm", "/dev/shm");
    }
    if req.is_entry() {
        m.set_label("example.com/role", req.role_name());
    }
    podplug_sdk::info!("{}: {} ops for {}", req.plugin_name(), m.len(), pod.name());
    Ok(m)
}

podplug_sdk::plugin! {
    config: Config,
    on_pod_create: create,
    mutations: [addVolume, addVolumeMount, setLabel],
}

#[cfg(test)]
mod tests {
    use super::PLUGIN;
    use podplug_sdk::testing::{self, Request};

    const POD: &str = r#"{
        "metadata": {"name": "llama-0-prefill-0-0"},
        "spec": {"containers": [{"name": "main", "image": "vllm/vllm-openai"}, {"name": "sidecar"}]}
    }"#;

    #[test]
    fn entry_pods_get_shared_memory_and_a_role_label() {
        let req = Request::create()
            .config_json(r#"{"sizeLimit": "16Gi"}"#)
            .role("prefill", "prefill-0", true)
            .pod_json(POD)
            .build();
        let ops = PLUGIN.create(&req).unwrap();
        testing::assert_ops(
            &ops,
            r#"[
                {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}},
                {"op": "addVolumeMount", "container": "main", "mount": {"name": "dshm", "mountPath": "/dev/shm"}},
                {"op": "setLabel", "key": "example.com/role", "value": "prefill"}
            ]"#,
        );
    }

    #[test]
    fn an_unknown_container_is_refused() {
        let req = Request::create().config_json(r#"{"container": "nope"}"#).pod_json(POD).build();
        assert_eq!(PLUGIN.create(&req).unwrap_err().message(), "container \"nope\" is not in the Pod");
    }

    #[test]
    fn validate_config_names_the_bad_field() {
        let req = Request::validate_config().config_json(r#"{"sizeLimit": 16}"#);
        let response = testing::decode_response(&PLUGIN.call("validate_config", &req.to_msgpack()));
        assert_eq!(response.get("valid").and_then(|v| v.as_bool()), Some(false));
        assert_eq!(
            response.get("message").and_then(|v| v.as_str()),
            Some("field sizeLimit: invalid type: integer `16`, expected a string")
        );
    }
}
