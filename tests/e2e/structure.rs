//! The house's rules, read from the tree: no import circle between the files of a crate, no
//! source file over 400 lines, and a README whose account of the code is true.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The folders whose Rust sources the rules hold for, and each crate's `src`.
const CRATES: [&str; 8] = [
    "shared/src",
    "api/src",
    "api/app/src",
    "api/views/src",
    "worker/src",
    "worker/audio/src",
    "worker/documents/src",
    "scheduler/src",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The file of module `parts` under `src`, or of its longest prefix that is a module.
fn module_file(src: &Path, parts: &[String]) -> Option<PathBuf> {
    (1..=parts.len()).rev().find_map(|n| {
        let base = parts[..n].iter().fold(src.to_path_buf(), |p, s| p.join(s));
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|f| f.is_file())
    })
}

/// The paths of the use tree at the start of `text` (after `crate::`), each as its segments:
/// `a::{b, c::d}` is `a::b` and `a::c::d`.
fn use_paths(text: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut parts = prefix.to_vec();
        loop {
            while *at < chars.len() && chars[*at].is_whitespace() {
                *at += 1;
            }
            if chars.get(*at) == Some(&'{') {
                *at += 1;
                loop {
                    tree(chars, at, &parts, out);
                    while *at < chars.len() && chars[*at].is_whitespace() {
                        *at += 1;
                    }
                    match chars.get(*at) {
                        Some(',') => *at += 1,
                        Some('}') => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                    while *at < chars.len() && chars[*at].is_whitespace() {
                        *at += 1;
                    }
                    if chars.get(*at) == Some(&'}') {
                        *at += 1;
                        return;
                    }
                }
            }
            let start = *at;
            while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                *at += 1;
            }
            let name: String = chars[start..*at].iter().collect();
            match name.as_str() {
                "" => {}
                "self" => {}
                _ => parts.push(name),
            }
            if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
                *at += 2;
                continue;
            }
            out.push(parts);
            return;
        }
    }
    let chars: Vec<char> = text.chars().take(2_000).collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, &[], &mut out);
    out
}

/// Each file of the crate at `src` with the files it names through `crate::` paths (comments
/// and unit tests left out).
fn imports(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut graph = BTreeMap::new();
    for file in rust_files(src) {
        let text = fs::read_to_string(&file).unwrap();
        let code: String = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            for parts in use_paths(&code[at + "crate::".len()..]) {
                if let Some(target) = module_file(src, &parts)
                    && target != file
                {
                    named.insert(target);
                }
            }
        }
        graph.insert(file, named);
    }
    graph
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        file: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        done: &mut BTreeSet<PathBuf>,
        path: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(at) = path.iter().position(|f| f == file) {
            let mut found = path[at..].to_vec();
            found.push(file.clone());
            return Some(found);
        }
        if !done.insert(file.clone()) {
            return None;
        }
        path.push(file.clone());
        for next in graph.get(file).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|file| visit(file, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_file_of_a_crate_imports_itself_in_a_circle() {
    for src in CRATES {
        let src = root().join(src);
        if let Some(found) = circle(&imports(&src)) {
            let names: Vec<String> = found
                .iter()
                .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
                .collect();
            panic!(
                "an import circle in {}: {}",
                src.display(),
                names.join(" -> ")
            );
        }
    }
}

#[test]
fn the_circle_finder_reads_use_trees_and_finds_circles() {
    assert_eq!(
        use_paths("db::{self, jobs::{NewJob, x}, now_ms};"),
        [
            vec!["db".to_owned()],
            vec!["db".into(), "jobs".into(), "NewJob".into()],
            vec!["db".into(), "jobs".into(), "x".into()],
            vec!["db".into(), "now_ms".into()],
        ]
    );
    let graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(f, to)| (f.into(), to.into_iter().map(PathBuf::from).collect()))
    .collect();
    assert_eq!(circle(&graph).unwrap().len(), 4);
}

#[test]
fn no_source_file_is_over_400_lines() {
    let mut long = Vec::new();
    for src in CRATES {
        for file in rust_files(&root().join(src)) {
            let lines = fs::read_to_string(&file).unwrap().lines().count();
            if lines > 400 {
                long.push(format!("{} ({lines})", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

/// The README's account of the code stays true: its repository layout lists every crate of
/// the workspace at its folder, and every source path it names (in backticks) exists.
#[test]
fn the_readme_describes_the_tree_as_it_is() {
    let root = root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find_map(|line| line.strip_prefix("members = ["))
        .expect("the workspace's members")
        .trim_end_matches(']')
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .collect::<Vec<_>>();
    let layout = &readme[readme
        .find("## Repository layout")
        .expect("the layout section")..];
    for folder in &members {
        let crate_toml = fs::read_to_string(root.join(folder).join("Cargo.toml")).unwrap();
        let name = crate_toml
            .lines()
            .find_map(|line| line.strip_prefix("name = "))
            .expect("the crate's name")
            .trim_matches('"');
        let row = format!("| `{folder}/` | `{name}` |");
        assert!(layout.contains(&row), "README's layout has no row {row}");
    }
    let named = regex::Regex::new(r"`((?:shared|api|worker|scheduler|tests|deploy|migrations|examples)/[A-Za-z0-9_./-]*?[A-Za-z0-9_])`")
        .unwrap();
    let mut missing = Vec::new();
    for found in named.captures_iter(&readme) {
        let path = &found[1];
        // `<kind>.rs` and the like are patterns, not files.
        if path.contains('<') || path.contains('*') {
            continue;
        }
        if !root.join(path).exists() {
            missing.push(path.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "README names paths that do not exist: {missing:?}"
    );
}
