//! Zone rules on the S3 path: who may ask to override them.
//!
//! The rules themselves are checked by the metadata layer inside the write's
//! transaction (`meta::zones`); this module only turns the request into
//! [`ZoneRules`]. An admin overrides them explicitly, per request, with the header
//! `x-tarn-override-zone-rules: true`, so that an admin's everyday writes obey the
//! same rules as everyone else's.

use super::Ctx;
use super::error::{Code, S3Error};
use crate::meta::ZoneRules;

/// The request header with which an admin overrides the zone rules.
pub const OVERRIDE_HEADER: &str = "x-tarn-override-zone-rules";

/// The zone rules that apply to this request's writes.
pub fn zone_rules(ctx: &Ctx) -> Result<ZoneRules, S3Error> {
    let Some(value) = ctx.parts.headers.get(OVERRIDE_HEADER) else {
        return Ok(ZoneRules::Enforce);
    };
    let wants = match value.to_str().map(str::trim) {
        Ok(v) if v.eq_ignore_ascii_case("true") => true,
        Ok(v) if v.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(S3Error::msg(
                Code::InvalidArgument,
                format!("{OVERRIDE_HEADER} must be true or false"),
            ));
        }
    };
    if !wants {
        return Ok(ZoneRules::Enforce);
    }
    let admin = ctx.principal.as_ref().is_some_and(|p| p.is_admin());
    if !admin {
        return Err(S3Error::msg(
            Code::AccessDenied,
            "only an admin may override zone rules",
        ));
    }
    Ok(ZoneRules::Override)
}
