//! Syntax checks of Kubernetes values a plugin's config validation needs:
//! quantities, qualified names (label keys, extended resources), env names.
//! They answer `bool`; the caller words the error and names the field.

/// A Kubernetes quantity such as `16Gi`, `500M`, `1.5Gi`, `.5`, `1e9`,
/// `+2Gi`: a non-negative decimal number with an optional binary (`Ki`..`Ei`),
/// decimal (`m`, `k`, `M`..`E`) or exponent (`e3`, `E+3`) suffix.
///
/// ```
/// use podplug_sdk::k8s::is_quantity;
/// assert!(is_quantity("16Gi") && is_quantity("0.5") && is_quantity("1e9"));
/// assert!(!is_quantity("16GB") && !is_quantity("-1Gi") && !is_quantity(""));
/// ```
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let mut parts = num.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    let number_ok = match frac {
        None => !whole.is_empty(),
        Some(f) => (!whole.is_empty() || !f.is_empty()) && !f.contains('.'),
    };
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        exp => {
            let digits = exp
                .strip_prefix(|c: char| c == 'e' || c == 'E')
                .map(|d| d.strip_prefix(|c: char| c == '+' || c == '-').unwrap_or(d));
            matches!(digits, Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    number_ok && suffix_ok
}

/// A qualified Kubernetes name as used for label keys and extended resource
/// names: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
/// Extended resources must have the prefix: check `s.contains('/')` too.
///
/// ```
/// use podplug_sdk::k8s::is_qualified_name;
/// assert!(is_qualified_name("nvidia.com/gpu") && is_qualified_name("app"));
/// assert!(!is_qualified_name("Nvidia.com/gpu") && !is_qualified_name("a/b/c"));
/// ```
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
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    });
    name_ok && prefix_ok
}

/// A C identifier (`[A-Za-z_][A-Za-z0-9_]*`), the env var names shells and
/// most runtimes accept.
///
/// ```
/// use podplug_sdk::k8s::is_env_name;
/// assert!(is_env_name("NCCL_DEBUG") && !is_env_name("1X") && !is_env_name("A-B"));
/// ```
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["16Gi", "1", "0.5Gi", ".5", "1e9", "1E+3", "1e-3", "500M", "+2Gi", "64Mi", "250m", "1."] {
            assert!(is_quantity(ok), "{}", ok);
        }
        for bad in ["", "Gi", "16 Gi", "16GB", "-1Gi", "1.2.3", "1e", "1e+", "abc", ".", "1Gi "] {
            assert!(!is_quantity(bad), "{}", bad);
        }
    }

    #[test]
    fn qualified_names() {
        for ok in ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "huawei.com/Ascend910", "app", "a_b.c-d", "k8s.io/x"] {
            assert!(is_qualified_name(ok), "{}", ok);
        }
        let long = "a".repeat(64);
        for bad in ["", "nvidia.com/", "/gpu", "Nvidia.com/gpu", "a/b/c", "-a", "a-", "a..b/c", long.as_str()] {
            assert!(!is_qualified_name(bad), "{}", bad);
        }
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("NCCL_DEBUG") && is_env_name("_x1") && is_env_name("a"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name("") && !is_env_name("A B"));
    }

    fn pod(json: &str) -> crate::Pod {
        crate::testing::pod_json(json)
    }

    #[test]
    fn tolerations_cover_a_taint_of_any_value() {
        let t = |json: &str| -> crate::Toleration { crate::from_value(&crate::testing::json(json)).unwrap() };
        let gpu = "nvidia.com/gpu";
        assert!(t(r#"{"key": "nvidia.com/gpu", "operator": "Exists"}"#).tolerates(gpu, "NoSchedule"));
        assert!(t(r#"{"operator": "Exists"}"#).tolerates(gpu, "NoSchedule"));
        assert!(t(r#"{"key": "", "operator": "Exists", "effect": "NoSchedule"}"#).tolerates(gpu, "NoSchedule"));
        assert!(!t(r#"{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}"#).tolerates(gpu, "NoSchedule"));
        assert!(!t(r#"{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}"#).tolerates(gpu, "NoSchedule"));
        assert!(t(r#"{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}"#).tolerates(gpu, "NoExecute"));
        assert!(!t(r#"{"key": "nvidia.com/gpu"}"#).tolerates(gpu, "NoSchedule"));
        assert!(!t(r#"{"key": "other", "operator": "Exists"}"#).tolerates(gpu, "NoSchedule"));
        let p = pod(r#"{"spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "nvidia.com/gpu", "operator": "Exists"}]}}"#);
        assert!(p.tolerates(gpu, "NoSchedule") && !p.tolerates("b", "NoSchedule"));
    }

    #[test]
    fn containers_are_selected_in_pod_order() {
        let p = pod(r#"{"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "vllm", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}, {"name": "sidecar"}]}}"#);
        let names = |cs: Vec<&crate::Container>| cs.iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(p.select_containers(None).unwrap()), ["vllm"]);
        let wanted = vec!["sidecar".to_string(), "engine".to_string(), "vllm".to_string()];
        assert_eq!(names(p.select_containers(Some(&wanted)).unwrap()), ["vllm", "sidecar"]);
        let err = p.select_containers(Some(&["engine".to_string()])).unwrap_err();
        assert_eq!(err.message(), r#"none of the containers ["engine"] is in Pod p (it has ["vllm", "sidecar"])"#);
        assert_eq!(pod(r#"{"metadata": {"name": "q"}}"#).select_containers(None).unwrap_err().message(), "Pod q has no containers");
        assert!(p.containers()[0].mounts_at("/dev/shm") && !p.containers()[1].mounts_at("/dev/shm"));
    }

    #[test]
    fn tolerate_adds_the_extended_resource_toleration_once() {
        let p = pod(r#"{"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}"#);
        let mut m = crate::Mutations::new();
        m.tolerate(&p, "a").tolerate(&p, "nvidia.com/gpu");
        crate::testing::assert_ops(
            &m,
            r#"[{"op": "addToleration", "toleration": {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}}]"#,
        );
    }
}
