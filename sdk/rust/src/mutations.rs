//! The `Mutations` builder: one named method per operation of docs/abi.md,
//! each encoding its fields in the canonical order the spec lists, with
//! absent optional fields omitted.

use std::fmt;

use crate::request::{Pod, Quantity, Toleration};
use crate::value::{Map, Value};

// One list gives both the runtime table and the names `plugin!`'s
// `mutations: [...]` key resolves at compile time (a typo is "cannot find
// value `setLable`", with rustc suggesting `setLabel`).
macro_rules! ops_table {
    ($($op:ident),* $(,)?) => {
        /// Every op of ABI v1, in the spec's order.
        pub const OPS: &[&str] = &[$(stringify!($op)),*];

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        pub mod __ops {
            $(pub const $op: &str = stringify!($op);)*
        }
    };
}

ops_table!(
    setLabel, removeLabel, setAnnotation, removeAnnotation, setEnv, removeEnv, appendEnv,
    setResource, removeResource, addVolume, removeVolume, addVolumeMount, removeVolumeMount, setNodeSelector,
    removeNodeSelector, addToleration, addNodeAffinityRequirement, addPreferredNodeAffinity,
    setRuntimeClassName, setSchedulerName, setPriorityClassName, addContainer, addInitContainer,
    setArgs, addCapabilities,
);

/// One operation: a map whose first key is `op`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation(Map);

impl Mutation {
    fn new(op: &'static str) -> Self {
        let mut m = Map::with_capacity(5);
        m.push("op", op);
        Mutation(m)
    }

    fn field(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.0.push(key, value);
        self
    }

    fn container(self, container: Option<String>) -> Self {
        match container {
            Some(c) => self.field("container", c),
            None => self,
        }
    }

    /// The op name, e.g. `setLabel`.
    pub fn op(&self) -> &str {
        self.0.get("op").and_then(Value::as_str).unwrap_or_default()
    }

    /// A field of the op, e.g. `get("key")`.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    pub fn to_value(&self) -> Value {
        Value::Map(self.0.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Map(self.0)
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::Map(self.0.clone()))
    }
}

/// `limits` or `requests` of a container's `resources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Limits,
    Requests,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Limits => "limits",
            ResourceKind::Requests => "requests",
        }
    }

    /// `"limits"` or `"requests"`.
    pub fn parse(s: &str) -> Option<ResourceKind> {
        match s {
            "limits" => Some(ResourceKind::Limits),
            "requests" => Some(ResourceKind::Requests),
            _ => None,
        }
    }
}

/// Where an env var's value comes from (`valueFrom`).
/// `EnvSource::field("status.podIP")`, `EnvSource::resource("limits.cpu").divisor("1m")`,
/// or any `valueFrom` object as a [`Value`].
#[derive(Clone, Debug, PartialEq)]
pub enum EnvSource {
    Field(String),
    Resource { container_name: Option<String>, resource: String, divisor: Option<String> },
    Raw(Value),
}

impl EnvSource {
    /// `{fieldRef: {fieldPath}}`.
    pub fn field(path: impl Into<String>) -> Self {
        EnvSource::Field(path.into())
    }

    /// `{resourceFieldRef: {resource}}`.
    pub fn resource(resource: impl Into<String>) -> Self {
        EnvSource::Resource { container_name: None, resource: resource.into(), divisor: None }
    }

    /// Sets `containerName` of a resource source.
    pub fn container_name(mut self, name: impl Into<String>) -> Self {
        if let EnvSource::Resource { container_name, .. } = &mut self {
            *container_name = Some(name.into());
        }
        self
    }

    /// Sets `divisor` of a resource source.
    pub fn divisor(mut self, d: impl Into<String>) -> Self {
        if let EnvSource::Resource { divisor, .. } = &mut self {
            *divisor = Some(d.into());
        }
        self
    }
}

impl From<Value> for EnvSource {
    fn from(v: Value) -> Self {
        EnvSource::Raw(v)
    }
}

impl From<EnvSource> for Value {
    fn from(s: EnvSource) -> Value {
        match s {
            EnvSource::Field(path) => crate::map! { "fieldRef" => crate::map! { "fieldPath" => path } },
            EnvSource::Resource { container_name, resource, divisor } => {
                let mut r = Map::new();
                if let Some(c) = container_name {
                    r.push("containerName", c);
                }
                r.push("resource", resource);
                if let Some(d) = divisor {
                    r.push("divisor", d);
                }
                crate::map! { "resourceFieldRef" => r }
            }
            EnvSource::Raw(v) => v,
        }
    }
}

/// A NodeSelectorRequirement (`{key, operator, values?}`) for
/// [`Mutations::add_node_affinity_requirement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRequirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl NodeRequirement {
    pub fn new<I, S>(key: impl Into<String>, operator: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NodeRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The node label `key` has one of `values`.
    pub fn in_<I: IntoIterator<Item = S>, S: Into<String>>(key: impl Into<String>, values: I) -> Self {
        Self::new(key, "In", values)
    }

    pub fn not_in<I: IntoIterator<Item = S>, S: Into<String>>(key: impl Into<String>, values: I) -> Self {
        Self::new(key, "NotIn", values)
    }

    /// The node has the label `key`.
    pub fn exists(key: impl Into<String>) -> Self {
        Self::new(key, "Exists", Vec::<String>::new())
    }

    pub fn does_not_exist(key: impl Into<String>) -> Self {
        Self::new(key, "DoesNotExist", Vec::<String>::new())
    }
}

impl From<NodeRequirement> for Value {
    /// `values` is omitted when empty (Exists / DoesNotExist take none).
    fn from(r: NodeRequirement) -> Value {
        let mut m = Map::new();
        m.push("key", r.key);
        m.push("operator", r.operator);
        if !r.values.is_empty() {
            m.push("values", r.values);
        }
        Value::Map(m)
    }
}

/// Which containers an env op reaches: `container` (None: every one) of
/// spec.containers, or of spec.initContainers when `init`.
struct Target {
    container: Option<String>,
    init: bool,
}

impl Target {
    const ALL: Target = Target { container: None, init: false };
    const ALL_INIT: Target = Target { container: None, init: true };

    fn one(container: impl Into<String>) -> Target {
        Target { container: Some(container.into()), init: false }
    }

    fn one_init(container: impl Into<String>) -> Target {
        Target { container: Some(container.into()), init: true }
    }
}

impl serde::Serialize for Mutations {
    /// An array of op maps, each in the canonical field order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ops.iter().map(|m| &m.0))
    }
}

impl Mutations {
    /// Appends the canonical encoding: an array of op maps (as `Serialize`
    /// writes it, without serde's dispatch).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let ok = rmp::encode::write_array_len(out, self.ops.len() as u32).is_ok();
        debug_assert!(ok, "encoding to memory");
        for op in &self.ops {
            op.0.encode_into(out);
        }
    }
}

/// The list of operations a hook returns, in the order they are applied.
///
/// ```
/// use podplug_sdk::{Mutations, Toleration};
/// let mut m = Mutations::new();
/// m.set_label("example.com/team", "ml")
///     .set_resource_limit_in("main", "nvidia.com/gpu", 8)
///     .add_toleration(Toleration::exists("nvidia.com/gpu").effect("NoSchedule"));
/// assert_eq!(m.len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mutations {
    ops: Vec<Mutation>,
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
    Value::Array(items.into_iter().map(|s| Value::Str(s.into())).collect())
}

impl Mutations {
    pub fn new() -> Self {
        Mutations { ops: Vec::new() }
    }

    fn push(&mut self, m: Mutation) -> &mut Self {
        self.ops.push(m);
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[Mutation] {
        &self.ops
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Mutation> {
        self.ops.iter()
    }

    /// Appends another builder's ops after these.
    pub fn extend(&mut self, other: Mutations) -> &mut Self {
        self.ops.extend(other.ops);
        self
    }

    /// The ops as a MessagePack-ready array.
    pub fn to_value(&self) -> Value {
        Value::Array(self.ops.iter().map(Mutation::to_value).collect())
    }

    // -- labels and annotations (the only ops a ready hook may use)

    /// `setLabel`: `metadata.labels[key] = value`.
    pub fn set_label(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setLabel").field("key", key.into()).field("value", value.into()))
    }

    /// `removeLabel`.
    pub fn remove_label(&mut self, key: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeLabel").field("key", key.into()))
    }

    /// `setAnnotation`.
    pub fn set_annotation(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setAnnotation").field("key", key.into()).field("value", value.into()))
    }

    /// `removeAnnotation`.
    pub fn remove_annotation(&mut self, key: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeAnnotation").field("key", key.into()))
    }

    // -- env. Methods without `_in` apply to every container of spec.containers;
    // `_init_` ones to spec.initContainers (`initContainers: true`), `_in` naming one.

    // setEnv of spec.containers, the op most plugins use, kept apart from
    // env_op: routing it through env_op grew the shipped Rust plugins by ~350 bytes.
    fn env(&mut self, container: Option<String>, name: String, value: Option<String>, from: Option<Value>) -> &mut Self {
        let mut m = Mutation::new("setEnv").container(container).field("name", name);
        if let Some(v) = value {
            m = m.field("value", v);
        }
        if let Some(f) = from {
            m = m.field("valueFrom", f);
        }
        self.push(m)
    }

    fn env_op(&mut self, op: &'static str, t: Target, name: String, value: Option<String>, from: Option<Value>) -> &mut Self {
        let mut m = Mutation::new(op).container(t.container);
        if t.init {
            m = m.field("initContainers", true);
        }
        m = m.field("name", name);
        if let Some(v) = value {
            m = m.field("value", v);
        }
        if let Some(f) = from {
            m = m.field("valueFrom", f);
        }
        self.push(m)
    }

    /// `setEnv` with a literal value, in every container.
    pub fn set_env(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env(None, name.into(), Some(value.into()), None)
    }

    /// `setEnv` with a literal value, in `container`.
    pub fn set_env_in(&mut self, container: impl Into<String>, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env(Some(container.into()), name.into(), Some(value.into()), None)
    }

    /// `setEnv` with `valueFrom`, in every container.
    pub fn set_env_from(&mut self, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env(None, name.into(), None, Some(source.into().into()))
    }

    /// `setEnv` with `valueFrom`, in `container`.
    pub fn set_env_from_in(&mut self, container: impl Into<String>, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env(Some(container.into()), name.into(), None, Some(source.into().into()))
    }

    /// `setEnv` from a Pod field (`status.podIP`, `metadata.name`, ...), in every container.
    pub fn set_env_from_field(&mut self, name: impl Into<String>, field_path: impl Into<String>) -> &mut Self {
        self.set_env_from(name, EnvSource::field(field_path))
    }

    /// `setEnv` from a Pod field, in `container`.
    pub fn set_env_from_field_in(&mut self, container: impl Into<String>, name: impl Into<String>, field_path: impl Into<String>) -> &mut Self {
        self.set_env_from_in(container, name, EnvSource::field(field_path))
    }

    /// `removeEnv`, in every container.
    pub fn remove_env(&mut self, name: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeEnv").field("name", name.into()))
    }

    /// `removeEnv`, in `container`.
    pub fn remove_env_in(&mut self, container: impl Into<String>, name: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeEnv").container(Some(container.into())).field("name", name.into()))
    }

    /// `appendEnv` with a literal value, in every container: added after the
    /// container's env even when it has `name` already (Kubernetes uses the last).
    pub fn append_env(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("appendEnv", Target::ALL, name.into(), Some(value.into()), None)
    }

    /// `appendEnv` with a literal value, in `container`.
    pub fn append_env_in(&mut self, container: impl Into<String>, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("appendEnv", Target::one(container), name.into(), Some(value.into()), None)
    }

    /// `appendEnv` with `valueFrom`, in every container.
    pub fn append_env_from(&mut self, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("appendEnv", Target::ALL, name.into(), None, Some(source.into().into()))
    }

    /// `appendEnv` with `valueFrom`, in `container`.
    pub fn append_env_from_in(&mut self, container: impl Into<String>, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("appendEnv", Target::one(container), name.into(), None, Some(source.into().into()))
    }

    // -- env of init containers (`initContainers: true`): the same ops, on
    // spec.initContainers; `_in` names an init container.

    /// `setEnv` with a literal value, in every init container.
    pub fn set_init_env(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("setEnv", Target::ALL_INIT, name.into(), Some(value.into()), None)
    }

    /// `setEnv` with a literal value, in init container `container`.
    pub fn set_init_env_in(&mut self, container: impl Into<String>, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("setEnv", Target::one_init(container), name.into(), Some(value.into()), None)
    }

    /// `setEnv` with `valueFrom`, in every init container.
    pub fn set_init_env_from(&mut self, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("setEnv", Target::ALL_INIT, name.into(), None, Some(source.into().into()))
    }

    /// `setEnv` with `valueFrom`, in init container `container`.
    pub fn set_init_env_from_in(&mut self, container: impl Into<String>, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("setEnv", Target::one_init(container), name.into(), None, Some(source.into().into()))
    }

    /// `appendEnv` with a literal value, in every init container.
    pub fn append_init_env(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("appendEnv", Target::ALL_INIT, name.into(), Some(value.into()), None)
    }

    /// `appendEnv` with a literal value, in init container `container`.
    pub fn append_init_env_in(&mut self, container: impl Into<String>, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env_op("appendEnv", Target::one_init(container), name.into(), Some(value.into()), None)
    }

    /// `appendEnv` with `valueFrom`, in every init container.
    pub fn append_init_env_from(&mut self, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("appendEnv", Target::ALL_INIT, name.into(), None, Some(source.into().into()))
    }

    /// `appendEnv` with `valueFrom`, in init container `container`.
    pub fn append_init_env_from_in(&mut self, container: impl Into<String>, name: impl Into<String>, source: impl Into<EnvSource>) -> &mut Self {
        self.env_op("appendEnv", Target::one_init(container), name.into(), None, Some(source.into().into()))
    }

    /// `removeEnv`, in every init container.
    pub fn remove_init_env(&mut self, name: impl Into<String>) -> &mut Self {
        self.env_op("removeEnv", Target::ALL_INIT, name.into(), None, None)
    }

    /// `removeEnv`, in init container `container`.
    pub fn remove_init_env_in(&mut self, container: impl Into<String>, name: impl Into<String>) -> &mut Self {
        self.env_op("removeEnv", Target::one_init(container), name.into(), None, None)
    }

    // -- resources

    fn resource(&mut self, container: Option<String>, kind: ResourceKind, name: String, q: Quantity) -> &mut Self {
        self.push(
            Mutation::new("setResource")
                .container(container)
                .field("kind", kind.as_str())
                .field("name", name)
                .field("quantity", q.0),
        )
    }

    /// `setResource`: `resources[kind][name] = quantity`, in every container.
    pub fn set_resource(&mut self, kind: ResourceKind, name: impl Into<String>, quantity: impl Into<Quantity>) -> &mut Self {
        self.resource(None, kind, name.into(), quantity.into())
    }

    /// `setResource` in `container`.
    pub fn set_resource_in(
        &mut self,
        container: impl Into<String>,
        kind: ResourceKind,
        name: impl Into<String>,
        quantity: impl Into<Quantity>,
    ) -> &mut Self {
        self.resource(Some(container.into()), kind, name.into(), quantity.into())
    }

    /// `setResource` of `limits`, in every container: `set_resource_limit("nvidia.com/gpu", 8)`.
    pub fn set_resource_limit(&mut self, name: impl Into<String>, quantity: impl Into<Quantity>) -> &mut Self {
        self.resource(None, ResourceKind::Limits, name.into(), quantity.into())
    }

    /// `setResource` of `limits`, in `container`.
    pub fn set_resource_limit_in(&mut self, container: impl Into<String>, name: impl Into<String>, quantity: impl Into<Quantity>) -> &mut Self {
        self.resource(Some(container.into()), ResourceKind::Limits, name.into(), quantity.into())
    }

    /// `setResource` of `requests`, in every container.
    pub fn set_resource_request(&mut self, name: impl Into<String>, quantity: impl Into<Quantity>) -> &mut Self {
        self.resource(None, ResourceKind::Requests, name.into(), quantity.into())
    }

    /// `setResource` of `requests`, in `container`.
    pub fn set_resource_request_in(&mut self, container: impl Into<String>, name: impl Into<String>, quantity: impl Into<Quantity>) -> &mut Self {
        self.resource(Some(container.into()), ResourceKind::Requests, name.into(), quantity.into())
    }

    /// `removeResource`, in every container.
    pub fn remove_resource(&mut self, kind: ResourceKind, name: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeResource").field("kind", kind.as_str()).field("name", name.into()))
    }

    /// `removeResource`, in `container`.
    pub fn remove_resource_in(&mut self, container: impl Into<String>, kind: ResourceKind, name: impl Into<String>) -> &mut Self {
        self.push(
            Mutation::new("removeResource")
                .container(Some(container.into()))
                .field("kind", kind.as_str())
                .field("name", name.into()),
        )
    }

    // -- volumes and mounts

    /// `addVolume` with any Kubernetes Volume (`map!{...}` or a [`Value`]),
    /// replacing a volume of the same name. `hostPath` volumes need the
    /// `hostPath` grant.
    pub fn add_volume(&mut self, volume: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addVolume").field("volume", volume.into()))
    }

    /// `addVolume` of `{name, emptyDir: {}}`.
    pub fn add_empty_dir(&mut self, name: impl Into<String>) -> &mut Self {
        self.add_volume(crate::map! { "name" => name.into(), "emptyDir" => crate::map! {} })
    }

    /// `addVolume` of a memory-backed emptyDir (`/dev/shm` for NCCL and PyTorch):
    /// `{name, emptyDir: {medium: Memory, sizeLimit?}}`.
    pub fn add_memory_empty_dir(&mut self, name: impl Into<String>, size_limit: Option<&str>) -> &mut Self {
        let mut dir = Map::new();
        dir.push("medium", "Memory");
        if let Some(s) = size_limit {
            dir.push("sizeLimit", s);
        }
        self.add_volume(crate::map! { "name" => name.into(), "emptyDir" => dir })
    }

    /// `addVolume` of `{name, configMap: {name: config_map}}`.
    pub fn add_config_map_volume(&mut self, name: impl Into<String>, config_map: impl Into<String>) -> &mut Self {
        self.add_volume(crate::map! { "name" => name.into(), "configMap" => crate::map! { "name" => config_map.into() } })
    }

    /// `removeVolume`: the volume and every mount of it.
    pub fn remove_volume(&mut self, name: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeVolume").field("name", name.into()))
    }

    /// `addVolumeMount` with any VolumeMount, in every container.
    pub fn add_volume_mount(&mut self, mount: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addVolumeMount").field("mount", mount.into()))
    }

    /// `addVolumeMount`, in `container`.
    pub fn add_volume_mount_in(&mut self, container: impl Into<String>, mount: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addVolumeMount").container(Some(container.into())).field("mount", mount.into()))
    }

    /// `addVolumeMount` of `{name: volume, mountPath}`, in every container.
    pub fn mount_volume(&mut self, volume: impl Into<String>, mount_path: impl Into<String>) -> &mut Self {
        self.add_volume_mount(crate::map! { "name" => volume.into(), "mountPath" => mount_path.into() })
    }

    /// `addVolumeMount` of `{name: volume, mountPath}`, in `container`.
    pub fn mount_volume_in(&mut self, container: impl Into<String>, volume: impl Into<String>, mount_path: impl Into<String>) -> &mut Self {
        self.add_volume_mount_in(container, crate::map! { "name" => volume.into(), "mountPath" => mount_path.into() })
    }

    /// `removeVolumeMount` at `mount_path`, in every container.
    pub fn remove_volume_mount(&mut self, mount_path: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeVolumeMount").field("mountPath", mount_path.into()))
    }

    /// `removeVolumeMount`, in `container`.
    pub fn remove_volume_mount_in(&mut self, container: impl Into<String>, mount_path: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeVolumeMount").container(Some(container.into())).field("mountPath", mount_path.into()))
    }

    // -- scheduling

    /// `setNodeSelector`.
    pub fn set_node_selector(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setNodeSelector").field("key", key.into()).field("value", value.into()))
    }

    /// `removeNodeSelector`.
    pub fn remove_node_selector(&mut self, key: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("removeNodeSelector").field("key", key.into()))
    }

    /// `addToleration`: a [`Toleration`](crate::Toleration) or any Toleration object.
    pub fn add_toleration(&mut self, toleration: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addToleration").field("toleration", toleration.into()))
    }

    /// `addToleration` of `Exists` on `key` with effect `NoSchedule` unless
    /// the Pod tolerates every `key:NoSchedule` taint already
    /// ([`Pod::tolerates`]): what Kubernetes' ExtendedResourceToleration
    /// admission plugin adds for an extended resource's taint.
    pub fn tolerate(&mut self, pod: &Pod, key: &str) -> &mut Self {
        if !pod.tolerates(key, "NoSchedule") {
            self.add_toleration(Toleration::exists(key).effect("NoSchedule"));
        }
        self
    }

    /// `addNodeAffinityRequirement`: AND a [`NodeRequirement`] (or any
    /// NodeSelectorRequirement object) into every required node-affinity term.
    pub fn add_node_affinity_requirement(&mut self, expression: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addNodeAffinityRequirement").field("expression", expression.into()))
    }

    /// `addPreferredNodeAffinity`: `weight` 1-100, `preference` a NodeSelectorTerm.
    pub fn add_preferred_node_affinity(&mut self, weight: i64, preference: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addPreferredNodeAffinity").field("weight", weight).field("preference", preference.into()))
    }

    /// `setRuntimeClassName`.
    pub fn set_runtime_class_name(&mut self, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setRuntimeClassName").field("value", value.into()))
    }

    /// `setSchedulerName`.
    pub fn set_scheduler_name(&mut self, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setSchedulerName").field("value", value.into()))
    }

    /// `setPriorityClassName`.
    pub fn set_priority_class_name(&mut self, value: impl Into<String>) -> &mut Self {
        self.push(Mutation::new("setPriorityClassName").field("value", value.into()))
    }

    // -- gated: each needs a grant in the operator's policy

    /// `addContainer` (gated: `sidecars`): any Kubernetes Container object.
    pub fn add_container(&mut self, container: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addContainer").field("container", container.into()))
    }

    /// `addInitContainer` (gated: `initContainers`).
    pub fn add_init_container(&mut self, container: impl Into<Value>) -> &mut Self {
        self.push(Mutation::new("addInitContainer").field("container", container.into()))
    }

    /// `setArgs` (gated: `args`), in every container.
    pub fn set_args<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Self {
        self.push(Mutation::new("setArgs").field("args", strings(args)))
    }

    /// `setArgs` (gated: `args`), in `container`.
    pub fn set_args_in<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, container: impl Into<String>, args: I) -> &mut Self {
        self.push(Mutation::new("setArgs").container(Some(container.into())).field("args", strings(args)))
    }

    /// `addCapabilities` (gated: `capabilities`), in every container.
    pub fn add_capabilities<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, capabilities: I) -> &mut Self {
        self.push(Mutation::new("addCapabilities").field("capabilities", strings(capabilities)))
    }

    /// `addCapabilities` (gated: `capabilities`), in `container`.
    pub fn add_capabilities_in<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, container: impl Into<String>, capabilities: I) -> &mut Self {
        self.push(Mutation::new("addCapabilities").container(Some(container.into())).field("capabilities", strings(capabilities)))
    }
}

impl<'a> IntoIterator for &'a Mutations {
    type Item = &'a Mutation;
    type IntoIter = std::slice::Iter<'a, Mutation>;
    fn into_iter(self) -> Self::IntoIter {
        self.ops.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{list, map, Toleration};

    fn only(m: &Mutations) -> Value {
        assert_eq!(m.len(), 1);
        m.ops()[0].to_value()
    }

    #[test]
    fn container_is_the_first_field_after_op_and_absent_for_all_containers() {
        let mut m = Mutations::new();
        m.set_env_in("main", "A", "b");
        assert_eq!(only(&m), map! { "op" => "setEnv", "container" => "main", "name" => "A", "value" => "b" });
        let mut m = Mutations::new();
        m.set_resource_limit("nvidia.com/gpu", 8);
        assert_eq!(only(&m), map! { "op" => "setResource", "kind" => "limits", "name" => "nvidia.com/gpu", "quantity" => "8" });
    }

    #[test]
    fn env_sources_encode_in_kubernetes_field_order() {
        let mut m = Mutations::new();
        m.set_env_from_in("main", "MEM", EnvSource::resource("limits.memory").divisor("1Mi").container_name("main"));
        assert_eq!(
            only(&m),
            map! { "op" => "setEnv", "container" => "main", "name" => "MEM", "valueFrom" => map! {
                "resourceFieldRef" => map! { "containerName" => "main", "resource" => "limits.memory", "divisor" => "1Mi" } } }
        );
        let mut m = Mutations::new();
        m.set_env_from_field("IP", "status.podIP");
        assert_eq!(only(&m).get("valueFrom"), Some(&map! { "fieldRef" => map! { "fieldPath" => "status.podIP" } }));
    }

    #[test]
    fn typed_helpers_omit_absent_fields() {
        let mut m = Mutations::new();
        m.add_toleration(Toleration::exists("gpu"))
            .add_toleration(Toleration::equal("k", "v").effect("NoExecute").seconds(30))
            .add_node_affinity_requirement(NodeRequirement::exists("rdma"))
            .add_node_affinity_requirement(NodeRequirement::in_("zone", ["a", "b"]))
            .add_memory_empty_dir("dshm", None);
        let v: Vec<Value> = m.iter().map(Mutation::to_value).collect();
        assert_eq!(v[0].get("toleration"), Some(&map! { "key" => "gpu", "operator" => "Exists" }));
        assert_eq!(
            v[1].get("toleration"),
            Some(&map! { "key" => "k", "operator" => "Equal", "value" => "v", "effect" => "NoExecute", "tolerationSeconds" => 30 })
        );
        assert_eq!(v[2].get("expression"), Some(&map! { "key" => "rdma", "operator" => "Exists" }));
        assert_eq!(v[3].get("expression"), Some(&map! { "key" => "zone", "operator" => "In", "values" => list!["a", "b"] }));
        assert_eq!(v[4].get("volume"), Some(&map! { "name" => "dshm", "emptyDir" => map! { "medium" => "Memory" } }));
    }

    #[test]
    fn init_containers_follows_container_and_appears_only_when_true() {
        let mut m = Mutations::new();
        m.append_init_env_in("fetch", "A", "b");
        assert_eq!(
            only(&m),
            map! { "op" => "appendEnv", "container" => "fetch", "initContainers" => true, "name" => "A", "value" => "b" }
        );
        let mut m = Mutations::new();
        m.remove_init_env("A");
        assert_eq!(only(&m), map! { "op" => "removeEnv", "initContainers" => true, "name" => "A" });
        let mut m = Mutations::new();
        m.append_env_from("IP", EnvSource::field("status.podIP"));
        assert_eq!(
            only(&m),
            map! { "op" => "appendEnv", "name" => "IP", "valueFrom" => map! { "fieldRef" => map! { "fieldPath" => "status.podIP" } } }
        );
    }

    #[test]
    fn passthrough_objects_keep_the_order_they_were_built_in() {
        let mut m = Mutations::new();
        m.add_volume(map! { "secret" => map! { "secretName" => "s" }, "name" => "sec" });
        let keys: Vec<&str> = m.ops()[0].get("volume").unwrap().as_map().unwrap().keys().collect();
        assert_eq!(keys, ["secret", "name"]);
    }
}
