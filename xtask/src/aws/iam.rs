//! The IAM edge doctor reads: a role's trust policy and IAM's policy simulator. Errors come
//! back as one line ([`said`]) for doctor's unknown verdicts.

use crate::aws::said;

/// The trust policy of role `role_name`, as IAM returns it (URL-encoded JSON), `None` when the
/// role has none.
pub async fn trust_policy(
    iam: &aws_sdk_iam::Client,
    role_name: &str,
) -> Result<Option<String>, String> {
    let read = iam
        .get_role()
        .role_name(role_name)
        .send()
        .await
        .map_err(|error| said(&error))?;
    Ok(read
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .map(str::to_owned))
}

/// One question to IAM's simulator: may `principal` make `actions` on `resource`, with these
/// string condition keys set.
pub struct Question<'a> {
    pub principal: &'a str,
    pub actions: &'a [String],
    pub resource: &'a str,
    pub context: &'a [(String, String)],
}

/// The simulator's decision for each action that it does not allow: action and decision
/// (`implicitDeny`, `explicitDeny`).
pub async fn not_allowed(
    iam: &aws_sdk_iam::Client,
    question: &Question<'_>,
) -> Result<Vec<(String, String)>, String> {
    let context = question.context.iter().map(|(key, value)| {
        aws_sdk_iam::types::ContextEntry::builder()
            .context_key_name(key)
            .context_key_type(aws_sdk_iam::types::ContextKeyTypeEnum::String)
            .context_key_values(value)
            .build()
    });
    let result = iam
        .simulate_principal_policy()
        .policy_source_arn(question.principal)
        .set_action_names(Some(question.actions.to_vec()))
        .resource_arns(question.resource)
        .set_context_entries(Some(context.collect()))
        .send()
        .await
        .map_err(|error| said(&error))?;
    Ok(result
        .evaluation_results()
        .iter()
        .filter(|e| e.eval_decision() != &aws_sdk_iam::types::PolicyEvaluationDecisionType::Allowed)
        .map(|e| {
            (
                e.eval_action_name().to_owned(),
                e.eval_decision().as_str().to_owned(),
            )
        })
        .collect())
}
