//! Every rule of the workflow specification has a black-box scenario test.
//!
//! The rule ids (R-K1, R-I2, …) are read out of `docs/SPEC.md`, and the test
//! names out of the files in `tests/tests`: a test covers a rule when its
//! name carries the id in snake case (`r_p1_…`, or `r_c1_r_p7_…` for two).
//! A rule added to the specification without a test fails this test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits in the workspace")
}

/// The rule ids the specification defines, in the order they appear.
fn rule_ids(spec: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (start, _) in spec.match_indices("**R-") {
        let id: String = spec[start + 2..]
            .chars()
            .take_while(|character| character.is_ascii_alphanumeric() || *character == '-')
            .collect();
        ids.insert(id);
    }
    ids
}

/// `R-P1` written as a test name says it: `r_p1`.
fn snake(rule: &str) -> String {
    rule.to_lowercase().replace('-', "_")
}

/// The rule tokens a test name carries: `r_c1_r_p7_the_…` gives `r_c1`, `r_p7`.
fn rules_named_by(test_name: &str) -> BTreeSet<String> {
    let words: Vec<&str> = test_name.split('_').collect();
    words
        .windows(2)
        .filter(|pair| {
            let code = pair[1].as_bytes();
            pair[0] == "r"
                && code.len() >= 2
                && code[0].is_ascii_lowercase()
                && code[1..].iter().all(u8::is_ascii_digit)
        })
        .map(|pair| format!("r_{}", pair[1]))
        .collect()
}

/// The names of the test functions in one source file: a `fn` right after
/// a `#[test]` or `#[tokio::test…]` attribute.
fn test_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut after_test_attribute = false;
    for line in source.lines().map(str::trim) {
        if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
            after_test_attribute = true;
            continue;
        }
        if after_test_attribute && let Some(rest) = line.split("fn ").nth(1) {
            let name: String = rest
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
                .collect();
            names.push(name);
            after_test_attribute = false;
        }
    }
    names
}

fn test_files() -> Vec<PathBuf> {
    let directory = workspace_root().join("tests/tests");
    let mut files: Vec<PathBuf> = fs::read_dir(&directory)
        .expect("the black-box test directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_rule_of_the_specification_has_a_black_box_test_named_after_it() {
    let spec = fs::read_to_string(workspace_root().join("docs/SPEC.md")).expect("docs/SPEC.md");
    let rules = rule_ids(&spec);
    assert!(
        rules.len() >= 28,
        "the specification's rules were not found: {rules:?}"
    );

    let mut tests_per_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in test_files() {
        let source = fs::read_to_string(&file).expect("a test file");
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        for name in test_names(&source) {
            for rule in rules_named_by(&name) {
                tests_per_rule
                    .entry(rule)
                    .or_default()
                    .push(format!("{file_name}: {name}"));
            }
        }
    }

    let untested: Vec<&String> = rules
        .iter()
        .filter(|rule| !tests_per_rule.contains_key(&snake(rule)))
        .collect();
    assert!(
        untested.is_empty(),
        "rules of docs/SPEC.md with no black-box test named after them: {untested:?}"
    );
    let unknown: Vec<&String> = tests_per_rule
        .keys()
        .filter(|token| !rules.iter().any(|rule| snake(rule) == **token))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests named after rules that docs/SPEC.md does not define: {unknown:?} in {tests_per_rule:?}"
    );
}

#[test]
fn the_rule_reader_finds_ids_and_test_names_and_ignores_other_functions() {
    let spec = "- **R-I1** Sources: phone.\n- **R-K2 Work order 派工单**: a job.\nsee R-P1 (not a definition)";
    assert_eq!(
        rule_ids(spec),
        BTreeSet::from(["R-I1".to_owned(), "R-K2".to_owned()])
    );
    let source = "#[tokio::test(flavor = \"multi_thread\")]\nasync fn r_c1_r_p7_closes() {}\nfn r_k9_helper() {}\n#[test]\nfn plain() {}";
    assert_eq!(test_names(source), ["r_c1_r_p7_closes", "plain"]);
    assert_eq!(
        rules_named_by("r_c1_r_p7_the_work_order_closes"),
        BTreeSet::from(["r_c1".to_owned(), "r_p7".to_owned()])
    );
    assert!(rules_named_by("a_retry_returns_the_first_verdict").is_empty());
    assert!(rules_named_by("over_r_and_d").is_empty());
}
