//! What a name or an address must look like, shared by the configuration's parts.

/// Whether `address` is one plausible email address (no list, no spaces), as a subscription takes it.
pub fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !address.chars().any(|c| c.is_whitespace() || c == ',')
}
