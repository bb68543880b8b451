//! Governance rules: per zone, the dataset tags that must be present before a
//! dataset may be registered in (or moved into) that zone.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::meta::{self, Db, Zone};

/// The rules of one zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneRulesDoc {
    /// Dataset tags that must be present (with a non-empty value).
    #[serde(default)]
    pub required_tags: Vec<String>,
}

/// The whole governance document, as `GET/PUT /api/v1/governance` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Rules by zone name (`raw`, `transformed`, `curated`).
    #[serde(default)]
    pub zones: BTreeMap<Zone, ZoneRulesDoc>,
}

impl Governance {
    /// The required tags of `zone` that `tags` lacks (absent or empty), sorted.
    pub fn missing_tags(&self, zone: Zone, tags: &BTreeMap<String, String>) -> Vec<String> {
        let Some(rules) = self.zones.get(&zone) else {
            return Vec::new();
        };
        let mut missing: Vec<String> = rules
            .required_tags
            .iter()
            .filter(|t| tags.get(*t).is_none_or(|v| v.trim().is_empty()))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// `Err(Governance)` if `tags` lacks a required tag of `zone`.
    pub fn check(
        &self,
        zone: Zone,
        dataset: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let missing = self.missing_tags(zone, tags);
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Governance {
            message: format!(
                "zone {zone} requires the dataset tags {}; dataset {dataset:?} lacks: {}",
                self.zones
                    .get(&zone)
                    .map(|r| r.required_tags.join(", "))
                    .unwrap_or_default(),
                missing.join(", ")
            ),
            missing,
        })
    }

    /// Checks names: non-empty, at most 128 bytes, no duplicates.
    pub fn validate(&self) -> Result<(), Error> {
        for (zone, rules) in &self.zones {
            for (i, t) in rules.required_tags.iter().enumerate() {
                let field = format!("zones.{zone}.required_tags[{i}]");
                if t.trim().is_empty() || t.len() > 128 {
                    return Err(Error::invalid(field, "tag names are 1 to 128 bytes"));
                }
            }
        }
        Ok(())
    }
}

/// Reads the rules inside an open connection (empty rules if none were set).
pub fn load(conn: &Connection) -> Result<Governance, meta::Error> {
    let text: Option<String> = conn
        .prepare_cached("SELECT value FROM catalog_settings WHERE name = 'governance'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    match text {
        None => Ok(Governance::default()),
        Some(t) => serde_json::from_str(&t).map_err(|e| meta::Error::Corrupt(e.to_string())),
    }
}

/// Reads the current rules.
pub async fn get(db: &Db) -> Result<Governance, Error> {
    Ok(db.read(load).await?)
}

/// Replaces the rules. Datasets already registered are not re-checked: rules apply
/// to registrations and moves from now on.
pub async fn put(db: &Db, doc: Governance) -> Result<Governance, Error> {
    doc.validate()?;
    let text = serde_json::to_string(&doc).map_err(|e| meta::Error::Corrupt(e.to_string()))?;
    db.write(move |conn| {
        conn.execute(
            "INSERT INTO catalog_settings (name, value) VALUES ('governance', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [&text],
        )?;
        Ok(())
    })
    .await?;
    Ok(doc)
}
