//! The typed HookRequest of docs/abi.md (ABI v2), with Kubernetes-shaped
//! views of the Pod, its role and the ModelServing.
//!
//! Decoding is lazy and zero-copy: the request is split into its top-level
//! parts once, and each part (the Pod, the ModelServing, the role, the config)
//! is deserialized (src/de.rs: serde over rmp's markers) the first time the plugin reads it, with its
//! strings borrowed from the request bytes (`&'static str`: the request lives
//! as long as the instance, which the host discards after the call). Keys this
//! SDK does not model are skipped without being decoded; absent ones and nil
//! read as their default, so a newer host's requests still decode.

use std::cell::RefCell;
use std::fmt;

use once_cell::unsync::OnceCell;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::config::{self, ConfigError};
use crate::value::{Map, Value};
use crate::wire;

/// A request string, borrowed from the request bytes.
pub type Str = &'static str;

/// `T` from a value that may be nil (Kubernetes JSON's `null`): nil reads as
/// `T::default()`, as an absent key does.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

thread_local! {
    /// The first part of this call's request that did not decode, from a
    /// [`Lazy`] view deep inside it (the views do not point back at their
    /// request). Reset by each `HookRequest::from_msgpack`.
    static PROBLEM: RefCell<Option<String>> = RefCell::new(None);
}

fn record_problem(what: &str, e: &dyn fmt::Display) {
    PROBLEM.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            *p = Some(format!("{}: {}", what, e));
        }
    });
}

/// A field of a view that is decoded when first read (`pod.spec()`,
/// `pod.status()`): a plugin that reads only a Pod's metadata does not pay
/// for its spec. Deserializes only from the SDK's own decoder.
pub struct Lazy<T> {
    what: &'static str,
    raw: &'static [u8],
    value: OnceCell<T>,
}

impl<T: Deserialize<'static> + Default> Lazy<T> {
    fn new(what: &'static str, raw: &'static [u8]) -> Self {
        Lazy { what, raw, value: OnceCell::new() }
    }

    /// The value, decoded now if it was not yet; one that does not decode
    /// reads as its default and is the call's error.
    pub fn get(&self) -> &T {
        self.value.get_or_init(|| match wire::decode::<Option<T>>(self.raw) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                record_problem(self.what, &e);
                T::default()
            }
        })
    }
}

impl<T: Deserialize<'static> + Default> Default for Lazy<T> {
    fn default() -> Self {
        Lazy::new("", EMPTY_MAP)
    }
}

impl<T: Clone> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Lazy { what: self.what, raw: self.raw, value: self.value.clone() }
    }
}

impl<T: fmt::Debug> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.get() {
            Some(v) => v.fmt(f),
            None => write!(f, "<{} bytes, not decoded>", self.raw.len()),
        }
    }
}

/// `Lazy<T>` named for its error messages (`pod.spec: ...`).
macro_rules! lazy_field {
    ($name:ident, $what:expr) => {
        fn $name<'de, D: Deserializer<'de>, T: Deserialize<'static> + Default>(d: D) -> Result<Lazy<T>, D::Error>
        where
            'de: 'static,
        {
            struct RawVisitor;
            impl<'de> serde::de::Visitor<'de> for RawVisitor {
                type Value = &'de [u8];
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a value")
                }
                fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<&'de [u8], E> {
                    Ok(v)
                }
            }
            let raw = d.deserialize_newtype_struct(crate::de::RAW, RawVisitor)?;
            Ok(Lazy::new($what, raw))
        }
    };
}
lazy_field!(lazy_pod_spec, "pod.spec");
lazy_field!(lazy_pod_status, "pod.status");

/// A part of the request, decoded on first use.
struct Part<T> {
    raw: &'static [u8],
    value: OnceCell<T>,
}

impl<T> Part<T> {
    fn new(raw: &'static [u8]) -> Self {
        Part { raw, value: OnceCell::new() }
    }
}

const EMPTY_MAP: &[u8] = &[0x80];

/// What the host sends to every hook.
pub struct HookRequest {
    abi: u32,
    hook: Str,
    plugin_name: Str,
    serving_group: Str,
    role_name: Str,
    role_id: Str,
    is_entry: bool,
    config: Part<Value>,
    model_serving: Part<ModelServing>,
    role: Part<Value>,
    pod: Part<Pod>,
    /// The first part that did not decode; the hook's answer becomes
    /// `{error: "invalid request: ..."}` whatever it returned.
    problem: RefCell<Option<String>>,
}

impl fmt::Debug for HookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookRequest").field("hook", &self.hook).field("plugin", &self.plugin_name).finish()
    }
}

fn scalar<T: Deserialize<'static> + Default>(key: &str, raw: &'static [u8]) -> Result<T, RequestError> {
    wire::decode::<Option<T>>(raw)
        .map(Option::unwrap_or_default)
        .map_err(|e| RequestError(format!("{}: {}", key, e)))
}

impl HookRequest {
    /// Splits a MessagePack request as the host sends it; the parts are
    /// decoded when first read. The bytes must outlive the request: in wasm
    /// they are the request the host wrote, alive until the instance goes.
    pub fn from_msgpack(bytes: &'static [u8]) -> Result<HookRequest, RequestError> {
        PROBLEM.with(|p| *p.borrow_mut() = None);
        let entries = wire::entries(bytes).map_err(|e| RequestError(e.to_string()))?;
        let mut req = HookRequest {
            abi: 0,
            hook: "",
            plugin_name: "",
            serving_group: "",
            role_name: "",
            role_id: "",
            is_entry: false,
            config: Part::new(EMPTY_MAP),
            model_serving: Part::new(EMPTY_MAP),
            role: Part::new(EMPTY_MAP),
            pod: Part::new(EMPTY_MAP),
            problem: RefCell::new(None),
        };
        for (key, raw) in entries {
            match key {
                "abi" => req.abi = scalar(key, raw)?,
                "hook" => req.hook = scalar(key, raw)?,
                "plugin" => {
                    if raw == [0xc0] {
                        continue;
                    }
                    let parts = wire::entries(raw).map_err(|e| RequestError(format!("plugin: {}", e)))?;
                    for (k, v) in parts {
                        match k {
                            "name" => req.plugin_name = scalar("plugin.name", v)?,
                            "config" if v != [0xc0] => req.config = Part::new(v),
                            _ => {}
                        }
                    }
                }
                "servingGroup" => req.serving_group = scalar(key, raw)?,
                "roleName" => req.role_name = scalar(key, raw)?,
                "roleID" => req.role_id = scalar(key, raw)?,
                "isEntry" => req.is_entry = scalar(key, raw)?,
                "modelServing" => req.model_serving = Part::new(raw),
                "role" => req.role = Part::new(raw),
                "pod" => req.pod = Part::new(raw),
                _ => {} // a newer host's key: ignored, never decoded
            }
        }
        Ok(req)
    }

    /// A part, decoded now if it was not yet; a part that does not decode
    /// reads as its default and is reported as the call's error.
    fn part<'a, T: Deserialize<'static> + Default>(&'a self, what: &str, part: &'a Part<T>) -> &'a T {
        part.value.get_or_init(|| match wire::decode::<Option<T>>(part.raw) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                let mut problem = self.problem.borrow_mut();
                if problem.is_none() {
                    *problem = Some(format!("{}: {}", what, e));
                }
                T::default()
            }
        })
    }

    /// Why a part of this request did not decode, if one did not.
    pub fn problem(&self) -> Option<RequestError> {
        if let Some(p) = self.problem.borrow().as_ref() {
            return Some(RequestError(p.clone()));
        }
        PROBLEM.with(|p| p.borrow().as_ref().map(|p| RequestError(p.clone())))
    }

    /// ABI version of the request (2; 1 from a host older than this SDK).
    pub fn abi(&self) -> u32 {
        self.abi
    }

    pub fn hook(&self) -> &str {
        self.hook
    }

    pub fn is_create(&self) -> bool {
        self.hook == "create"
    }

    pub fn is_ready(&self) -> bool {
        self.hook == "ready"
    }

    /// The plugin entry's name in `spec.plugins`.
    pub fn plugin_name(&self) -> &str {
        self.plugin_name
    }

    /// The plugin's config read into your type. Errors name the field:
    /// `field gpuCount: invalid type: string "8", expected u32`. Add
    /// `#[serde(deny_unknown_fields)]` to your type to refuse unknown keys.
    /// With `config: T` in `plugin!` the hooks receive it decoded once.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        config::from_msgpack(self.config.raw)
    }

    /// The config as sent, for plugins that read it by hand.
    pub fn config_value(&self) -> &Value {
        self.config.value.get_or_init(|| crate::de::from_slice(self.config.raw).unwrap_or_else(|_| Value::map()))
    }

    /// For `create` the Pod about to be created (as left by the plugins
    /// before this one); for `ready` the live Pod.
    pub fn pod(&self) -> &Pod {
        self.part("pod", &self.pod)
    }

    /// The ModelServing the Pod belongs to; in ABI v2 its roles come
    /// without their Pod templates (the Pod is its role's template rendered).
    pub fn model_serving(&self) -> &ModelServing {
        self.part("modelServing", &self.model_serving)
    }

    /// Serving group name (e.g. `llama-0`).
    pub fn serving_group(&self) -> &str {
        self.serving_group
    }

    pub fn role_name(&self) -> &str {
        self.role_name
    }

    pub fn role_id(&self) -> &str {
        self.role_id
    }

    /// Whether the Pod is its role's entry Pod (not a worker).
    pub fn is_entry(&self) -> bool {
        self.is_entry
    }

    /// This Pod's role (`spec.template.roles[]` named `roleName`, without
    /// its templates): the request's `role` (v2), else looked up in the
    /// ModelServing (v1 hosts). `None` when the ModelServing has no such role.
    pub fn role(&self) -> Option<&Value> {
        let role = self.part("role", &self.role);
        match role.as_map() {
            Some(m) if !m.is_empty() => Some(role),
            _ => self.model_serving().role(self.role_name),
        }
    }
}

/// A request that could not be decoded (malformed MessagePack or a field of
/// the wrong type); the SDK answers it with `{error: "invalid request: ..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub String);

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid request: {}", self.0)
    }
}

impl std::error::Error for RequestError {}

/// `metadata` of a Kubernetes object.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct ObjectMeta {
    #[serde(deserialize_with = "nullable")]
    pub name: Str,
    #[serde(deserialize_with = "nullable")]
    pub generate_name: Str,
    #[serde(deserialize_with = "nullable")]
    pub namespace: Str,
    #[serde(deserialize_with = "nullable")]
    pub uid: Str,
    #[serde(deserialize_with = "nullable")]
    pub generation: i64,
    #[serde(deserialize_with = "nullable")]
    pub labels: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub annotations: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<Value>,
}

impl ObjectMeta {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// The ModelServing the Pod belongs to: typed metadata, the spec as sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'static"))]
pub struct ModelServing {
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The whole ModelServing spec (Kthena `workload.serving.volcano.sh/v1alpha1`).
    pub spec: Value,
}

impl ModelServing {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    /// `spec.replicas` (serving groups).
    pub fn replicas(&self) -> Option<i64> {
        self.spec.get("replicas").and_then(Value::as_i64)
    }

    /// `spec.schedulerName`.
    pub fn scheduler_name(&self) -> Option<&str> {
        self.spec.get("schedulerName").and_then(Value::as_str)
    }

    /// `spec.template.roles[]`.
    pub fn roles(&self) -> impl Iterator<Item = &Value> {
        self.spec.pointer("template/roles").and_then(Value::as_array).into_iter().flatten()
    }

    /// The role named `name` in `spec.template.roles[]`.
    pub fn role(&self, name: &str) -> Option<&Value> {
        self.roles().find(|r| r.get("name").and_then(Value::as_str) == Some(name))
    }

    /// A spec field by `/`-separated path, e.g. `spec("template/roles/0/replicas")`.
    pub fn spec(&self, path: &str) -> Option<&Value> {
        self.spec.pointer(path)
    }
}

/// A Pod (`v1`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct Pod {
    #[serde(deserialize_with = "nullable")]
    pub api_version: Str,
    #[serde(deserialize_with = "nullable")]
    pub kind: Str,
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Decoded when first read: [`Pod::spec`].
    #[serde(deserialize_with = "lazy_pod_spec")]
    spec: Lazy<PodSpec>,
    /// Present on the ready hook's live Pod; decoded when first read: [`Pod::status`].
    #[serde(deserialize_with = "lazy_pod_status")]
    status: Lazy<PodStatus>,
}

impl Pod {
    /// `spec`, decoded the first time it is read.
    pub fn spec(&self) -> &PodSpec {
        self.spec.get()
    }

    /// `status` (the ready hook's live Pod), decoded the first time it is read.
    pub fn status(&self) -> &PodStatus {
        self.status.get()
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.label(key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotation(key)
    }

    /// `spec.containers` (never the init containers).
    pub fn containers(&self) -> &[Container] {
        &self.spec().containers
    }

    /// The container of `spec.containers` named `name`.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.spec().containers.iter().find(|c| c.name == name)
    }

    /// The first container: by Kthena's convention the serving container.
    pub fn main_container(&self) -> Option<&Container> {
        self.spec().containers.first()
    }

    pub fn init_container(&self, name: &str) -> Option<&Container> {
        self.spec().init_containers.iter().find(|c| c.name == name)
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.spec().volumes.iter().find(|v| v.name == name)
    }

    pub fn node_selector(&self, key: &str) -> Option<&str> {
        self.spec().node_selector.get(key).map(String::as_str)
    }

    /// Whether one of the Pod's tolerations covers every taint `key:effect`,
    /// whatever its value (see [`Toleration::tolerates`]).
    pub fn tolerates(&self, key: &str, effect: &str) -> bool {
        self.spec().tolerations.iter().any(|t| t.tolerates(key, effect))
    }

    /// The containers a plugin acts on: with `names`, those of
    /// `spec.containers` named there, in Pod order (entry and worker
    /// templates may name their containers differently, so an absent name is
    /// skipped); without, the first container, the serving container by
    /// Kthena's convention (sidecars are never picked unless named). Finding
    /// none is an error naming the Pod's containers.
    pub fn select_containers(&self, names: Option<&[String]>) -> Result<Vec<&Container>, crate::Error> {
        let all = self.containers();
        let picked: Vec<&Container> = match names {
            None => all.iter().take(1).collect(),
            Some(names) => all.iter().filter(|c| names.iter().any(|n| n == c.name)).collect(),
        };
        if picked.is_empty() {
            let have: Vec<&str> = all.iter().map(|c| c.name).collect();
            return Err(match names {
                None => crate::Error::new(format!("Pod {} has no containers", self.name())),
                Some(names) => crate::Error::new(format!(
                    "none of the containers {:?} is in Pod {} (it has {:?})",
                    names,
                    self.name(),
                    have
                )),
            });
        }
        Ok(picked)
    }

    /// Whether the Pod's `Ready` condition is `True` (ready hook).
    pub fn is_ready(&self) -> bool {
        self.status().conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct PodSpec {
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<Container>,
    #[serde(deserialize_with = "nullable")]
    pub volumes: Vec<Volume>,
    #[serde(deserialize_with = "nullable")]
    pub node_selector: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub tolerations: Vec<Toleration>,
    /// `spec.affinity` as sent.
    pub affinity: Value,
    pub runtime_class_name: Option<Str>,
    pub scheduler_name: Option<Str>,
    pub priority_class_name: Option<Str>,
    pub service_account_name: Option<Str>,
    pub hostname: Option<Str>,
    pub subdomain: Option<Str>,
    #[serde(deserialize_with = "nullable")]
    pub host_network: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct PodStatus {
    #[serde(deserialize_with = "nullable")]
    pub phase: Str,
    #[serde(rename = "podIP")]
    #[serde(deserialize_with = "nullable")]
    pub pod_ip: Str,
    #[serde(rename = "hostIP")]
    #[serde(deserialize_with = "nullable")]
    pub host_ip: Str,
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<PodCondition>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'static"))]
pub struct PodCondition {
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub type_: Str,
    #[serde(deserialize_with = "nullable")]
    pub status: Str,
}

/// A container of `spec.containers` or `spec.initContainers`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct Container {
    #[serde(deserialize_with = "nullable")]
    pub name: Str,
    #[serde(deserialize_with = "nullable")]
    pub image: Str,
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<Str>,
    #[serde(deserialize_with = "nullable")]
    pub args: Vec<Str>,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: Str,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<EnvVar>,
    #[serde(deserialize_with = "nullable")]
    pub resources: ResourceRequirements,
    #[serde(deserialize_with = "nullable")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
    /// `securityContext` as sent.
    pub security_context: Value,
}

impl Container {
    /// The literal value of env var `name` (`None` when absent or `valueFrom`).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env_var(name).and_then(|e| e.value)
    }

    pub fn env_var(&self, name: &str) -> Option<&EnvVar> {
        self.env.iter().find(|e| e.name == name)
    }

    pub fn has_env(&self, name: &str) -> bool {
        self.env_var(name).is_some()
    }

    /// `resources.limits[name]`, e.g. `limit("nvidia.com/gpu")`.
    pub fn limit(&self, name: &str) -> Option<&Quantity> {
        self.resources.limits.get(name)
    }

    /// `resources.requests[name]`.
    pub fn request(&self, name: &str) -> Option<&Quantity> {
        self.resources.requests.get(name)
    }

    /// The mount at `mount_path`.
    pub fn volume_mount(&self, mount_path: &str) -> Option<&VolumeMount> {
        self.volume_mounts.iter().find(|m| m.mount_path == mount_path)
    }

    /// Whether something is mounted at `mount_path`.
    pub fn mounts_at(&self, mount_path: &str) -> bool {
        self.volume_mount(mount_path).is_some()
    }

    pub fn port(&self, name: &str) -> Option<&ContainerPort> {
        self.ports.iter().find(|p| p.name == Some(name))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct EnvVar {
    #[serde(deserialize_with = "nullable")]
    pub name: Str,
    pub value: Option<Str>,
    /// `valueFrom` as sent (`{fieldRef: ...}`, `{resourceFieldRef: ...}`, ...).
    pub value_from: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'static"))]
pub struct ResourceRequirements {
    #[serde(deserialize_with = "nullable")]
    pub limits: StringMap<Quantity>,
    #[serde(deserialize_with = "nullable")]
    pub requests: StringMap<Quantity>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct VolumeMount {
    #[serde(deserialize_with = "nullable")]
    pub name: Str,
    #[serde(deserialize_with = "nullable")]
    pub mount_path: Str,
    #[serde(deserialize_with = "nullable")]
    pub read_only: bool,
    pub sub_path: Option<Str>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'static"))]
pub struct ContainerPort {
    pub name: Option<Str>,
    #[serde(deserialize_with = "nullable")]
    pub container_port: i32,
    pub protocol: Option<Str>,
}

/// A Pod volume: its name, and the whole object as sent (the source kinds
/// are many and a plugin mostly checks for presence).
#[derive(Clone, Debug, Default)]
pub struct Volume {
    pub name: String,
    pub raw: Value,
}

impl Volume {
    /// A field of the volume, e.g. `get("emptyDir")`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }
}

impl<'de> Deserialize<'de> for Volume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Volume, D::Error> {
        let raw = Value::deserialize(d)?;
        let name = raw.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Volume { name, raw })
    }
}

/// A Kubernetes Toleration: read from requests, and built for
/// [`Mutations::add_toleration`](crate::Mutations::add_toleration):
/// `Toleration::exists("nvidia.com/gpu").effect("NoSchedule")`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Toleration {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub value: Option<String>,
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// `operator: Exists` on `key`.
    pub fn exists(key: impl Into<String>) -> Self {
        Toleration { key: Some(key.into()), operator: Some("Exists".into()), ..Default::default() }
    }

    /// `operator: Equal`, `key` = `value`.
    pub fn equal(key: impl Into<String>, value: impl Into<String>) -> Self {
        Toleration {
            key: Some(key.into()),
            operator: Some("Equal".into()),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub fn effect(mut self, effect: impl Into<String>) -> Self {
        self.effect = Some(effect.into());
        self
    }

    pub fn seconds(mut self, seconds: i64) -> Self {
        self.toleration_seconds = Some(seconds);
        self
    }

    /// Whether this toleration covers every taint `key:effect` whatever the
    /// taint's value: `Exists` on `key` or on every key (no key), with
    /// `effect` or no effect (every effect). An `Equal` toleration matches one
    /// value only and so does not count.
    ///
    /// ```
    /// use podplug_sdk::Toleration;
    /// assert!(Toleration::exists("nvidia.com/gpu").tolerates("nvidia.com/gpu", "NoSchedule"));
    /// assert!(!Toleration::equal("nvidia.com/gpu", "present").tolerates("nvidia.com/gpu", "NoSchedule"));
    /// ```
    pub fn tolerates(&self, key: &str, effect: &str) -> bool {
        let key_ok = match self.key.as_deref() {
            None | Some("") => true,
            Some(k) => k == key,
        };
        let effect_ok = match self.effect.as_deref() {
            None | Some("") => true,
            Some(e) => e == effect,
        };
        self.operator.as_deref() == Some("Exists") && key_ok && effect_ok
    }
}

impl From<Toleration> for Value {
    /// Kubernetes field order, absent fields omitted.
    fn from(t: Toleration) -> Value {
        let mut m = Map::new();
        let fields = [("key", t.key), ("operator", t.operator), ("value", t.value), ("effect", t.effect)];
        for (k, v) in fields {
            if let Some(v) = v {
                m.push(k, v);
            }
        }
        if let Some(s) = t.toleration_seconds {
            m.push("tolerationSeconds", s);
        }
        Value::Map(m)
    }
}

/// A resource quantity (`"8"`, `"64Gi"`, `"500m"`), kept as its text.
/// Integers in a request are accepted and read as their decimal text.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(pub String);

impl Quantity {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The quantity as a plain integer (`"8"` -> 8); `None` for `"64Gi"`, `"500m"`.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Quantity {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity(s.to_string())
    }
}

impl From<String> for Quantity {
    fn from(s: String) -> Self {
        Quantity(s)
    }
}

impl From<&Quantity> for Quantity {
    fn from(q: &Quantity) -> Self {
        q.clone()
    }
}

macro_rules! quantity_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Quantity {
            fn from(n: $t) -> Self {
                Quantity(n.to_string())
            }
        }
    )*};
}
quantity_from_int!(i32, i64, u32, u64, usize);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
        match Value::deserialize(d)? {
            Value::Str(s) => Ok(Quantity(s)),
            Value::Int(i) => Ok(Quantity(i.to_string())),
            Value::UInt(u) => Ok(Quantity(u.to_string())),
            // Integral floats only: printing any float would link core's
            // float formatting into every plugin.
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
                Ok(Quantity((f as i64).to_string()))
            }
            other => Err(serde::de::Error::custom(format_args!(
                "invalid type: {}, expected a quantity",
                other.type_name()
            ))),
        }
    }
}

/// A string-to-string map (labels, annotations, nodeSelector) in the order
/// the host sent it. Backed by a list: these maps are small, and appending is
/// far cheaper in fuel than a tree when a Pod carries thousands of labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringMap<V = String> {
    entries: Vec<(String, V)>,
}

impl<V> StringMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

impl<V> std::ops::Index<&str> for StringMap<V> {
    type Output = V;
    fn index(&self, key: &str) -> &V {
        self.get(key).unwrap_or_else(|| panic!("no key {:?}", key))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for StringMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for V_<V> {
            type Value = StringMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StringMap<V>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(e) = map.next_entry::<String, V>()? {
                    entries.push(e);
                }
                Ok(StringMap { entries })
            }
        }
        d.deserialize_map(V_(std::marker::PhantomData))
    }
}
