//! A mistake in what the user gave (a flag, smartvault.yaml, a file named on the command line):
//! exit code 2, with what is wrong and the fix, before anything is changed.

/// The user's mistake, said with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError(pub String);

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}
