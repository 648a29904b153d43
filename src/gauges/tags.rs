//! DogStatsD-safe tags. A `TagValue` can only be built through a sanitising
//! constructor, so no value from Nomad (node names, classes, datacenters)
//! can break the datagram grammar `name:value|g|#k:v,k2:v2`.

use std::fmt;

use crate::nomad::model::Node;

/// Longest tag value kept; Datadog truncates tags at 200 characters.
pub const MAX_TAG_VALUE_CHARS: usize = 200;

/// A tag value holding only characters that are safe inside a DogStatsD tag:
/// ASCII letters and digits, `_ - . / :`. Anything else (`,` `|` `#`
/// whitespace, control or non-ASCII characters) becomes `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagValue(String);

impl TagValue {
    /// Sanitises `raw`; `None` when nothing is left (an empty value).
    #[must_use]
    pub fn new(raw: &str) -> Option<Self> {
        let cleaned: String = raw
            .trim()
            .chars()
            .take(MAX_TAG_VALUE_CHARS)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (!cleaned.is_empty()).then_some(Self(cleaned))
    }

    /// `true` / `false`.
    #[must_use]
    pub fn bool(value: bool) -> Self {
        Self(if value { "true" } else { "false" }.to_owned())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `key:value` tag. Keys are the daemon's own constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    pub key: &'static str,
    pub value: TagValue,
}

impl Tag {
    #[must_use]
    pub fn new(key: &'static str, value: TagValue) -> Self {
        Self { key, value }
    }
}

/// Tags from `(key, raw value)` pairs; empty values (a node without a
/// class) are left out, not invented.
fn tags_of<const N: usize>(pairs: [(&'static str, Option<&str>); N]) -> Vec<Tag> {
    pairs
        .into_iter()
        .filter_map(|(key, raw)| Some(Tag::new(key, TagValue::new(raw?)?)))
        .collect()
}

/// Where a node sits: `datacenter`, `node_class`, `node_pool` (the
/// capacity groups and the node census are keyed by these).
#[must_use]
pub fn group_tags(node: &Node) -> Vec<Tag> {
    tags_of([
        ("datacenter", Some(node.datacenter.as_str())),
        ("node_class", node.node_class.as_deref()),
        ("node_pool", node.node_pool.as_deref()),
    ])
}

/// Which node it is: `node_id`, `node_name`, then the `group_tags`.
#[must_use]
pub fn identity_tags(node: &Node) -> Vec<Tag> {
    let mut tags = tags_of([
        ("node_id", Some(node.id.as_str())),
        ("node_name", Some(node.name.as_str())),
    ]);
    tags.extend(group_tags(node));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_tags_are_sanitised() {
        let node: Node = serde_json::from_str(
            r#"{"ID":"n1","Name":"web 1,a|b","Datacenter":"dc#1","NodeClass":"","Status":"ready"}"#,
        )
        .unwrap();
        let tags: Vec<String> = identity_tags(&node)
            .iter()
            .map(|t| format!("{}:{}", t.key, t.value))
            .collect();
        assert_eq!(
            tags,
            ["node_id:n1", "node_name:web_1_a_b", "datacenter:dc_1"]
        );
    }

    #[test]
    fn keeps_safe_characters() {
        let v = TagValue::new("eu-west-1a/rack_2.b:x").unwrap();
        assert_eq!(v.as_str(), "eu-west-1a/rack_2.b:x");
    }

    #[test]
    fn replaces_grammar_breaking_characters() {
        let v = TagValue::new("a,b|c#d e\tf\ng@h").unwrap();
        assert_eq!(v.as_str(), "a_b_c_d_e_f_g_h");
        assert_eq!(TagValue::new("nöde").unwrap().as_str(), "n_de");
    }

    #[test]
    fn empty_values_are_refused() {
        assert_eq!(TagValue::new(""), None);
        assert_eq!(TagValue::new("   "), None);
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "x".repeat(500);
        assert_eq!(
            TagValue::new(&long).unwrap().as_str().len(),
            MAX_TAG_VALUE_CHARS
        );
    }

    #[test]
    fn bool_values() {
        assert_eq!(TagValue::bool(true).as_str(), "true");
        assert_eq!(TagValue::bool(false).as_str(), "false");
    }
}
