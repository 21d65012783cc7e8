//! Fast snapshot restore's rule tables: what a rule refuses and what it costs.

use super::*;

fn rule(zones: &[&str], count: u32) -> Rule {
    Rule {
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        count,
        tag: None,
    }
}

#[test]
fn a_rule_is_refused_for_each_mistake_with_its_fix() {
    let problem = |r: Rule| r.problem("us-east-1").unwrap_or_default();
    assert_eq!(
        rule(&["us-east-1a", "us-east-1b"], 2).problem("us-east-1"),
        None
    );
    assert_eq!(rule(&["us-gov-west-1a"], 1).problem("us-gov-west-1"), None);
    assert!(problem(rule(&[], 1)).contains("lists 0 zones; list 1 to 10"));
    let eleven: Vec<String> = ('a'..='k').map(|c| format!("us-east-1{c}")).collect();
    let many = Rule {
        zones: eleven,
        ..rule(&[], 1)
    };
    assert!(problem(many).contains("lists 11 zones"));
    assert!(problem(rule(&["use1-az1"], 1)).contains("\"use1-az1\" is not a zone name"));
    assert!(problem(rule(&["us-east-1"], 1)).contains("is not a zone name"));
    assert!(
        problem(rule(&["eu-west-1a"], 1))
            .contains("eu-west-1a is not a zone of us-east-1, where the sets are")
    );
    assert!(problem(rule(&["us-east-1a", "us-east-1a"], 1)).contains("names a zone twice"));
    assert!(problem(rule(&["us-east-1a"], 0)).contains("count 0 is outside 1-1000"));
    assert!(problem(rule(&["us-east-1a"], 1001)).contains("count 1001 is outside"));
    let aws_tag = Rule {
        tag: Some(Selector {
            key: "aws:cloudformation:stack-name".into(),
            value: "x".into(),
        }),
        ..rule(&["us-east-1a"], 1)
    };
    assert!(problem(aws_tag).contains("cannot select instances"));
}

#[test]
fn a_rule_costs_its_sets_times_its_zones_all_month_per_volume() {
    // $0.75 an hour, 730 hours: $547.50 per snapshot and zone.
    assert_eq!(rule(&["us-east-1a"], 1).monthly_usd_per_volume(), 547.5);
    assert_eq!(
        rule(&["us-east-1a", "us-east-1b"], 3).monthly_usd_per_volume(),
        6.0 * 547.5
    );
}
