//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;

/// Serializes `x` and rounds every float to `digits` decimals, so snapshots are stable across
/// machines (last-bit differences in f32 arithmetic never reach the snapshot).
pub fn rounded<T: Serialize>(x: &T, digits: i32) -> Value {
    fn walk(v: Value, scale: f64) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => {
                let x = (n.as_f64().unwrap_or(f64::NAN) * scale).round() / scale;
                // -0.0 and 0.0 must snapshot alike.
                let x = if x == 0.0 { 0.0 } else { x };
                serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(|v| walk(v, scale)).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, walk(v, scale))).collect())
            }
            other => other,
        }
    }
    walk(
        serde_json::to_value(x).expect("test values serialize"),
        10f64.powi(digits),
    )
}
