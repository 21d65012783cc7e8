//! AWS limits the emulator does not enforce, decided before anything changes (pure).

use crate::user_error::UserError;

/// Lambda keeps at least this many of an account's concurrent executions unreserved, and
/// refuses a reservation that would leave fewer.
pub const UNRESERVED_MINIMUM: u32 = 100;

/// An account's Lambda concurrency in a region, as `GetAccountSettings` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    /// The account's "Concurrent executions" quota.
    pub limit: u32,
    /// What no function has reserved.
    pub unreserved: u32,
}

/// Refuses (exit 2) a `reserved_concurrency` that Lambda would refuse mid-deploy: one that
/// leaves fewer than [`UNRESERVED_MINIMUM`] executions unreserved. `current` is what the
/// function reserves today, which the new reservation replaces.
pub fn check_reservation(
    env: &str,
    requested: u32,
    account: AccountConcurrency,
    current: Option<u32>,
) -> Result<(), UserError> {
    let left =
        i64::from(account.unreserved) + i64::from(current.unwrap_or(0)) - i64::from(requested);
    if left >= i64::from(UNRESERVED_MINIMUM) {
        return Ok(());
    }
    let most = (i64::from(account.unreserved) + i64::from(current.unwrap_or(0))
        - i64::from(UNRESERVED_MINIMUM))
    .max(0);
    let can = if most > 0 {
        format!("at most {most} can be reserved here")
    } else {
        "nothing can be reserved here".to_owned()
    };
    Err(UserError(format!(
        "environments.{env}.reserved_concurrency: {requested} would leave {left} of this \
         account's {} concurrent Lambda executions unreserved, and Lambda keeps at least \
         {UNRESERVED_MINIMUM} unreserved ({can}); remove reserved_concurrency (a run in \
         progress already keeps a second one from starting) or ask AWS for a higher \
         \"Concurrent executions\" quota in Service Quotas",
        account.limit
    )))
}

/// How CloudFormation gets a template, each with its own size limit (CloudFormation's
/// quotas page: "Template body size in a request" 51,200 bytes, "Template body size in an
/// Amazon S3 object" 1 MB). The emulator enforces neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateVia {
    /// `TemplateBody`, inline in the request.
    Request,
    /// `TemplateURL`, read from S3.
    S3,
}

/// The most bytes a template may hold when sent `via`.
pub fn max_template_bytes(via: TemplateVia) -> usize {
    match via {
        TemplateVia::Request => 51_200,
        TemplateVia::S3 => 1_000_000,
    }
}

/// Refuses a template CloudFormation would refuse for its size, naming it and the limit.
pub fn check_template_size(name: &str, bytes: usize, via: TemplateVia) -> anyhow::Result<()> {
    let max = max_template_bytes(via);
    if bytes <= max {
        return Ok(());
    }
    anyhow::bail!(
        "the template {name} is {bytes} bytes, over CloudFormation's {max} for a template {}",
        match via {
            TemplateVia::Request => "sent in the request; send it by S3 URL instead",
            TemplateVia::S3 => "read from S3; split it into nested stacks",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_ACCOUNT: AccountConcurrency = AccountConcurrency {
        limit: 10,
        unreserved: 10,
    };
    const USUAL: AccountConcurrency = AccountConcurrency {
        limit: 1000,
        unreserved: 1000,
    };

    #[test]
    fn a_reservation_must_leave_a_hundred_unreserved() {
        let cases = [
            ("usual account, 1", USUAL, 1, None, true),
            (
                "usual account, 900 leaves exactly 100",
                USUAL,
                900,
                None,
                true,
            ),
            ("usual account, 901", USUAL, 901, None, false),
            ("new account, 1", NEW_ACCOUNT, 1, None, false),
            (
                "the function's own reservation is given back first",
                AccountConcurrency {
                    limit: 1000,
                    unreserved: 100,
                },
                5,
                Some(5),
                true,
            ),
            (
                "others reserve the rest",
                AccountConcurrency {
                    limit: 1000,
                    unreserved: 100,
                },
                1,
                None,
                false,
            ),
        ];
        for (name, account, requested, current, allowed) in cases {
            let result = check_reservation("prod", requested, account, current);
            assert_eq!(result.is_ok(), allowed, "{name}: {result:?}");
        }
    }

    #[test]
    fn the_refusal_names_the_quota_the_numbers_and_the_fix() {
        let message = check_reservation("prod", 1, NEW_ACCOUNT, None)
            .unwrap_err()
            .to_string();
        for expected in [
            "environments.prod.reserved_concurrency: 1 would leave 9 of this account's 10",
            "Lambda keeps at least 100 unreserved",
            "nothing can be reserved here",
            "remove reserved_concurrency",
            "\"Concurrent executions\" quota in Service Quotas",
        ] {
            assert!(message.contains(expected), "{expected}: {message}");
        }
        let some = check_reservation("prod", 950, USUAL, None)
            .unwrap_err()
            .to_string();
        assert!(some.contains("at most 900 can be reserved here"), "{some}");
    }
}

#[cfg(test)]
mod template_size_tests {
    use super::*;

    #[test]
    fn every_template_fits_the_limit_of_the_way_it_is_sent() {
        // An environment's template is sent by S3 URL; it was 43,421 bytes when it was still
        // sent in the request, close to the 51,200 that allows. The supporting stacks and the
        // bootstrap go in the request.
        for (file, via) in [
            ("smartvault.yaml", TemplateVia::S3),
            ("bootstrap.yaml", TemplateVia::Request),
            ("central-topic.yaml", TemplateVia::Request),
            ("organization.yaml", TemplateVia::Request),
            // Deployed by an administrator with `aws cloudformation deploy`, which sends it
            // in the request unless given a bucket.
            ("stackset-roles.yaml", TemplateVia::Request),
        ] {
            let body = crate::stack::template::read_template(file).unwrap();
            check_template_size(file, body.len(), via).unwrap();
            eprintln!(
                "{file}: {} of {} bytes",
                body.len(),
                max_template_bytes(via)
            );
        }
    }

    #[test]
    fn a_template_over_its_limit_is_refused_with_the_fix() {
        let inline = check_template_size("t", 51_201, TemplateVia::Request)
            .unwrap_err()
            .to_string();
        assert!(
            inline.contains("51201 bytes, over CloudFormation's 51200")
                && inline.contains("send it by S3 URL instead"),
            "{inline}"
        );
        assert!(check_template_size("t", 51_201, TemplateVia::S3).is_ok());
        assert!(check_template_size("t", 1_000_001, TemplateVia::S3).is_err());
    }
}
