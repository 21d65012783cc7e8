//! `smartvault.yaml`'s keys against docs/deployer.md: every key the parser takes is in the
//! doc's tables and every documented key is one it takes, and each function setting's
//! documented default and range are the ones `function::settings` holds.

use function::settings;
use std::collections::BTreeSet;

/// The keys the parser takes at `prefix` (YAML leading to a mapping), read from its own
/// refusal of an unknown key: serde lists every field it expects.
fn parser_keys(prefix: &str, indent: &str) -> BTreeSet<String> {
    let text = format!("{prefix}{indent}zz_not_a_key: 1\n");
    let error = crate::config::parse(&text, "keys.yaml", "e")
        .err()
        .unwrap_or_else(|| panic!("an unknown key was taken: {text}"))
        .to_string();
    let expected = error
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no list of expected keys in: {error}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The keys in the first column of the table under `heading` in docs/deployer.md (a cell may
/// name two: `` `a` / `b` ``).
fn documented_keys(heading: &str) -> BTreeSet<String> {
    table_rows(heading)
        .into_iter()
        .flat_map(|row| super::ticked(row.split(" | ").next().unwrap_or_default()))
        .collect()
}

fn deployer_doc() -> String {
    std::fs::read_to_string(crate::paths::workspace_root().join("docs/deployer.md")).unwrap()
}

/// The rows (`| ... |` lines) of the first table after `heading`.
fn table_rows(heading: &str) -> Vec<String> {
    let doc = deployer_doc();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/deployer.md has no heading {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(str::to_owned)
        .collect()
}

const ENVIRONMENT: &str =
    "environments:\n  e:\n    region: us-east-1\n    notification_emails: [a@b.io]\n";

#[test]
fn every_key_the_parser_takes_is_documented_and_no_other() {
    let parsed = parser_keys(ENVIRONMENT, "    ");
    assert!(parsed.contains("max_concurrency"), "{parsed:?}");
    assert_eq!(
        parsed,
        documented_keys("## `smartvault.yaml`"),
        "docs/deployer.md's key table and the parser differ"
    );
    let targets = parser_keys(
        &format!("{ENVIRONMENT}    targets:\n      regions: [us-east-1]\n"),
        "      ",
    );
    assert_eq!(
        targets,
        documented_keys("## Organizations: one environment across accounts and regions"),
        "docs/deployer.md's targets table and the parser differ"
    );
}

#[test]
fn each_function_settings_documented_default_and_range_are_its_own() {
    let rows = table_rows("## `smartvault.yaml`");
    let row = |key: &str| -> Vec<String> {
        let row = rows
            .iter()
            .find(|r| {
                super::ticked(r.split(" | ").next().unwrap())
                    .iter()
                    .any(|k| k == key)
            })
            .unwrap_or_else(|| panic!("no row for {key}"));
        row.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect()
    };
    for setting in [
        settings::MIN_INTERVAL,
        settings::MAX_CONCURRENCY,
        settings::EC2_RATE_SHARE,
        settings::EC2_REFILL_PER_SECOND,
        settings::MAX_LINKS,
        settings::RETENTION_DAYS,
        settings::KEEP_LAST,
    ] {
        let cells = row(setting.key);
        assert_eq!(
            cells[1],
            setting.default.to_string(),
            "{}'s documented default",
            setting.key
        );
        let range = format!("{}-{}", setting.range.start(), setting.range.end());
        assert!(
            cells[2].starts_with(&range),
            "{}'s documented range is {:?}, not {range}",
            setting.key,
            cells[2]
        );
    }
    for flag in [settings::EXCLUDE_BOOT_VOLUME, settings::DRY_RUN] {
        assert_eq!(row(flag.key)[1], flag.default.to_string(), "{}", flag.key);
    }
    let tags = row(settings::BACKUP_TAG_KEY.key);
    assert_eq!(
        tags[1],
        format!(
            "`{}` / `{}`",
            settings::BACKUP_TAG_KEY.default,
            settings::BACKUP_TAG_VALUE.default
        )
    );
}
