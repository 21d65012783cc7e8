//! The Organizations and Service Quotas edge doctor reads: the services with trusted access,
//! a service's delegated administrators, and a service's quotas.

use crate::aws::said;

/// The service principals with trusted access in the organization.
pub async fn trusted_services(orgs: &aws_sdk_organizations::Client) -> Result<Vec<String>, String> {
    let pages = orgs
        .list_aws_service_access_for_organization()
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut enabled = Vec::new();
    for page in pages {
        let page = page.map_err(|error| said(&error))?;
        enabled.extend(
            page.enabled_service_principals()
                .iter()
                .filter_map(|p| p.service_principal().map(str::to_owned)),
        );
    }
    Ok(enabled)
}

/// The accounts registered as delegated administrators for `service_principal`.
pub async fn delegated_administrators(
    orgs: &aws_sdk_organizations::Client,
    service_principal: &str,
) -> Result<Vec<String>, String> {
    let listed = orgs
        .list_delegated_administrators()
        .service_principal(service_principal)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut admins = Vec::new();
    for item in listed {
        admins.extend(item.map_err(|error| said(&error))?.id().map(str::to_owned));
    }
    Ok(admins)
}

/// The value of `service_code`'s quota named `name` (any case), `None` when not listed.
pub async fn quota(
    quotas: &aws_sdk_servicequotas::Client,
    service_code: &str,
    name: &str,
) -> Result<Option<f64>, String> {
    let listed = quotas
        .list_service_quotas()
        .service_code(service_code)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut value = None;
    for item in listed {
        let quota = item.map_err(|error| said(&error))?;
        if quota
            .quota_name()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
        {
            value = quota.value();
        }
    }
    Ok(value)
}
