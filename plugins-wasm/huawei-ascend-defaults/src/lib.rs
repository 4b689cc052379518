//! huawei-ascend-defaults: what a MindIE or vLLM-Ascend serving Pod on Huawei
//! Ascend NPUs needs: NPU limits (and equal requests), a memory-backed
//! /dev/shm, the HCCL env that multi-node engines read, scheduling hints, the
//! driver and tool mounts (hostPath: gated, off by default) and, for
//! multi-node jobs, the HCCL rank table at the path Ascend's runtimes expect
//! (Kthena issue 563). README.md explains which cluster component writes the
//! rank table and how this plugin connects the Pod to it.

use podplug_sdk::{defaults, Container, EnvSource, Error, HookRequest, Mutations, StringMap, Toleration, Value};
use serde::Deserialize;

/// Node label the ascend-device-plugin sets to the chip name (`910B3`, `Ascend910`...).
const CHIP_LABEL: &str = "node.kubernetes.io/npu.chip.name";
/// Pod annotation the ascend-device-plugin writes with the NPUs (ids, device IPs) it allocated.
const DEVICE_ANNOTATION: &str = "ascend.kubectl.kubernetes.io/ascend-910-configuration";
/// The directory MindX DL and Volcano's ringsconfigmap plugin mount the rank table at.
const RANK_TABLE_DIR: &str = "/user/serverid/devindex/config";
const RANK_TABLE_VOLUME: &str = "ascend-910-config";
const SHM_VOLUME: &str = "dshm";
/// Host paths Ascend serving images expect: driver libraries and tools, the
/// DCMI library npu-smi uses, npu-smi itself, the install record CANN reads.
const DRIVER_MOUNTS: [(&str, &str, &str); 4] = [
    ("ascend-driver", "/usr/local/Ascend/driver", "Directory"),
    ("ascend-dcmi", "/usr/local/dcmi", "Directory"),
    ("ascend-npu-smi", "/usr/local/bin/npu-smi", "File"),
    ("ascend-install-info", "/etc/ascend_install.info", "File"),
];
/// NPU NIC addresses, read by hccn_tool and rank-table generators.
const HCCN_CONF: (&str, &str, &str) = ("ascend-hccn-conf", "/etc/hccn.conf", "File");
/// Env the host or the device plugin owns: setting them from config could only break things.
const RESERVED_ENV: [&str; 5] = ["ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE", "ASCEND_VISIBLE_DEVICES", "ASCEND_RUNTIME_OPTIONS"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default = "default_resource")]
    npu_resource_name: String,
    #[serde(default = "one")]
    npu_count: u32,
    #[serde(default)]
    containers: Option<Vec<String>>,
    #[serde(default = "yes")]
    shm: bool,
    #[serde(default)]
    shm_size: Option<String>,
    /// hostPath mounts of the driver and tools (needs the `hostPath` grant).
    #[serde(default)]
    driver_mounts: bool,
    /// hostPath mount of /etc/hccn.conf (needs the `hostPath` grant).
    #[serde(default)]
    hccn_conf: bool,
    /// Env vars set to the Pod IP (`status.podIP`).
    #[serde(default = "default_pod_ip_env")]
    pod_ip_env: Vec<String>,
    /// HCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME and TP_SOCKET_IFNAME.
    #[serde(default)]
    socket_ifname: Option<String>,
    #[serde(default)]
    env: StringMap<Value>,
    #[serde(default)]
    chip_name: Option<String>,
    #[serde(default)]
    node_selector: StringMap<String>,
    #[serde(default)]
    tolerations: Vec<TolerationConfig>,
    #[serde(default)]
    rank_table: Option<RankTable>,
    #[serde(default)]
    overwrite: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TolerationConfig {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<String>,
    #[serde(default)]
    toleration_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RankTable {
    /// `configMap` (a rank-table ConfigMap some controller fills) or
    /// `downwardAPI` (the device plugin's per-Pod annotation as a file).
    source: String,
    #[serde(default = "default_config_map")]
    config_map_name: String,
    #[serde(default = "default_annotation")]
    annotation: String,
    #[serde(default = "default_rank_table_dir")]
    mount_path: String,
    #[serde(default = "default_file_name")]
    file_name: String,
    /// Env vars set to `<mountPath>/<fileName>`.
    #[serde(default = "default_rank_table_env")]
    env: Vec<String>,
}

fn default_resource() -> String {
    "huawei.com/Ascend910".into()
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_pod_ip_env() -> Vec<String> {
    vec!["HCCL_IF_IP".into()]
}
fn default_config_map() -> String {
    "rings-config-{servingGroup}".into()
}
fn default_annotation() -> String {
    DEVICE_ANNOTATION.into()
}
fn default_rank_table_dir() -> String {
    RANK_TABLE_DIR.into()
}
fn default_file_name() -> String {
    "hccl.json".into()
}
fn default_rank_table_env() -> Vec<String> {
    vec!["RANK_TABLE_FILE".into()]
}

fn check_env_name(field: &str, name: &str) -> Result<(), Error> {
    if !podplug_sdk::k8s::is_env_name(name) {
        return Err(Error::new(format!("field {}: {:?} is not an env var name", field, name)));
    }
    if RESERVED_ENV.contains(&name) {
        return Err(Error::new(format!("field {}: {} is set by the operator or the device plugin, not by config", field, name)));
    }
    Ok(())
}

fn validate(_req: &HookRequest, cfg: &Config) -> Result<(), Error> {
    defaults::check_device_config(
        "npu",
        cfg.npu_count,
        &cfg.npu_resource_name,
        "huawei.com/Ascend910",
        cfg.containers.as_deref(),
        cfg.shm_size.as_deref(),
    )?;
    for name in &cfg.pod_ip_env {
        check_env_name("podIpEnv", name)?;
    }
    if cfg.socket_ifname.as_deref() == Some("") {
        return Err("field socketIfname: must not be empty".into());
    }
    for (name, value) in cfg.env.iter() {
        check_env_name("env", name)?;
        defaults::env_text(&format!("env.{}", name), value)?;
    }
    if cfg.chip_name.as_deref() == Some("") {
        return Err("field chipName: must not be empty".into());
    }
    for (key, _) in cfg.node_selector.iter() {
        if !podplug_sdk::k8s::is_qualified_name(key) {
            return Err(Error::new(format!("field nodeSelector: {:?} is not a label key", key)));
        }
    }
    for (i, t) in cfg.tolerations.iter().enumerate() {
        match t.operator.as_deref() {
            None | Some("Equal") | Some("Exists") => {}
            Some(other) => return Err(Error::new(format!("field tolerations[{}].operator: {:?} is not Equal or Exists", i, other))),
        }
        if let Some(e) = t.effect.as_deref() {
            if !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e) {
                return Err(Error::new(format!("field tolerations[{}].effect: {:?} is not NoSchedule, PreferNoSchedule or NoExecute", i, e)));
            }
        }
    }
    if let Some(rt) = &cfg.rank_table {
        if rt.source != "configMap" && rt.source != "downwardAPI" {
            return Err(Error::new(format!("field rankTable.source: {:?} is not configMap or downwardAPI", rt.source)));
        }
        render(&rt.config_map_name, &Placeholders::sample()).map_err(|e| Error::new(format!("field rankTable.configMapName: {}", e)))?;
        if !rt.mount_path.starts_with('/') || rt.mount_path.split('/').any(|p| p == "..") {
            return Err(Error::new(format!("field rankTable.mountPath: {:?} is not an absolute path", rt.mount_path)));
        }
        if rt.file_name.is_empty() || rt.file_name.contains('/') || rt.file_name.starts_with("..") {
            return Err(Error::new(format!("field rankTable.fileName: {:?} is not a file name", rt.file_name)));
        }
        if rt.annotation.is_empty() || rt.annotation.contains('\'') {
            return Err(Error::new(format!("field rankTable.annotation: {:?} is not an annotation key", rt.annotation)));
        }
        for name in &rt.env {
            check_env_name("rankTable.env", name)?;
        }
    }
    Ok(())
}

fn create(req: &HookRequest, cfg: &Config) -> Result<Mutations, Error> {
    let pod = req.pod();
    let containers = pod.select_containers(cfg.containers.as_deref())?;
    let mut m = Mutations::new();

    // Scheduling.
    let mut selectors: Vec<(&str, &str)> = Vec::new();
    if let Some(chip) = &cfg.chip_name {
        selectors.push((CHIP_LABEL, chip));
    }
    selectors.extend(cfg.node_selector.iter().map(|(k, v)| (k, v.as_str())));
    for (key, value) in selectors {
        defaults::default_node_selector(&mut m, pod, key, value, cfg.overwrite);
    }
    for t in &cfg.tolerations {
        let t = Toleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        };
        if !pod.spec().tolerations.contains(&t) {
            m.add_toleration(t);
        }
    }

    // Per container: NPUs and env.
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(ifname) = &cfg.socket_ifname {
        for name in ["HCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME"] {
            env.push((name.to_string(), ifname.clone()));
        }
    }
    for (name, value) in cfg.env.iter() {
        env.push((name.to_string(), defaults::env_text(name, value)?));
    }
    let rank_table = match &cfg.rank_table {
        Some(rt) => Some((rt, rank_table_volume(rt, req)?)),
        None => None,
    };
    if let Some((rt, _)) = &rank_table {
        let file = format!("{}/{}", rt.mount_path.trim_end_matches('/'), rt.file_name);
        env.extend(rt.env.iter().map(|name| (name.clone(), file.clone())));
    }
    for c in &containers {
        defaults::set_device_count(&mut m, c, &cfg.npu_resource_name, cfg.npu_count, cfg.overwrite);
        for name in &cfg.pod_ip_env {
            pod_ip_env(&mut m, c, name, cfg.overwrite);
        }
        for (name, value) in &env {
            defaults::default_env(&mut m, c, name, value, cfg.overwrite);
        }
    }

    // Volumes: each added before its mounts.
    if cfg.shm {
        defaults::shared_memory(&mut m, pod, &containers, SHM_VOLUME, cfg.shm_size.as_deref());
    }
    let mut host_mounts: Vec<(&str, &str, &str)> = Vec::new();
    if cfg.driver_mounts {
        host_mounts.extend(DRIVER_MOUNTS);
    }
    if cfg.hccn_conf {
        host_mounts.push(HCCN_CONF);
    }
    for (volume, path, kind) in host_mounts {
        let volume_value = podplug_sdk::map! {
            "name" => volume,
            "hostPath" => podplug_sdk::map! { "path" => path, "type" => kind },
        };
        mount(&mut m, pod, &containers, volume, volume_value, path);
    }
    if let Some((rt, volume)) = rank_table {
        mount(&mut m, pod, &containers, RANK_TABLE_VOLUME, volume, &rt.mount_path);
    }
    Ok(m)
}

/// `volume` mounted read-only at `path` in each container with nothing there;
/// a Pod volume of the same name is the user's and is reused as it is.
fn mount(m: &mut Mutations, pod: &podplug_sdk::Pod, containers: &[&Container], name: &str, volume: Value, path: &str) {
    let needing: Vec<&&Container> = containers.iter().filter(|c| !c.mounts_at(path)).collect();
    if needing.is_empty() {
        return;
    }
    if pod.volume(name).is_none() {
        m.add_volume(volume);
    }
    for c in needing {
        m.add_volume_mount_in(c.name, podplug_sdk::map! { "name" => name, "mountPath" => path, "readOnly" => true });
    }
}

/// `name` from `status.podIP`, unless the container sets it (and not `overwrite`).
fn pod_ip_env(m: &mut Mutations, c: &Container, name: &str, overwrite: bool) {
    let field = podplug_sdk::map! { "fieldRef" => podplug_sdk::map! { "fieldPath" => "status.podIP" } };
    match c.env_var(name) {
        Some(e) if e.value.is_none() && e.value_from.as_ref() == Some(&field) => {}
        Some(_) if !overwrite => {}
        _ => {
            m.set_env_from_in(c.name, name, EnvSource::field("status.podIP"));
        }
    }
}

/// The rank-table volume: the group's ConfigMap, or the device plugin's Pod
/// annotation through the downward API (the kubelet refreshes the file once
/// the annotation appears after device allocation).
fn rank_table_volume(rt: &RankTable, req: &HookRequest) -> Result<Value, Error> {
    let source = if rt.source == "configMap" {
        let name = render(&rt.config_map_name, &Placeholders::of(req)).map_err(|e| Error::new(format!("rankTable.configMapName: {}", e)))?;
        if !is_dns_subdomain(&name) {
            return Err(Error::new(format!("rankTable.configMapName: {:?} is not a valid ConfigMap name", name)));
        }
        ("configMap", podplug_sdk::map! { "name" => name })
    } else {
        let field = format!("metadata.annotations['{}']", rt.annotation);
        let item = podplug_sdk::map! { "path" => rt.file_name.as_str(), "fieldRef" => podplug_sdk::map! { "fieldPath" => field } };
        ("downwardAPI", podplug_sdk::map! { "items" => podplug_sdk::list![item] })
    };
    Ok(podplug_sdk::map! { "name" => RANK_TABLE_VOLUME, source.0 => source.1 })
}

struct Placeholders<'a> {
    model_serving: &'a str,
    namespace: &'a str,
    serving_group: &'a str,
    role_name: &'a str,
    role_id: &'a str,
}

impl<'a> Placeholders<'a> {
    fn of(req: &'a HookRequest) -> Self {
        let ms = req.model_serving();
        Placeholders {
            model_serving: ms.name(),
            namespace: ms.namespace(),
            serving_group: req.serving_group(),
            role_name: req.role_name(),
            role_id: req.role_id(),
        }
    }

    fn sample() -> Self {
        Placeholders { model_serving: "ms", namespace: "ns", serving_group: "ms-0", role_name: "r", role_id: "r-0" }
    }
}

/// `{modelServing}`, `{namespace}`, `{servingGroup}`, `{roleName}`, `{roleID}`
/// replaced; any other `{...}` is an error.
fn render(template: &str, p: &Placeholders) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in {:?}", template))? + open;
        out.push_str(match &rest[open + 1..close] {
            "modelServing" => p.model_serving,
            "namespace" => p.namespace,
            "servingGroup" => p.serving_group,
            "roleName" => p.role_name,
            "roleID" => p.role_id,
            other => return Err(format!("unknown placeholder {{{}}} (have modelServing, namespace, servingGroup, roleName, roleID)", other)),
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

podplug_sdk::plugin! {
    config: Config,
    validate_config: validate,
    on_pod_create: create,
    mutations: [setNodeSelector, addToleration, setResource, setEnv, addVolume, addVolumeMount],
}

#[cfg(test)]
mod tests {
    use super::*;
    use podplug_sdk::testing::{self, Request};

    const POD: &str = r#"{
        "metadata": {"name": "qwen-0-default-0-0", "namespace": "llm"},
        "spec": {"containers": [{"name": "mindie", "image": "mindie:2.0"}]}
    }"#;

    fn create_with(config: &str) -> Result<Mutations, Error> {
        PLUGIN.create(
            &Request::create()
                .config_json(config)
                .model_serving_json(r#"{"metadata": {"name": "qwen", "namespace": "llm"}, "spec": {}}"#)
                .serving_group("qwen-0")
                .role("default", "default-0", true)
                .pod_json(POD)
                .build(),
        )
    }

    #[test]
    fn defaults_npu_shm_and_hccl_if_ip() {
        testing::assert_ops(
            &create_with("{}").unwrap(),
            r#"[
                {"op": "setResource", "container": "mindie", "kind": "limits", "name": "huawei.com/Ascend910", "quantity": "1"},
                {"op": "setResource", "container": "mindie", "kind": "requests", "name": "huawei.com/Ascend910", "quantity": "1"},
                {"op": "setEnv", "container": "mindie", "name": "HCCL_IF_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"op": "addVolume", "volume": {"name": "dshm", "emptyDir": {"medium": "Memory"}}},
                {"op": "addVolumeMount", "container": "mindie", "mount": {"name": "dshm", "mountPath": "/dev/shm"}}
            ]"#,
        );
    }

    #[test]
    fn rank_table_from_the_group_config_map() {
        let ops = create_with(r#"{"shm": false, "podIpEnv": [], "rankTable": {"source": "configMap"}}"#).unwrap();
        testing::assert_ops(
            &ops,
            r#"[
                {"op": "setResource", "container": "mindie", "kind": "limits", "name": "huawei.com/Ascend910", "quantity": "1"},
                {"op": "setResource", "container": "mindie", "kind": "requests", "name": "huawei.com/Ascend910", "quantity": "1"},
                {"op": "setEnv", "container": "mindie", "name": "RANK_TABLE_FILE", "value": "/user/serverid/devindex/config/hccl.json"},
                {"op": "addVolume", "volume": {"name": "ascend-910-config", "configMap": {"name": "rings-config-qwen-0"}}},
                {"op": "addVolumeMount", "container": "mindie", "mount": {"name": "ascend-910-config", "mountPath": "/user/serverid/devindex/config", "readOnly": true}}
            ]"#,
        );
    }

    #[test]
    fn placeholders() {
        let p = Placeholders::sample();
        assert_eq!(render("rings-config-{modelServing}-{roleID}", &p).unwrap(), "rings-config-ms-r-0");
        assert_eq!(render("plain", &p).unwrap(), "plain");
        assert!(render("x-{job}", &p).unwrap_err().starts_with("unknown placeholder {job}"));
        assert!(render("x-{servingGroup", &p).unwrap_err().starts_with("unclosed"));
        assert!(is_dns_subdomain("rings-config-qwen-0") && !is_dns_subdomain("Rings") && !is_dns_subdomain("a..b"));
    }

    #[test]
    fn config_errors_name_the_field() {
        for (config, message) in [
            (r#"{"npuCount": 0}"#, "field npuCount: must be at least 1"),
            (r#"{"env": {"ASCEND_VISIBLE_DEVICES": "0"}}"#, "field env: ASCEND_VISIBLE_DEVICES is set by"),
            (r#"{"rankTable": {"source": "file"}}"#, "field rankTable.source: \"file\" is not configMap or downwardAPI"),
            (r#"{"rankTable": {"source": "configMap", "configMapName": "rt-{job}"}}"#, "field rankTable.configMapName: unknown placeholder {job}"),
            (r#"{"rankTable": {"source": "configMap", "mountPath": "relative"}}"#, "field rankTable.mountPath"),
            (r#"{"rankTable": {}}"#, "field rankTable: missing field `source`"),
            (r#"{"tolerations": [{"key": "a", "operator": "In"}]}"#, "field tolerations[0].operator"),
            (r#"{"driverMounts": "yes"}"#, "field driverMounts: invalid type"),
        ] {
            let err = PLUGIN.validate(&Request::validate_config().config_json(config).build()).unwrap_err();
            assert!(err.message().starts_with(message), "{}: {}", config, err.message());
        }
    }
}
