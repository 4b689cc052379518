//! The `podplug.metadata` custom section, encoded at compile time.
//!
//! `plugin!` writes it for you: `name` and `version` come from your
//! Cargo.toml, `hooks` from the hooks you give, and `mutations` from the
//! macro's optional `mutations: [setLabel, addVolume]` key (checked against
//! the ops of docs/abi.md at compile time). The host shows it in
//! `podplug inspect` and does not trust it for enforcement.

use crate::plugin::Plugin;

/// What the section says; [`Metadata::encode`] gives its MessagePack bytes.
pub struct Metadata {
    pub name: &'static str,
    pub version: &'static str,
    pub hooks: &'static [&'static str],
    /// Omitted from the section when empty.
    pub mutations: &'static [&'static str],
}

impl Metadata {
    pub const fn new(plugin: &Plugin, name: &'static str, version: &'static str, mutations: &'static [&'static str]) -> Self {
        let hooks: &'static [&'static str] =
            match (plugin.on_pod_create.is_some(), plugin.on_pod_ready.is_some(), plugin.validates_config()) {
                (false, false, false) => &[],
                (true, false, false) => &["create"],
                (false, true, false) => &["ready"],
                (false, false, true) => &["validate_config"],
                (true, true, false) => &["create", "ready"],
                (true, false, true) => &["create", "validate_config"],
                (false, true, true) => &["ready", "validate_config"],
                (true, true, true) => &["create", "ready", "validate_config"],
            };
        check_mutations(mutations);
        Metadata { name, version, hooks, mutations }
    }

    pub const fn encoded_len(&self) -> usize {
        let mut n = 1 + str_len("name") + str_len(self.name) + str_len("version") + str_len(self.version);
        n += str_len("hooks") + list_len(self.hooks);
        if !self.mutations.is_empty() {
            n += str_len("mutations") + list_len(self.mutations);
        }
        n
    }

    /// The section bytes; `N` must be [`Metadata::encoded_len`].
    pub const fn encode<const N: usize>(&self) -> [u8; N] {
        let buf = [0u8; N];
        let (mut buf, mut pos) = put(buf, 0, if self.mutations.is_empty() { 0x83 } else { 0x84 });
        (buf, pos) = put_str(buf, pos, "name");
        (buf, pos) = put_str(buf, pos, self.name);
        (buf, pos) = put_str(buf, pos, "version");
        (buf, pos) = put_str(buf, pos, self.version);
        (buf, pos) = put_str(buf, pos, "hooks");
        (buf, pos) = put_list(buf, pos, self.hooks);
        if !self.mutations.is_empty() {
            (buf, pos) = put_str(buf, pos, "mutations");
            (buf, pos) = put_list(buf, pos, self.mutations);
        }
        assert!(pos == N, "metadata length mismatch");
        buf
    }
}

const fn check_mutations(mutations: &[&str]) {
    let mut i = 0;
    while i < mutations.len() {
        let mut known = false;
        let mut j = 0;
        while j < crate::mutations::OPS.len() {
            if str_eq(mutations[i], crate::mutations::OPS[j]) {
                known = true;
            }
            j += 1;
        }
        if !known {
            panic!("podplug_sdk::plugin!: `mutations` names an op that docs/abi.md does not define");
        }
        i += 1;
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn str_len(s: &str) -> usize {
    let n = s.len();
    n + if n < 32 {
        1
    } else if n <= 0xff {
        2
    } else if n <= 0xffff {
        3
    } else {
        5
    }
}

const fn list_len(items: &[&str]) -> usize {
    let mut n = if items.len() < 16 { 1 } else { 3 };
    let mut i = 0;
    while i < items.len() {
        n += str_len(items[i]);
        i += 1;
    }
    n
}

// &mut is not allowed in const fn on Rust 1.63: thread the buffer through.
const fn put<const N: usize>(mut buf: [u8; N], pos: usize, b: u8) -> ([u8; N], usize) {
    buf[pos] = b;
    (buf, pos + 1)
}

const fn put_str<const N: usize>(buf: [u8; N], pos: usize, s: &str) -> ([u8; N], usize) {
    let n = s.len();
    let (mut buf, mut pos) = if n < 32 {
        put(buf, pos, 0xa0 | n as u8)
    } else if n <= 0xff {
        let (b, p) = put(buf, pos, 0xd9);
        put(b, p, n as u8)
    } else if n <= 0xffff {
        let (b, p) = put(buf, pos, 0xda);
        let (b, p) = put(b, p, (n >> 8) as u8);
        put(b, p, n as u8)
    } else {
        let (b, p) = put(buf, pos, 0xdb);
        let (b, p) = put(b, p, (n >> 24) as u8);
        let (b, p) = put(b, p, (n >> 16) as u8);
        let (b, p) = put(b, p, (n >> 8) as u8);
        put(b, p, n as u8)
    };
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < n {
        buf[pos] = bytes[i];
        pos += 1;
        i += 1;
    }
    (buf, pos)
}

const fn put_list<const N: usize>(buf: [u8; N], pos: usize, items: &[&str]) -> ([u8; N], usize) {
    let n = items.len();
    let (mut buf, mut pos) = if n < 16 {
        put(buf, pos, 0x90 | n as u8)
    } else {
        let (b, p) = put(buf, pos, 0xdc);
        let (b, p) = put(b, p, (n >> 8) as u8);
        put(b, p, n as u8)
    };
    let mut i = 0;
    while i < n {
        (buf, pos) = put_str(buf, pos, items[i]);
        i += 1;
    }
    (buf, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    const PLUGIN: Plugin = Plugin { on_pod_create: None, on_pod_ready: None, validate_config: None };

    #[test]
    fn encodes_the_canonical_map() {
        const M: Metadata = Metadata::new(&PLUGIN, "gpu-defaults", "0.1.0", &["setLabel", "addVolume"]);
        const BYTES: [u8; M.encoded_len()] = M.encode();
        let v = Value::from_msgpack(&BYTES).unwrap();
        assert_eq!(
            v,
            crate::map! { "name" => "gpu-defaults", "version" => "0.1.0", "hooks" => crate::list![],
                          "mutations" => crate::list!["setLabel", "addVolume"] }
        );
        assert_eq!(v.to_msgpack(), BYTES);
    }

    #[test]
    fn long_names_use_wider_headers() {
        const NAME: &str = "a-plugin-name-longer-than-thirty-one-bytes";
        const M: Metadata = Metadata::new(&PLUGIN, NAME, "1", &[]);
        const BYTES: [u8; M.encoded_len()] = M.encode();
        assert_eq!(Value::from_msgpack(&BYTES).unwrap().get("name"), Some(&Value::from(NAME)));
    }
}
