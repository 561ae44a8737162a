//! Partial updates: telling "leave it" apart from "clear it" in a JSON body.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One field of a PATCH body: absent (keep the stored value), `null` (clear it) or a new value.
///
/// Use with `#[serde(default)]` so a missing key becomes [`Patch::Keep`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// The key was absent.
    #[default]
    Keep,
    /// The key was `null`.
    Clear,
    /// The key carried a value.
    Set(T),
}

impl<T> Patch<T> {
    /// Applies the patch to a stored optional value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v),
        }
    }

    /// True when the body did not mention the field.
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Patch::Set(v),
            None => Patch::Clear,
        })
    }
}

/// Serialises as the value, or `null` for both `Keep` and `Clear` (used by schema examples).
impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Set(v) => s.serialize_some(v),
            Patch::Keep | Patch::Clear => s.serialize_none(),
        }
    }
}

/// For PATCH fields that cannot be cleared: absent keeps the value, `null` is refused (rather
/// than silently ignored). Use as `#[serde(default, deserialize_with = "not_null")]`.
pub fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "cannot be null: leave the field out to keep its value",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        a: Patch<u8>,
    }

    #[test]
    fn absent_null_and_value_are_distinct() {
        let keep: Body = serde_json::from_str("{}").unwrap();
        let clear: Body = serde_json::from_str(r#"{"a":null}"#).unwrap();
        let set: Body = serde_json::from_str(r#"{"a":3}"#).unwrap();
        assert_eq!(keep.a, Patch::Keep);
        assert_eq!(clear.a, Patch::Clear);
        assert_eq!(set.a, Patch::Set(3));
        assert_eq!(Patch::Keep.apply(Some(1)), Some(1));
        assert_eq!(Patch::<u8>::Clear.apply(Some(1)), None);
    }
}
