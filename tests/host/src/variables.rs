//! Spin application variables: declared in `[variables]` with a default or
//! `required = true`, overridden by a provider (Spin's env provider reads
//! `SPIN_VARIABLE_<NAME>`), surfaced to a component through its
//! `[component.x.variables]` templates (`"{{ app_var }}"`).

use anyhow::{Result, bail};
use std::collections::{BTreeMap, HashMap};

use crate::manifest::Manifest;

/// Spin's rule for variable names: lowercase ASCII letters, digits and
/// underscores, starting with a letter, no `__`, not ending with `_`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if !ok {
        bail!(
            "invalid variable name {name:?}: use lowercase letters, digits and single underscores"
        );
    }
    Ok(())
}

/// Resolves `{{ name }}` templates against application variables.
pub fn expand(template: &str, app: &AppVariables) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unterminated '{{{{' in {template:?}");
        };
        let name = after[..end].trim();
        match app.get(name) {
            Some(value) => out.push_str(value),
            None => bail!("template {template:?} names undefined variable {name:?}"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a template contains any `{{ }}` expression.
pub fn is_template(s: &str) -> bool {
    s.contains("{{")
}

/// The resolved values of every application variable.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
    secret: Vec<String>,
}

impl AppVariables {
    /// Resolves each declared variable: provider value, else default, else
    /// (required) a start-up error, as `spin up` refuses to start.
    pub fn resolve(manifest: &Manifest, provider: &BTreeMap<String, String>) -> Result<Self> {
        let mut values = HashMap::new();
        let mut secret = Vec::new();
        let mut missing = Vec::new();
        for (name, var) in &manifest.variables {
            if var.secret {
                secret.push(name.clone());
            }
            match provider.get(name).or(var.default.as_ref()) {
                Some(v) => {
                    values.insert(name.clone(), v.clone());
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            bail!(
                "required variables have no value: {} (set SPIN_VARIABLE_<NAME>)",
                missing.join(", ")
            );
        }
        Ok(Self { values, secret })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.secret.iter().any(|s| s == name)
    }
}

/// Spin's environment-variable provider: `SPIN_VARIABLE_AZURE_OPENAI_API_KEY`
/// sets `azure_openai_api_key`.
pub fn env_provider(env: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    env.into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("SPIN_VARIABLE_")
                .map(|name| (name.to_ascii_lowercase(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
endpoint = { default = "https://a.example" }
key = { required = true, secret = true }
"#,
        )
        .unwrap()
    }

    #[test]
    fn required_variable_without_value_refuses_to_start() {
        let err = AppVariables::resolve(&manifest(), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn provider_overrides_default() {
        let provider = env_provider([
            (
                "SPIN_VARIABLE_ENDPOINT".to_string(),
                "https://b.example".to_string(),
            ),
            ("SPIN_VARIABLE_KEY".to_string(), "k".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        let vars = AppVariables::resolve(&manifest(), &provider).unwrap();
        assert_eq!(vars.get("endpoint"), Some("https://b.example"));
        assert!(vars.is_secret("key"));
        assert_eq!(
            expand("{{ endpoint }}/x-{{key}}", &vars).unwrap(),
            "https://b.example/x-k"
        );
        assert!(expand("{{ nope }}", &vars).is_err());
    }

    #[test]
    fn names_follow_spins_rules() {
        assert!(check_name("azure_openai_endpoint").is_ok());
        for bad in ["Upper", "1abc", "a__b", "a_", "a-b", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
