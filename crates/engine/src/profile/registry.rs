//! Where profiles come from: a directory of `.toml` files the operator edits, then the
//! profiles built into the binary (`demo`, `tira`). A profile is read again when its file
//! changes, so an edit takes effect on the next run without a restart.

use super::{Profile, ProfileErrors, load_file, parse};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const BUILT_IN: &[(&str, &str)] = &[
    ("demo", include_str!("../../../../profiles/demo.toml")),
    ("threads", include_str!("../../../../profiles/threads.toml")),
    ("tira", include_str!("../../../../profiles/tira.toml")),
];

/// Why a profile is not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// No file and no built-in profile of that name.
    #[error("no profile is named {name:?} (looked in {dir} and the built-in {builtin})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The directory searched.
        dir: String,
        /// The built-in names.
        builtin: String,
    },
    /// The profile has errors.
    #[error("{0}")]
    Invalid(#[from] ProfileErrors),
}

/// A loaded profile and the modification time of the file it came from.
type Cached = (Option<SystemTime>, Arc<Profile>);

/// The profiles an engine uses.
pub struct Profiles {
    dir: Option<PathBuf>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Profiles {
    /// Profiles from `dir` (when given) and the built-in ones.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            cache: Mutex::default(),
        }
    }

    /// Makes `profile` available under its name, ahead of files and built-in ones: for
    /// profiles built in code (benchmarks, tests).
    pub fn insert(&self, profile: Profile) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(profile.name.clone(), (None, Arc::new(profile)));
    }

    /// The profile named `name`: `{dir}/{name}.toml` if it exists, else the built-in one.
    pub fn get(&self, name: &str) -> Result<Arc<Profile>, RegistryError> {
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{name}.toml")))
            .filter(|p| p.is_file());
        let modified = file
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, profile)) = cache.get(name)
            && *at == modified
        {
            return Ok(profile.clone());
        }
        let profile = match &file {
            Some(path) => load_file(path)?,
            None => {
                let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
                    return Err(RegistryError::Unknown {
                        name: name.to_owned(),
                        dir: self
                            .dir
                            .as_deref()
                            .map_or_else(|| "(no directory)".into(), |d| d.display().to_string()),
                        builtin: BUILT_IN
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                parse(text, Path::new(&format!("(built-in) {name}.toml")), name)?
            }
        };
        let profile = Arc::new(profile);
        cache.insert(name.to_owned(), (modified, profile.clone()));
        Ok(profile)
    }
}
