//! How results and progress reach the user: progress on stderr, results on stdout (text or
//! one JSON document), confirmation prompts only on a terminal.

use anyhow::{Result, bail};
use std::io::{BufRead, IsTerminal, Write};

/// The `--output` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

impl Output {
    /// Progress for people, on stderr whatever the output format.
    pub fn progress(self, message: impl AsRef<str>) {
        eprintln!("{}", message.as_ref());
    }

    /// Prints `result` as JSON when asked; otherwise lets `text` print it for people.
    pub fn result<T: serde::Serialize>(self, result: &T, text: impl FnOnce(&T)) -> Result<()> {
        match self {
            Output::Json => println!("{}", serde_json::to_string_pretty(result)?),
            Output::Text => text(result),
        }
        Ok(())
    }
}

/// Asks `question` on a terminal; `yes` answers it in advance. Without a terminal and without
/// `--yes`, refuses rather than guess.
pub fn confirm(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    // A usage mistake like any other missing flag: exit 2.
    if !std::io::stdin().is_terminal() {
        bail!(crate::user_error::UserError(format!(
            "confirmation needed ({question}), but standard input is not a terminal; pass --yes \
             to proceed"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
