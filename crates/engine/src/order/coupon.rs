//! The coupon policy: which of the storefront's offers goes on the cart.

use super::{RunLog, totals_of};
use crate::flow::{Failure, Flow, FlowError};
use crate::profile::{Phase, Profile};
use cartwright_core::batch::CouponPolicy;
use cartwright_core::order::{ErrorClass, Level};
use serde_json::Value;

/// Applies a coupon as the batch asks: the code it names, none, the first offered, the
/// best of those offered (each tried where it is applied), or one required.
pub(super) async fn apply(
    flow: &mut Flow<'_>,
    profile: &Profile,
    policy: CouponPolicy,
    code: Option<&str>,
    log: &RunLog,
) -> Result<Option<String>, FlowError> {
    if let Some(code) = code {
        return apply_code(flow, profile, code, log).await;
    }
    if policy == CouponPolicy::None {
        return Ok(None);
    }
    let Some(coupons) = &profile.coupons else {
        if policy == CouponPolicy::Required {
            return Err(Failure::new(
                ErrorClass::Business,
                "a coupon is required but the profile has no [coupons] section",
            )
            .into());
        }
        log.say(
            Level::Warn,
            "the profile has no [coupons] section: no coupon applied",
        );
        return Ok(None);
    };
    let Some(option) = &coupons.option else {
        return Err(Failure::new(
            ErrorClass::Profile,
            "the batch asks for an offered coupon but the profile's [coupons] has no `option` (it only takes codes)",
        )
        .into());
    };
    flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
        .await?;
    let offered = flow.count(option, "clickable").await?;
    if offered == 0 {
        if policy == CouponPolicy::Required {
            return Err(Failure::new(
                ErrorClass::Business,
                "no coupon is offered and the batch requires one",
            )
            .into());
        }
        log.say(Level::Info, "no coupon is offered");
        return Ok(None);
    }
    let mut chosen = 0;
    if policy == CouponPolicy::Best && offered > 1 {
        let tries = offered.min(10);
        let mut best: Option<(usize, i64)> = None;
        for i in 0..tries {
            if i > 0 {
                flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
                    .await?;
            }
            flow.unset("coupon");
            if !flow.click_nth(option, i).await? {
                continue;
            }
            if flow
                .steps(Some(Phase::ReadTotal), &coupons.applied, "coupons.applied.")
                .await
                .is_err()
            {
                // Not accepted (below its minimum): not a candidate.
                continue;
            }
            flow.unset("total");
            if coupons.total.is_empty() {
                flow.phase(Phase::ReadTotal).await?;
            } else {
                flow.steps(Some(Phase::ReadTotal), &coupons.total, "coupons.total.")
                    .await?;
            }
            if let Some(t) = totals_of(flow) {
                log.say(
                    Level::Debug,
                    format!(
                        "offer {} of {offered}: total {}",
                        i + 1,
                        cartwright_core::money::show_minor(t.total_minor)
                    ),
                );
                if best.is_none_or(|(_, b)| t.total_minor < b) {
                    best = Some((i, t.total_minor));
                }
            }
            flow.steps(Some(Phase::ReadTotal), &coupons.remove, "coupons.remove.")
                .await?;
        }
        let Some((i, _)) = best else {
            if policy == CouponPolicy::Required {
                return Err(
                    Failure::new(ErrorClass::Business, "no offered coupon was accepted").into(),
                );
            }
            return Ok(None);
        };
        chosen = i;
        flow.steps(Some(Phase::ReadTotal), &coupons.open, "coupons.open.")
            .await?;
    }
    flow.unset("coupon");
    if !flow.click_nth(option, chosen).await? {
        return Err(Failure::new(
            ErrorClass::Profile,
            "the coupon's Apply button could not be clicked",
        )
        .into());
    }
    if let Err(e) = flow
        .steps(Some(Phase::ReadTotal), &coupons.applied, "coupons.applied.")
        .await
    {
        if policy == CouponPolicy::Required {
            return Err(e);
        }
        log.say(Level::Warn, format!("the coupon was not accepted: {e}"));
        return Ok(None);
    }
    let name = match flow
        .var("coupon")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(code) => code.to_owned(),
        None => format!("offer {} of {offered}", chosen + 1),
    };
    log.say(Level::Info, format!("applied coupon {name}"));
    Ok(Some(name))
}

/// Types the batch's coupon code with the profile's `[coupons] code` steps. A code that is
/// not accepted fails the order as the page explains it (a business refusal when the
/// profile's `[errors]` name its message).
async fn apply_code(
    flow: &mut Flow<'_>,
    profile: &Profile,
    code: &str,
    log: &RunLog,
) -> Result<Option<String>, FlowError> {
    let Some(coupons) = profile.coupons.as_ref().filter(|c| !c.code.is_empty()) else {
        return Err(Failure::new(
            ErrorClass::Profile,
            "the batch names a coupon code but the profile's [coupons] has no `code` steps",
        )
        .into());
    };
    flow.set("coupon", serde_json::json!({ "code": code }));
    match flow
        .steps(Some(Phase::ReadTotal), &coupons.code, "coupons.code.")
        .await
    {
        Ok(()) => {
            log.say(Level::Info, format!("applied coupon code {code}"));
            Ok(Some(code.to_owned()))
        }
        Err(FlowError::Failed(mut f)) => {
            f.message = format!("coupon code {code} not applied: {}", f.message);
            Err(FlowError::Failed(f))
        }
        Err(e) => Err(e),
    }
}
