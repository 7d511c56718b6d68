//! Deserializers that accept exactly what the OpenAPI document says. serde's defaults differ
//! from JSON Schema in two places: a struct also deserializes from an array (its fields by
//! position), and an integer field refuses `2.0`, which JSON Schema counts as an integer.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional nested object: `null` or absent is None; an array is refused.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => T::deserialize(value).map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!("expected an object, got {}", kind(&other)))),
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`); an object otherwise.
pub fn absent_or_null_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    object(deserializer).map(Some)
}

/// A non-negative integer, written `3` or `3.0`.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = Value::deserialize(deserializer)?;
    to_count(&value).ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {value}")))
}

/// An optional non-negative integer (`null` or absent is None).
pub fn opt_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => to_count(&value).map(Some).ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {value}"))),
    }
}

fn to_count(value: &Value) -> Option<usize> {
    let number = value.as_number()?;
    if let Some(n) = number.as_u64() {
        return usize::try_from(n).ok();
    }
    let float = number.as_f64()?;
    // Integral and exactly representable (below 2^53).
    (float >= 0.0 && float.fract() == 0.0 && float < 9_007_199_254_740_992.0).then_some(float as usize)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        a: Option<u32>,
    }

    #[derive(Deserialize, Debug)]
    struct Outer {
        #[serde(default, deserialize_with = "super::object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "super::opt_count")]
        k: Option<usize>,
    }

    #[test]
    fn arrays_are_not_objects_and_integral_floats_are_integers() {
        let parsed: Outer = serde_json::from_str(r#"{"inner": {"a": 1}, "k": 3.0}"#).unwrap();
        assert_eq!((parsed.inner, parsed.k), (Some(Inner { a: Some(1) }), Some(3)));
        assert!(serde_json::from_str::<Outer>(r#"{"inner": []}"#).is_err());
        for bad in ["2.5", "-1", "\"3\""] {
            assert!(serde_json::from_str::<Outer>(&format!(r#"{{"k": {bad}}}"#)).is_err(), "{bad}");
        }
        let parsed: Outer = serde_json::from_str(r#"{"inner": null, "k": null}"#).unwrap();
        assert_eq!((parsed.inner, parsed.k), (None, None));
    }
}
