//! Helpers of the accelerator plugins, compiled into nvidia-gpu-defaults and,
//! through `#[path]`, into huawei-ascend-defaults: container selection, the
//! /dev/shm volume, env and resource defaults that never override the user,
//! and the syntax checks their config validation shares.

use podplug_sdk::{Container, Error, Mutations, Pod, ResourceKind, Value};

/// The containers a plugin acts on: `names` present in the Pod, in Pod order
/// (entry and worker templates may name their containers differently, so an
/// absent name is skipped), or by default the first container, which is the
/// serving container by Kthena's convention; sidecars are never picked unless
/// named.
pub fn select<'p>(pod: &'p Pod, names: Option<&[String]>) -> Result<Vec<&'p Container>, Error> {
    let all = pod.containers();
    let picked: Vec<&Container> = match names {
        None => all.iter().take(1).collect(),
        Some(names) => all.iter().filter(|c| names.contains(&c.name)).collect(),
    };
    if picked.is_empty() {
        let have: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        return Err(match names {
            None => Error::new(format!("Pod {} has no containers", pod.name())),
            Some(names) => Error::new(format!(
                "none of the containers {:?} is in Pod {} (it has {:?})",
                names,
                pod.name(),
                have
            )),
        });
    }
    Ok(picked)
}

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
        m.set_resource_in(c.name.as_str(), ResourceKind::Limits, resource, value.as_str());
    }
    if request.map(|q| q.as_str()) != Some(value.as_str()) {
        m.set_resource_in(c.name.as_str(), ResourceKind::Requests, resource, value);
    }
}

/// A memory-backed emptyDir mounted at /dev/shm in each of `containers` that
/// has nothing there yet (NCCL/HCCL and PyTorch workers need far more than the
/// container runtime's 64 MiB). A Pod volume already named `volume` is reused.
pub fn shared_memory(m: &mut Mutations, pod: &Pod, containers: &[&Container], volume: &str, size: Option<&str>) {
    let needing: Vec<&&Container> = containers.iter().filter(|c| c.volume_mount("/dev/shm").is_none()).collect();
    if needing.is_empty() {
        return;
    }
    if pod.volume(volume).is_none() {
        m.add_memory_empty_dir(volume, size);
    }
    for c in needing {
        m.mount_volume_in(c.name.as_str(), volume, "/dev/shm");
    }
}

/// `setEnv` of a literal unless the container sets `name` already (any value,
/// or `valueFrom`) and `overwrite` is off.
pub fn default_env(m: &mut Mutations, c: &Container, name: &str, value: &str, overwrite: bool) {
    match c.env_var(name) {
        Some(e) if e.value.as_deref() == Some(value) && e.value_from.is_none() => {}
        Some(_) if !overwrite => {}
        _ => {
            m.set_env_in(c.name.as_str(), name, value);
        }
    }
}

/// The config checks both accelerator plugins make: `kind` is `gpu` or `npu`
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

/// A C identifier, as shells and most runtimes accept for env names.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// A Kubernetes quantity such as `16Gi`, `500M`, `1.5Gi`, `1e9` (non-negative).
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let mut parts = num.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    let number_ok = match frac {
        None => !whole.is_empty(),
        Some(f) => !(whole.is_empty() && f.is_empty()) && !f.contains('.'),
    };
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        exp => {
            let digits = exp.strip_prefix(|c: char| c == 'e' || c == 'E').map(|d| d.strip_prefix(|c: char| c == '+' || c == '-').unwrap_or(d));
            matches!(digits, Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    number_ok && suffix_ok
}

/// A qualified Kubernetes name as used for extended resources and label keys:
/// `prefix/name` with a DNS-subdomain prefix and a name of alphanumerics,
/// `-`, `_`, `.` (at most 63), starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.map_or(true, |p| {
        !p.is_empty() && p.len() <= 253 && p.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["16Gi", "1", "0.5Gi", ".5", "1e9", "1E+3", "500M", "+2Gi", "64Mi"] {
            assert!(is_quantity(ok), "{}", ok);
        }
        for bad in ["", "Gi", "16 Gi", "16GB", "-1Gi", "1.2.3", "1e", "abc", "."] {
            assert!(!is_quantity(bad), "{}", bad);
        }
    }

    #[test]
    fn names() {
        assert!(is_qualified_name("nvidia.com/gpu"));
        assert!(is_qualified_name("nvidia.com/mig-1g.10gb"));
        assert!(is_qualified_name("huawei.com/Ascend910"));
        assert!(!is_qualified_name("nvidia.com/"));
        assert!(!is_qualified_name("Nvidia.com/gpu"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_env_name("NCCL_DEBUG") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
    }
}
