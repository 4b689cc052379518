//! The conformance plugin of sdk/testdata/README.md: it interprets its config
//! (`{steps: [...]}`) by calling the SDK's request accessors and one
//! `Mutations` method per step, so the vectors check that the SDK encodes
//! every op exactly as the Python reference model (generate.py) does.

use podplug_sdk::{EnvSource, Error, HookRequest, Map, Mutations, ResourceKind, Value, OPS};

podplug_sdk::plugin! {
    on_pod_create: interpret,
    on_pod_ready: interpret,
    validate_config: validate,
}

fn is_call(name: &str) -> bool {
    name == "echo" || name == "fail" || OPS.contains(&name)
}

/// The first problem in the config, in the README's order and words.
fn problem(config: &Value) -> Option<String> {
    let config = match config.as_map() {
        Some(m) => m,
        None => return Some("config: expected a map".into()),
    };
    if let Some(key) = config.keys().find(|k| *k != "steps") {
        return Some(format!("unknown field \"{}\"", key));
    }
    let steps = match config.get("steps") {
        None => return None,
        Some(Value::Array(steps)) => steps,
        Some(_) => return Some("field steps: expected an array".into()),
    };
    for (i, step) in steps.iter().enumerate() {
        let step = match step.as_map() {
            Some(m) => m,
            None => return Some(format!("field steps[{}]: expected a map", i)),
        };
        match step.get("call").and_then(Value::as_str) {
            None => return Some(format!("field steps[{}].call: expected a string", i)),
            Some(call) if !is_call(call) => return Some(format!("field steps[{}].call: unknown call \"{}\"", i, call)),
            Some(_) => {}
        }
    }
    None
}

fn validate(req: &HookRequest) -> Result<(), Error> {
    match problem(req.config_value()) {
        Some(p) => Err(Error::new(p)),
        None => Ok(()),
    }
}

fn interpret(req: &HookRequest) -> Result<Mutations, Error> {
    let mut m = Mutations::new();
    let steps = req.config_value().get("steps").and_then(Value::as_array);
    for (i, step) in steps.into_iter().flatten().enumerate() {
        let step = Step { index: i, fields: step.as_map().expect("validated") };
        match step.str("call")? {
            "echo" => echo(req, &mut m),
            "fail" => return Err(Error::new(step.opt_str("message")?.unwrap_or(""))),
            call => apply(&mut m, call, &step)?,
        }
    }
    Ok(m)
}

/// The README's echo annotations, read through the typed accessors.
fn echo(req: &HookRequest, m: &mut Mutations) {
    let ms = req.model_serving();
    let pod = req.pod();
    let first = pod.main_container();
    let containers: Vec<&str> = pod.containers().iter().map(|c| c.name).collect();
    let env: Vec<String> = first
        .map(|c| c.env.iter().filter_map(|e| e.value.map(|v| format!("{}={}", e.name, v))).collect())
        .unwrap_or_default();
    let gpu = first.and_then(|c| c.limit("nvidia.com/gpu")).map_or("none", |q| q.as_str());
    let pairs: [(&str, &str); 13] = [
        ("hook", req.hook()),
        ("plugin", req.plugin_name()),
        ("model", ms.name()),
        ("namespace", ms.namespace()),
        ("group", req.serving_group()),
        ("role", req.role_name()),
        ("role-id", req.role_id()),
        ("entry", if req.is_entry() { "true" } else { "false" }),
        ("pod", pod.name()),
        ("containers", &containers.join(",")),
        ("env", &env.join(",")),
        ("labels", &pod.metadata.labels.len().to_string()),
        ("gpu", gpu),
    ];
    for (key, value) in pairs {
        m.set_annotation(format!("conformance/{}", key), value);
    }
}

/// One step's arguments, with errors that say which step and field.
struct Step<'a> {
    index: usize,
    fields: &'a Map,
}

impl<'a> Step<'a> {
    fn err(&self, field: &str, want: &str) -> Error {
        Error::new(format!("field steps[{}].{}: expected {}", self.index, field, want))
    }

    fn value(&self, field: &str) -> Result<&'a Value, Error> {
        self.fields.get(field).ok_or_else(|| self.err(field, "a value"))
    }

    fn str(&self, field: &str) -> Result<&'a str, Error> {
        self.value(field)?.as_str().ok_or_else(|| self.err(field, "a string"))
    }

    fn opt_str(&self, field: &str) -> Result<Option<&'a str>, Error> {
        match self.fields.get(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.err(field, "a string")),
        }
    }

    fn strings(&self, field: &str) -> Result<Vec<&'a str>, Error> {
        let items = self.value(field)?.as_array().ok_or_else(|| self.err(field, "an array of strings"))?;
        items.iter().map(|v| v.as_str().ok_or_else(|| self.err(field, "an array of strings"))).collect()
    }

    /// `initContainers: true` (absent or false: spec.containers).
    fn init(&self) -> Result<bool, Error> {
        match self.fields.get("initContainers") {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| self.err("initContainers", "a boolean")),
        }
    }

    fn kind(&self) -> Result<ResourceKind, Error> {
        ResourceKind::parse(self.str("kind")?).ok_or_else(|| self.err("kind", "limits or requests"))
    }
}

/// `setEnv` or `appendEnv`: one builder method per container list, target and
/// value form; a literal value wins over `valueFrom`.
fn env(m: &mut Mutations, append: bool, s: &Step) -> Result<(), Error> {
    let name = s.str("name")?;
    let container = s.opt_str("container")?;
    let init = s.init()?;
    if let Some(v) = s.opt_str("value")? {
        match (append, init, container) {
            (false, false, None) => m.set_env(name, v),
            (false, false, Some(c)) => m.set_env_in(c, name, v),
            (false, true, None) => m.set_init_env(name, v),
            (false, true, Some(c)) => m.set_init_env_in(c, name, v),
            (true, false, None) => m.append_env(name, v),
            (true, false, Some(c)) => m.append_env_in(c, name, v),
            (true, true, None) => m.append_init_env(name, v),
            (true, true, Some(c)) => m.append_init_env_in(c, name, v),
        };
        return Ok(());
    }
    let from = EnvSource::Raw(s.value("valueFrom")?.clone());
    match (append, init, container) {
        (false, false, None) => m.set_env_from(name, from),
        (false, false, Some(c)) => m.set_env_from_in(c, name, from),
        (false, true, None) => m.set_init_env_from(name, from),
        (false, true, Some(c)) => m.set_init_env_from_in(c, name, from),
        (true, false, None) => m.append_env_from(name, from),
        (true, false, Some(c)) => m.append_env_from_in(c, name, from),
        (true, true, None) => m.append_init_env_from(name, from),
        (true, true, Some(c)) => m.append_init_env_from_in(c, name, from),
    };
    Ok(())
}

/// Calls the builder method for `call` with the step's fields as arguments.
fn apply(m: &mut Mutations, call: &str, s: &Step) -> Result<(), Error> {
    // Only container-scoped ops read `container` as a name (addContainer's is an object).
    let container = || s.opt_str("container");
    match call {
        "setLabel" => m.set_label(s.str("key")?, s.str("value")?),
        "removeLabel" => m.remove_label(s.str("key")?),
        "setAnnotation" => m.set_annotation(s.str("key")?, s.str("value")?),
        "removeAnnotation" => m.remove_annotation(s.str("key")?),
        "setEnv" | "appendEnv" => {
            env(m, call == "appendEnv", s)?;
            m
        }
        "removeEnv" => match (container()?, s.init()?) {
            (Some(c), false) => m.remove_env_in(c, s.str("name")?),
            (None, false) => m.remove_env(s.str("name")?),
            (Some(c), true) => m.remove_init_env_in(c, s.str("name")?),
            (None, true) => m.remove_init_env(s.str("name")?),
        },
        "setResource" => match container()? {
            Some(c) => m.set_resource_in(c, s.kind()?, s.str("name")?, s.str("quantity")?),
            None => m.set_resource(s.kind()?, s.str("name")?, s.str("quantity")?),
        },
        "removeResource" => match container()? {
            Some(c) => m.remove_resource_in(c, s.kind()?, s.str("name")?),
            None => m.remove_resource(s.kind()?, s.str("name")?),
        },
        "addVolume" => m.add_volume(s.value("volume")?),
        "removeVolume" => m.remove_volume(s.str("name")?),
        "addVolumeMount" => match container()? {
            Some(c) => m.add_volume_mount_in(c, s.value("mount")?),
            None => m.add_volume_mount(s.value("mount")?),
        },
        "removeVolumeMount" => match container()? {
            Some(c) => m.remove_volume_mount_in(c, s.str("mountPath")?),
            None => m.remove_volume_mount(s.str("mountPath")?),
        },
        "setNodeSelector" => m.set_node_selector(s.str("key")?, s.str("value")?),
        "removeNodeSelector" => m.remove_node_selector(s.str("key")?),
        "addToleration" => m.add_toleration(s.value("toleration")?),
        "addNodeAffinityRequirement" => m.add_node_affinity_requirement(s.value("expression")?),
        "addPreferredNodeAffinity" => {
            let weight = s.value("weight")?.as_i64().ok_or_else(|| s.err("weight", "an integer"))?;
            m.add_preferred_node_affinity(weight, s.value("preference")?)
        }
        "setRuntimeClassName" => m.set_runtime_class_name(s.str("value")?),
        "setSchedulerName" => m.set_scheduler_name(s.str("value")?),
        "setPriorityClassName" => m.set_priority_class_name(s.str("value")?),
        "addContainer" => m.add_container(s.value("container")?),
        "addInitContainer" => m.add_init_container(s.value("container")?),
        "setArgs" => match container()? {
            Some(c) => m.set_args_in(c, s.strings("args")?),
            None => m.set_args(s.strings("args")?),
        },
        "addCapabilities" => match container()? {
            Some(c) => m.add_capabilities_in(c, s.strings("capabilities")?),
            None => m.add_capabilities(s.strings("capabilities")?),
        },
        other => return Err(Error::new(format!("unknown call \"{}\"", other))),
    };
    Ok(())
}
