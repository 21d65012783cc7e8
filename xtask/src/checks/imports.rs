//! The house's import rules, read from the sources: no module of either crate reaches itself
//! through `crate::` paths (no import circle), and the pure modules never reach a module that
//! calls AWS, so that planning stays testable without the network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One crate's modules (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; the crate root is left
/// out) and the text of each, test-only modules left out.
struct Crate {
    sources: BTreeMap<String, String>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut sources = BTreeMap::new();
        for relative in crate::checks::policies::sources(src, src) {
            let path = relative.trim_end_matches(".rs").trim_end_matches("/mod");
            let module = if path == "main" || path == "lib" {
                String::new()
            } else {
                path.replace('/', "::")
            };
            sources.insert(
                module,
                std::fs::read_to_string(src.join(&relative)).unwrap(),
            );
        }
        Crate::from_sources(sources)
    }

    /// The modules of `sources`, without those declared under `#[cfg(test)]` (and theirs).
    fn from_sources(mut sources: BTreeMap<String, String>) -> Crate {
        let mut test_only = BTreeSet::new();
        for (module, text) in &sources {
            let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for (at, _) in compact.match_indices("#[cfg(test)] ") {
                let rest = &compact[at + "#[cfg(test)] ".len()..];
                let rest = rest
                    .strip_prefix("pub(crate) ")
                    .or_else(|| rest.strip_prefix("pub "))
                    .unwrap_or(rest);
                if let Some(name) = rest
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix_at(';'))
                {
                    test_only.insert(join(module, name));
                }
            }
        }
        sources.retain(|module, _| {
            !test_only
                .iter()
                .any(|t| module == t || module.starts_with(&format!("{t}::")))
        });
        Crate { sources }
    }

    /// The longest module that `path` (`a::b::Name`) names, if any.
    fn resolve(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| self.sources.contains_key(candidate))
    }

    /// Which modules each module names: through `crate::` paths and `use crate::{...}` groups,
    /// `super::` paths, and a parent's paths into its own children; never itself or the root.
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges = BTreeMap::new();
        for (module, text) in &self.sources {
            if module.is_empty() {
                continue;
            }
            let product = text
                .split("#[cfg(test)]\nmod tests {")
                .next()
                .unwrap_or(text);
            let mut named = BTreeSet::new();
            for path in paths_after(product, "crate::") {
                named.extend(self.resolve(&path));
            }
            for group in groups_after(product, "use crate::{") {
                for item in group.split([',', '{', '}']) {
                    named.extend(self.resolve(item.trim()));
                }
            }
            for (at, _) in product.match_indices("super::") {
                if product[..at].ends_with("::") {
                    continue; // the second `super` of a chain, read with the first
                }
                let mut rest = &product[at..];
                let mut base = module.as_str();
                while let Some(after) = rest.strip_prefix("super::") {
                    base = base.rsplit_once("::").map_or("", |(p, _)| p);
                    rest = after;
                }
                let path = path_at(rest);
                named.extend(self.resolve(&join(base, &path)).or(Some(base.to_owned())));
            }
            for child in self.sources.keys().filter(|c| {
                c.strip_prefix(&format!("{module}::"))
                    .is_some_and(|rest| !rest.contains("::"))
            }) {
                let name = child.rsplit("::").next().unwrap();
                if names_bare(product, name) {
                    named.insert(child.clone());
                }
            }
            named.retain(|n| n != module && !n.is_empty());
            edges.insert(module.clone(), named);
        }
        edges
    }

    /// The modules whose own code (its tests left out) contains any of `needles`.
    fn containing(&self, needles: &[&str]) -> BTreeSet<String> {
        self.sources
            .iter()
            .filter(|(_, text)| {
                let product = text
                    .split("#[cfg(test)]\nmod tests {")
                    .next()
                    .unwrap_or(text);
                needles.iter().any(|needle| product.contains(needle))
            })
            .map(|(module, _)| module.clone())
            .collect()
    }

    /// The modules whose own code names an AWS SDK crate.
    fn calling_aws(&self) -> BTreeSet<String> {
        self.containing(&["aws_sdk_", "aws_config", "aws_smithy_"])
    }

    /// The modules whose own code sends an SDK request (a single one or a paginator's).
    fn sending_requests(&self) -> BTreeSet<String> {
        self.containing(&[".send()", "into_paginator()"])
    }
}

trait StripSuffixAt {
    fn strip_suffix_at(&self, end: char) -> Option<&str>;
}

impl StripSuffixAt for str {
    /// The text before the first `end`, when it is one identifier.
    fn strip_suffix_at(&self, end: char) -> Option<&str> {
        let (name, _) = self.split_once(end)?;
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            .then_some(name)
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}::{name}")
    }
}

/// Whether `name::` appears as a path of its own (not as the tail of `x::name::` or `x_name::`).
fn names_bare(text: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    text.match_indices(&needle).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// The lowercase `a::b::c` paths that follow each `prefix` in `text`.
fn paths_after<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    text.match_indices(prefix)
        .map(move |(at, _)| path_at(&text[at + prefix.len()..]))
}

/// The lowercase `a::b::c` path `text` starts with (a capitalised segment ends it: a type).
fn path_at(text: &str) -> String {
    let mut path = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            path.push(c);
        } else if text[i..].starts_with("::")
            && text[i + 2..]
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_lowercase())
        {
            path.push_str("::");
            chars.next();
        } else {
            break;
        }
    }
    path
}

/// The brace-balanced text after each `opening` (which ends in `{`).
fn groups_after<'a>(text: &'a str, opening: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.match_indices(opening).filter_map(move |(at, _)| {
        let start = at + opening.len();
        let mut depth = 1;
        for (i, c) in text[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&text[start..start + i]);
                    }
                }
                _ => {}
            }
        }
        None
    })
}

/// Every circle of `edges`: strongly connected sets of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w.as_str()) else {
                continue;
            };
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                s.found.push(set);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// Every module `from` reaches through `edges`.
fn reached(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![from.to_owned()];
    while let Some(m) = queue.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                queue.push(next.clone());
            }
        }
    }
    seen
}

fn workspace_crate(name: &str) -> Crate {
    Crate::read(&crate::paths::workspace_root().join(name).join("src"))
}

/// The function's modules that decide without calling AWS: the planning core and its
/// vocabulary.
const FUNCTION_PURE: &[&str] = &[
    "archive",
    "changes",
    "config",
    "consistency",
    "copies",
    "cost",
    "coverage",
    "event",
    "fast_plan",
    "fast_restore",
    "model",
    "pacing",
    "plan",
    "report",
    "restore_records",
    "restore_test",
    "run_mark",
    "settings",
    "tags",
    "tripwire",
    "vault",
];

/// The deployer's modules that decide without calling AWS: the configuration model and the
/// deploy and doctor decisions.
const XTASK_PURE: &[&str] = &[
    "config",
    "config::access",
    "config::expression",
    "config::names",
    "user_error",
    "config::regions",
    "config::restore_test",
    "config::schedules",
    "config::targets",
    "config::zone",
    "build::architecture",
    "paths",
    "stack::keys",
    "restore::plan",
    "restore::points",
    "stack::limits",
    "stack::parameters",
    "stack",
    "stack::template",
    "workflows::doctor::verdicts",
];

/// The folders of the deployer, lowest first: a module may use its own folder's and the ones
/// below, never one above (`aws` takes the pure models' types; the models never reach `aws`).
const XTASK_FLOORS: &[&[&str]] = &[
    &[
        "user_error",
        "paths",
        "output",
        "config",
        "stack",
        "restore",
        "build",
    ],
    &["aws"],
    &["workflows", "bench"],
    &["commands", "checks"],
];

/// The floor of `module` (by its top folder), `None` for the crate root.
fn floor_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    XTASK_FLOORS.iter().position(|floor| floor.contains(&top))
}

/// The imports of `edges` that reach a folder above the importer's.
fn upward(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in edges {
        if from.is_empty() {
            continue;
        }
        let Some(own) = floor_of(from) else {
            panic!("{from} is in no floor of XTASK_FLOORS: add its folder");
        };
        for to in targets {
            if floor_of(to).is_some_and(|theirs| theirs > own) {
                found.push(format!("{from} -> {to}"));
            }
        }
    }
    found
}

#[test]
fn no_deployer_module_uses_a_folder_above_its_own() {
    let krate = workspace_crate("xtask");
    let found = upward(&krate.edges());
    assert!(
        found.is_empty(),
        "modules use a folder above their own (move the shared type down, into a pure model): \
         {found:?}"
    );
    // The check itself: an edge that takes a workflow's type is found, one down is not.
    let sample: BTreeMap<String, BTreeSet<String>> = [
        ("aws::fleet", "workflows::deploy"),
        ("workflows::restore", "aws::restore"),
        ("restore::plan", "config"),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
    .collect();
    assert_eq!(upward(&sample), ["aws::fleet -> workflows::deploy"]);
    assert_eq!(floor_of("aws::restore"), Some(1));
    assert_eq!(floor_of("restore::plan"), Some(0));
    assert!(floor_of("workflows::restore") > floor_of("aws::restore"));
}

#[test]
fn no_module_reaches_itself_through_its_imports() {
    for name in ["function", "xtask"] {
        let krate = workspace_crate(name);
        let edges = krate.edges();
        assert!(
            edges.len() > 15,
            "{name}: only {} modules read",
            edges.len()
        );
        let found = circles(&edges);
        assert!(
            found.is_empty(),
            "{name} has import circles (move the shared name to a module both can use): {}",
            found
                .iter()
                .map(|set| set
                    .iter()
                    .map(|m| format!(
                        "{m} -> {:?}",
                        edges[m].intersection(set).collect::<Vec<_>>()
                    ))
                    .collect::<Vec<_>>()
                    .join("; "))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
}

#[test]
fn pure_modules_never_reach_a_module_that_calls_aws() {
    for (name, pure) in [("function", FUNCTION_PURE), ("xtask", XTASK_PURE)] {
        let krate = workspace_crate(name);
        let edges = krate.edges();
        let calling = krate.calling_aws();
        assert!(
            calling.len() >= 4,
            "{name}: the scan found only {calling:?} calling AWS"
        );
        for module in pure {
            assert!(edges.contains_key(*module), "{name}: no module {module}");
            assert!(
                !calling.contains(*module),
                "{name}::{module} is pure but names an AWS SDK crate; move the call to an edge"
            );
            let reaches: Vec<String> = reached(&edges, module)
                .intersection(&calling)
                .cloned()
                .collect();
            assert!(
                reaches.is_empty(),
                "{name}::{module} is pure but reaches {reaches:?}, which call AWS"
            );
        }
    }
}

/// The deployer's modules outside `aws/` that may send AWS requests themselves, and why.
const XTASK_SENDERS_OUTSIDE_AWS: &[(&str, &str)] = &[
    (
        "bench",
        "builds and removes the benchmark's fleet on the emulator",
    ),
    (
        "bench::common",
        "empties the emulator and builds a benchmark's topic and fleet on it",
    ),
    (
        "bench::fleet",
        "builds the fleet benchmark's instances on the emulator",
    ),
    (
        "commands::demo",
        "makes the demo's instances on the emulator",
    ),
];

#[test]
fn only_the_aws_edges_send_requests() {
    let krate = workspace_crate("xtask");
    let sending = krate.sending_requests();
    let edges: Vec<&String> = sending.iter().filter(|m| m.starts_with("aws")).collect();
    assert!(edges.len() >= 10, "the scan found only {edges:?} in aws/");
    let strays: Vec<&String> = sending
        .iter()
        .filter(|m| !m.starts_with("aws"))
        .filter(|m| {
            !XTASK_SENDERS_OUTSIDE_AWS
                .iter()
                .any(|(allowed, _)| allowed == m)
        })
        .collect();
    assert!(
        strays.is_empty(),
        "{strays:?} send AWS requests outside aws/; move each call into an aws/ module (one \
         function per question, its error in one line) and keep the decision where it was"
    );
    for (allowed, why) in XTASK_SENDERS_OUTSIDE_AWS {
        assert!(
            sending.contains(*allowed),
            "{allowed} is allowed to send requests ({why}) but no longer does: drop it from \
             the list"
        );
    }
    let scan = Crate::from_sources(
        [
            ("", "mod aws; mod workflow;"),
            ("aws", "fn f() { c.get_role()\n    .send()\n    .await; }"),
            (
                "workflow",
                "fn g() { c.list().into_paginator().send(); tx.send(1); }",
            ),
        ]
        .into_iter()
        .map(|(m, t)| (m.to_owned(), t.to_owned()))
        .collect(),
    );
    assert_eq!(
        scan.sending_requests().into_iter().collect::<Vec<_>>(),
        ["aws", "workflow"]
    );
}

#[test]
fn the_scan_sees_each_form_of_import_and_finds_a_circle() {
    let sources: BTreeMap<String, String> = [
        ("", "mod a; mod b; #[cfg(test)]\nmod t;"),
        (
            "a",
            "use crate::{b::Thing, c};\nfn f() { inner::g() }\npub mod inner;",
        ),
        ("a::inner", "use super::super::c::X;"),
        ("b", "fn g() { crate::a::inner::h() }"),
        ("c", "use aws_sdk_ec2::Client;"),
        ("t", "use crate::a;"),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_owned(), t.to_owned()))
    .collect();
    let krate = Crate::from_sources(sources);
    assert!(
        !krate.sources.contains_key("t"),
        "a test-only module is left out"
    );
    let edges = krate.edges();
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(edges["a"], set(&["b", "c", "a::inner"]));
    assert_eq!(edges["a::inner"], set(&["c"]));
    assert_eq!(edges["b"], set(&["a::inner"]));
    assert_eq!(circles(&edges), Vec::<BTreeSet<String>>::new());
    assert_eq!(krate.calling_aws(), set(&["c"]));
    assert!(reached(&edges, "b").contains("c"));
    // a::inner naming b closes b -> a::inner -> b.
    let mut circular = edges;
    circular.get_mut("a::inner").unwrap().insert("b".into());
    assert_eq!(circles(&circular), vec![set(&["a::inner", "b"])]);
}
