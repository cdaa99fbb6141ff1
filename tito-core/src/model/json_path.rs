//! Dotted paths into serialized records (`blocks.author_id`), for hand-written models whose
//! index fields and relationships are named by strings. Arrays along a path fan out.

use serde_json::{Map, Value};

/// Every non-null value at `path`; arrays met on the way, and at the end, fan out.
pub(crate) fn values_at<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    if let (Value::Object(map), false) = (root, path.contains('.')) {
        let mut leaves = Vec::new();
        if let Some(field) = map.get(path) {
            flatten(field, &mut leaves);
        }
        return leaves;
    }
    let mut current = vec![root];
    for segment in path.split('.') {
        let mut next = Vec::with_capacity(current.len());
        for value in current {
            collect_field(value, segment, &mut next);
        }
        current = next;
    }
    let mut leaves = Vec::with_capacity(current.len());
    for value in current {
        flatten(value, &mut leaves);
    }
    leaves
}

fn collect_field<'a>(value: &'a Value, segment: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(field) = map.get(segment) {
                out.push(field);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_field(v, segment, out)),
        _ => {}
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

/// Splits `path` into its parent path (possibly empty) and its last segment.
pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('.') {
        Some((parent, leaf)) => (parent, leaf),
        None => ("", path),
    }
}

/// Calls `f` on every object at `parent` (the root when `parent` is empty), fanning out arrays.
pub(crate) fn for_each_parent(
    root: &mut Value,
    parent: &str,
    f: &mut dyn FnMut(&mut Map<String, Value>),
) {
    if parent.is_empty() {
        for_each_object(root, f);
        return;
    }
    let (head, rest) = parent.split_once('.').unwrap_or((parent, ""));
    match root {
        Value::Object(map) => {
            if let Some(child) = map.get_mut(head) {
                descend(child, rest, f);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| for_each_parent(item, parent, f)),
        _ => {}
    }
}

fn descend(value: &mut Value, rest: &str, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    if rest.is_empty() {
        for_each_object(value, f);
    } else {
        for_each_parent(value, rest, f);
    }
}

fn for_each_object(value: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(map) => f(map),
        Value::Array(items) => items.iter_mut().for_each(|item| for_each_object(item, f)),
        _ => {}
    }
}

/// Clears the field at `path` so it is not stored: arrays become empty, other values are removed.
pub(crate) fn clear(root: &mut Value, path: &str) {
    let (parent, leaf) = split_parent(path);
    for_each_parent(root, parent, &mut |map| {
        if let Some(Value::Array(items)) = map.get_mut(leaf) {
            items.clear();
        } else {
            map.remove(leaf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_arrays_fan_out() {
        let v = json!({"blocks": [{"author_id": "a"}, {"author_id": ["b", null, "c"]}, {}]});
        let got: Vec<_> = values_at(&v, "blocks.author_id")
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(got, vec![json!("a"), json!("b"), json!("c")]);
        assert!(values_at(&v, "missing.path").is_empty());
    }

    #[test]
    fn clear_empties_arrays_and_removes_values() {
        let mut v = json!({"tags": [1, 2], "blocks": [{"author": {"id": 1}}, {"author": null}]});
        clear(&mut v, "tags");
        clear(&mut v, "blocks.author");
        assert_eq!(v, json!({"tags": [], "blocks": [{}, {}]}));
    }
}
