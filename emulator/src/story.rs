//! Long end-to-end tests told as named stages: every stage runs and asserts what a user sees,
//! a failing stage does not hide the ones after it, and the test fails naming each stage that
//! failed, in order.

use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// One story's stages so far, and the ones that failed.
pub struct Story {
    name: String,
    ran: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Story {
    pub fn new(name: &str) -> Story {
        Story {
            name: name.to_owned(),
            ran: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Runs stage `name`; its value, or `None` when it failed (the failure is recorded and
    /// the story goes on). A later stage that needs the value ends the story with [`end`]
    /// when it is `None`.
    ///
    /// [`end`]: Story::end
    pub async fn stage<T>(&mut self, name: &str, work: impl Future<Output = T>) -> Option<T> {
        eprintln!("--- {}: {name}", self.name);
        self.ran.push(name.to_owned());
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(value) => Some(value),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                self.failed.push((name.to_owned(), message));
                None
            }
        }
    }

    /// Ends the story: passes when no stage failed, else fails naming every failed stage and
    /// its message.
    pub fn end(self) {
        if self.failed.is_empty() {
            return;
        }
        let failures: Vec<String> = self
            .failed
            .iter()
            .map(|(stage, message)| format!("  {stage}: {message}"))
            .collect();
        panic!(
            "{}: {} of {} stage(s) failed:\n{}",
            self.name,
            self.failed.len(),
            self.ran.len(),
            failures.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_stage_is_named_and_the_next_ones_still_run() {
        let mut story = Story::new("story");
        assert_eq!(story.stage("first", async { 1 }).await, Some(1));
        let failed: Option<()> = story
            .stage("second", async { panic!("the stack is missing") })
            .await;
        assert_eq!(failed, None);
        let mut later = false;
        story.stage("third", async { later = true }).await;
        assert!(later, "a stage after a failed one runs");
        let message = std::panic::catch_unwind(AssertUnwindSafe(|| story.end()))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        assert_eq!(
            *message,
            "story: 1 of 3 stage(s) failed:\n  second: the stack is missing"
        );
        Story::new("clean").end();
    }
}
