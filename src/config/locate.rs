//! Turning toml's errors (a message and a byte span) into errors that name the full key path.
//!
//! toml reports where a value went wrong but not under which key. The document is parsed a second time into
//! a schema-free tree of spanned values; the key path of an error is the innermost value whose span holds
//! the error's span.

use super::error::{join_key, key_segment, ConfigError, ConfigErrorKind};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;
use std::path::Path;

// toml hands out spans through serde_spanned's private protocol: a struct with these names, visited as a map
// of start, end and value. Tables toml has no span for (the implicit `[a]` of `[a.b]`, dotted keys) come as
// plain maps instead, which `toml::Spanned` rejects; `SpannedNode` accepts both.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_FIELDS: [&str; 3] = [
    SPANNED_START,
    "$__serde_spanned_private_end",
    "$__serde_spanned_private_value",
];

/// Any TOML value, with the spans of everything inside it.
enum Node {
    /// A string, number, boolean or date: nothing inside to locate.
    Scalar,
    /// An array, in order.
    Array(Vec<SpannedNode>),
    /// A table, in order.
    Table(Vec<(String, SpannedNode)>),
}

/// A value and its byte span, when toml knows it.
struct SpannedNode {
    span: Option<Range<usize>>,
    node: Node,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for SpannedNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SpannedNode, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, &SPANNED_FIELDS, SpannedNodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SpannedNode>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<SpannedNode>()?));
        }
        Ok(Node::Table(entries))
    }
}

struct SpannedNodeVisitor;

impl SpannedNodeVisitor {
    fn unspanned<E>(node: Node) -> Result<SpannedNode, E> {
        Ok(SpannedNode { span: None, node })
    }
}

impl<'de> Visitor<'de> for SpannedNodeVisitor {
    type Value = SpannedNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<SpannedNode, E> {
        Self::unspanned(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<SpannedNode, E> {
        Self::unspanned(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<SpannedNode, E> {
        Self::unspanned(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<SpannedNode, E> {
        Self::unspanned(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<SpannedNode, E> {
        Self::unspanned(Node::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SpannedNode, A::Error> {
        NodeVisitor.visit_seq(seq).and_then(Self::unspanned)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpannedNode, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Self::unspanned(Node::Table(Vec::new()));
        };
        if first == SPANNED_START {
            let start: usize = map.next_value()?;
            let _end_key: Option<String> = map.next_key()?;
            let end: usize = map.next_value()?;
            let _value_key: Option<String> = map.next_key()?;
            let node: Node = map.next_value()?;
            return Ok(SpannedNode {
                span: Some(start..end),
                node,
            });
        }
        let mut entries = vec![(first, map.next_value::<SpannedNode>()?)];
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<SpannedNode>()?));
        }
        Self::unspanned(Node::Table(entries))
    }
}

/// Every value of a document: its key path and its span.
pub(crate) struct KeyIndex {
    entries: Vec<(String, Option<Range<usize>>)>,
}

impl KeyIndex {
    /// Indexes `text`; a syntax error comes back as a [`ConfigErrorKind::Syntax`] error.
    pub(crate) fn build(text: &str, path: &Path) -> Result<KeyIndex, ConfigError> {
        let root: Node = toml::from_str(text).map_err(|e| {
            let message = format!("invalid TOML: {}", one_line(e.message()));
            ConfigError::at(path, text, e.span(), None, ConfigErrorKind::Syntax, message)
        })?;
        let mut entries = Vec::new();
        collect(&root, "", &mut entries);
        Ok(KeyIndex { entries })
    }

    /// The key path of the innermost value whose span holds `span` (empty at the top level).
    fn key_at(&self, span: &Range<usize>) -> String {
        self.entries
            .iter()
            .filter_map(|(key, s)| Some((key, s.as_ref()?)))
            .filter(|(_, s)| {
                s.start <= span.start
                    && (span.start < s.end || (span.start == s.start && span.is_empty()))
            })
            .min_by_key(|(key, s)| (s.len(), std::cmp::Reverse(key.len())))
            .map(|(key, _)| key.clone())
            .unwrap_or_default()
    }

    /// The key whose name is written at `span` (an unknown key, or the table name in `models.a.x = 1`), under
    /// the innermost value holding `span`; the nearest one if the name occurs several times there.
    fn key_written_at(&self, span: &Range<usize>, text: &str) -> Option<String> {
        let within = self.key_at(span);
        let written = text.get(span.clone())?.trim();
        let name = ['"', '\'']
            .iter()
            .find_map(|q| written.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(written);
        let segment = key_segment(name);
        let under = |k: &str| {
            within.is_empty()
                || k == within
                || k.strip_prefix(within.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        };
        let names = |k: &str| k == segment || k.ends_with(&format!(".{segment}"));
        self.entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| under(k) && names(k))
            .min_by_key(|k| {
                self.span_of(k)
                    .map_or(usize::MAX, |s| s.start.abs_diff(span.start))
            })
            .cloned()
    }

    /// Where the value at `key` starts: its own span, or for a table toml has no span for, the first span
    /// inside it.
    pub(crate) fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let inside = |k: &str| {
            k == key
                || k.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        };
        let spans = self
            .entries
            .iter()
            .filter(|(k, _)| inside(k))
            .filter_map(|(_, s)| s.clone());
        match self.entries.iter().find(|(k, _)| k == key) {
            Some((_, Some(span))) => Some(span.clone()),
            _ => spans.min_by_key(|s| s.start),
        }
    }

    /// Converts toml's error for the typed schema into a [`ConfigError`] naming the key.
    pub(crate) fn error(&self, e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
        let message = one_line(e.message());
        let at = self.key_at(&e.span().unwrap_or(0..0));
        let located = |key: String, kind, message: String| {
            let key = (!key.is_empty()).then_some(key);
            ConfigError::at(path, text, e.span(), key, kind, message)
        };
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let key = self
                .key_written_at(&e.span().unwrap_or(0..0), text)
                .filter(|k| k.ends_with(&key_segment(name)))
                .unwrap_or_else(|| join_key(&at, name));
            let expected = expected.trim_start_matches(", ");
            let message = match expected.strip_prefix("expected ") {
                Some(known) => format!("unknown key; expected {known}"),
                None => "unknown key; this table takes no keys".to_string(),
            };
            return located(key, ConfigErrorKind::UnknownKey, message);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split_once('`').map_or(rest, |(name, _)| name);
            // A `[table]` comes with its span; a dotted-key table does not, and toml points at its name.
            let table = self
                .key_written_at(&e.span().unwrap_or(0..0), text)
                .unwrap_or(at);
            return located(
                join_key(&table, name),
                ConfigErrorKind::MissingKey,
                "required key is missing".into(),
            );
        }
        for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
            if let Some(rest) = message.strip_prefix(prefix) {
                if let Some((found, expected)) = rest.split_once(", expected ") {
                    let found = if prefix == "invalid length " {
                        format!("length {found}")
                    } else {
                        found.to_string()
                    };
                    let kind = if prefix == "invalid type: " {
                        ConfigErrorKind::WrongType
                    } else {
                        ConfigErrorKind::InvalidValue
                    };
                    let message = format!("expected {}, found {}", plain(expected), plain(&found));
                    return located(at, kind, message);
                }
            }
        }
        located(at, ConfigErrorKind::InvalidValue, message)
    }
}

fn collect(node: &Node, key: &str, out: &mut Vec<(String, Option<Range<usize>>)>) {
    match node {
        Node::Scalar => {}
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_key = format!("{key}[{i}]");
                out.push((item_key.clone(), item.span.clone()));
                collect(&item.node, &item_key, out);
            }
        }
        Node::Table(entries) => {
            for (name, value) in entries {
                let value_key = join_key(key, name);
                out.push((value_key.clone(), value.span.clone()));
                collect(&value.node, &value_key, out);
            }
        }
    }
}

/// serde's names for what was expected or found, in TOML's words (`a map` is a table, `i64` an integer).
fn plain(what: &str) -> String {
    let what = what.trim();
    if what.starts_with("struct ") || what == "a map" || what == "map" {
        return "a table".into();
    }
    match what {
        "a sequence" | "sequence" => "an array".into(),
        "i64" | "u64" | "usize" | "u32" => "an integer".into(),
        "f64" | "f32" => "a number".into(),
        _ => match what.strip_prefix("floating point ") {
            Some(value) => format!("float {value}"),
            None => what.to_string(),
        },
    }
}

/// toml's messages can span lines ("invalid string\nexpected ..."); ours are one line.
fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
