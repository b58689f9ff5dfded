//! Reading typed values out of [`ragspin_core::Rows`].

use ragspin_core::SqlValue;

/// An integer column (a REAL is truncated; anything else is 0).
pub fn int(v: Option<&SqlValue>) -> i64 {
    match v {
        Some(SqlValue::Integer(i)) => *i,
        Some(SqlValue::Real(f)) => *f as i64,
        _ => 0,
    }
}

/// A REAL column (an INTEGER is widened; anything else is 0).
pub fn real(v: Option<&SqlValue>) -> f64 {
    match v {
        Some(SqlValue::Real(f)) => *f,
        Some(SqlValue::Integer(i)) => *i as f64,
        _ => 0.0,
    }
}

/// A TEXT column (anything else is empty).
pub fn text(v: Option<&SqlValue>) -> String {
    match v {
        Some(SqlValue::Text(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A BLOB column.
pub fn blob(v: Option<&SqlValue>) -> Option<Vec<u8>> {
    match v {
        Some(SqlValue::Blob(b)) => Some(b.clone()),
        _ => None,
    }
}
