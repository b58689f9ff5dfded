//! Roles, permissions and index scopes: who may do what, where.

use std::collections::BTreeSet;
use std::fmt;

use ragspin_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A user's (or API key's) role. Ordered: `Reader < Editor < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search and query.
    Reader,
    /// Also ingest (documents, indexes, versions).
    Editor,
    /// Everything, including `/auth` administration and every index.
    Admin,
}

impl Role {
    /// The lowercase name (`admin`, `editor`, `reader`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parse a lowercase role name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "reader" => Some(Self::Reader),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Search | Permission::Query => true,
            Permission::Ingest => self >= Self::Editor,
            Permission::Admin => self == Self::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `POST /v1/search`.
    Search,
    /// `POST /v1/query`, `POST /v1/chat/completions`.
    Query,
    /// `/v1/indexes/...` writes: documents, settings, versions.
    Ingest,
    /// `/auth` administration, protected `/metrics`.
    Admin,
}

impl Permission {
    /// The lowercase name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::Query => "query",
            Self::Ingest => "ingest",
            Self::Admin => "admin",
        }
    }
}

/// The indexes a principal may use: all of them, or a set of names.
///
/// Serialized as a JSON array of names, `["*"]` meaning all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IndexScope {
    /// Every index (admins; a `*` grant).
    All,
    /// No index.
    #[default]
    None,
    /// Only these indexes (never empty).
    Only(BTreeSet<String>),
}

/// The grant that stands for every index.
pub const ALL_INDEXES: &str = "*";

impl IndexScope {
    /// From grant names; `*` among them means all.
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: BTreeSet<String> = names.into_iter().map(Into::into).collect();
        if set.contains(ALL_INDEXES) {
            Self::All
        } else if set.is_empty() {
            Self::None
        } else {
            Self::Only(set)
        }
    }

    /// The grant names (`["*"]` for all).
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec![ALL_INDEXES.to_owned()],
            Self::None => Vec::new(),
            Self::Only(set) => set.iter().cloned().collect(),
        }
    }

    /// Whether `index` is in scope.
    pub fn contains(&self, index: &str) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Only(set) => set.contains(index),
        }
    }

    /// Whether every index of `other` is in this scope.
    pub fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::All, _) | (_, Self::None) => true,
            (_, Self::All) => false,
            (Self::None, Self::Only(_)) => false,
            (Self::Only(mine), Self::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The indexes in both scopes.
    pub fn intersect(&self, other: &Self) -> Self {
        match (self, other) {
            (Self::All, x) | (x, Self::All) => x.clone(),
            (Self::None, _) | (_, Self::None) => Self::None,
            (Self::Only(a), Self::Only(b)) => {
                Self::from_names(a.intersection(b).cloned().collect::<Vec<_>>())
            }
        }
    }
}

impl Serialize for IndexScope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IndexScope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_names(Vec::<String>::deserialize(deserializer)?))
    }
}

/// Longest index name accepted in a grant.
pub const MAX_INDEX_NAME: usize = 64;

/// Check an index name given in a grant: `*`, or 1–64 characters of ASCII
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn validate_index_name(field: &str, name: &str) -> Result<()> {
    if name == ALL_INDEXES || is_index_name(name) {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            "index names are 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit (or \"*\" for all)",
        ))
    }
}

/// Whether `name` is a well-formed index name (not `*`).
pub fn is_index_name(name: &str) -> bool {
    (1..=MAX_INDEX_NAME).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_search_and_query_editors_also_ingest_admins_do_everything() {
        use Permission::*;
        let table = [
            (Role::Reader, [true, true, false, false]),
            (Role::Editor, [true, true, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, expected) in table {
            for (permission, allowed) in [Search, Query, Ingest, Admin].into_iter().zip(expected) {
                assert_eq!(role.allows(permission), allowed, "{role} {permission:?}");
            }
        }
    }

    #[test]
    fn a_star_grant_covers_every_index() {
        let all = IndexScope::from_names(["docs", "*"]);
        assert_eq!(all, IndexScope::All);
        assert!(all.contains("anything"));
        assert_eq!(all.names(), vec!["*"]);
    }

    #[test]
    fn scopes_intersect_and_cover() {
        let docs = IndexScope::from_names(["docs", "faq"]);
        let faq = IndexScope::from_names(["faq"]);
        assert!(docs.covers(&faq));
        assert!(!faq.covers(&docs));
        assert!(IndexScope::All.covers(&docs));
        assert!(!docs.covers(&IndexScope::All));
        assert_eq!(docs.intersect(&faq), faq);
        assert_eq!(IndexScope::All.intersect(&faq), faq);
        assert_eq!(
            faq.intersect(&IndexScope::from_names(["other"])),
            IndexScope::None
        );
        assert!(!IndexScope::None.contains("docs"));
    }

    #[test]
    fn scopes_serialize_as_name_arrays() {
        let json = serde_json::to_string(&IndexScope::from_names(["b", "a"])).unwrap();
        assert_eq!(json, r#"["a","b"]"#);
        let back: IndexScope = serde_json::from_str(r#"["*"]"#).unwrap();
        assert_eq!(back, IndexScope::All);
    }

    #[test]
    fn accepts_plain_index_names_and_rejects_odd_ones() {
        for ok in ["docs", "a", "Docs_2024-v1.0", "*"] {
            assert!(validate_index_name("index", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a/b",
            "a b",
            "x'; DROP TABLE",
            &"a".repeat(65),
        ] {
            assert!(validate_index_name("index", bad).is_err(), "{bad}");
        }
    }
}
