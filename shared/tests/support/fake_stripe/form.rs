//! Stripe's bracket notation read back into JSON, as Stripe's servers read a form body or query:
//! `metadata[a]=x` → `{"metadata":{"a":"x"}}`, `items[0][price]=p` and `expand[]=x` → arrays.
//! Every leaf stays a string, as on the wire.

use serde_json::{Map, Value};

/// The parameters as nested JSON; an error names a malformed key or a key used both as a value and as
/// a parent (`a=1&a[b]=2`).
pub fn pairs_to_json(pairs: &[(String, String)]) -> Result<Value, String> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let path = segments(key).ok_or_else(|| format!("malformed parameter name {key:?}"))?;
        insert(&mut root, &path, value, key)?;
    }
    Ok(arrays(Value::Object(root)))
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` → `["a", ""]` (append).
fn segments(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() || head.contains(']') {
        return None;
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let segment = &inner[..end];
        if segment.contains('[') {
            return None;
        }
        path.push(segment.to_owned());
        rest = &inner[end + 1..];
    }
    Some(path)
}

fn insert(target: &mut Map<String, Value>, path: &[String], value: &str, key: &str) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else { return Ok(()) };
    let name = if first.is_empty() { target.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        if target.get(&name).is_some_and(Value::is_object) {
            return Err(format!("{key:?} is both a value and an object"));
        }
        target.insert(name, Value::String(value.to_owned()));
        return Ok(());
    }
    match target.entry(name).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(child) => insert(child, rest, value, key),
        _ => Err(format!("{key:?} is both a value and an object")),
    }
}

/// Objects whose keys are all indexes become arrays, in index order.
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
            if indexed {
                let mut items: Vec<(usize, Value)> =
                    map.into_iter().map(|(k, v)| (k.parse().unwrap_or(usize::MAX), arrays(v))).collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}
