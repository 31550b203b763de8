//! The manual: README.md is a front page and docs/ holds one page per topic. Every relative link
//! and `#anchor` in them must lead somewhere, every page must be reachable from the README, and
//! the README must stay a front page.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The README's length limit: a front page, not the manual.
const README_MAX_LINES: usize = 300;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as paths relative to the repository.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(repo())
                .expect("under the repository")
                .to_path_buf()
        })
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// `line` without its inline code spans (`...`), which may hold brackets that are no links.
fn without_code(line: &str) -> String {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let s = slug(&line[hashes..]);
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a page's links and images: `[text](target)`, `src="..."`, `href="..."`.
fn targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
        for attr in ["src=\"", "href=\""] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(attr) {
                let after = &rest[i + attr.len()..];
                let end = after.find('"').unwrap_or(after.len());
                out.push(after[..end].to_owned());
                rest = &after[end..];
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// `target` (relative to `page`'s folder) as a path relative to the repository, `..` resolved.
fn resolve(page: &Path, target: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for part in page
        .parent()
        .unwrap_or(Path::new(""))
        .join(target)
        .components()
    {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_link_and_anchor_in_the_manual_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(repo().join(&page)).expect("read page");
        for target in targets(&text) {
            if is_external(&target) {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                page.clone()
            } else {
                resolve(&page, path)
            };
            if !repo().join(&file).exists() {
                broken.push(format!(
                    "{}: {target}: no file {}",
                    page.display(),
                    file.display()
                ));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let found = file.extension().is_some_and(|e| e == "md")
                && repo().join(&file).is_file()
                && anchors(&std::fs::read_to_string(repo().join(&file)).expect("read target"))
                    .contains(anchor);
            if !found {
                broken.push(format!(
                    "{}: {target}: no heading #{anchor} in {}",
                    page.display(),
                    file.display()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_page_is_linked_from_the_readme_and_the_index() {
    let linked = |from: &str| -> BTreeSet<PathBuf> {
        let page = PathBuf::from(from);
        let text = std::fs::read_to_string(repo().join(&page)).expect("read page");
        targets(&text)
            .iter()
            .filter(|t| !is_external(t))
            .map(|t| resolve(&page, t.split('#').next().unwrap_or_default()))
            .collect()
    };
    let (readme, index) = (linked("README.md"), linked("docs/README.md"));
    for page in pages().into_iter().skip(1) {
        if page != Path::new("docs/README.md") {
            assert!(
                index.contains(&page),
                "docs/README.md does not link {}",
                page.display()
            );
        }
        assert!(
            readme.contains(&page),
            "README.md does not link {}",
            page.display()
        );
    }
}

#[test]
fn the_readme_is_a_front_page_that_keeps_the_test_commands() {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; the front page holds at most {README_MAX_LINES}: move the detail to docs/"
    );
    // .ci/run runs the test commands the README's development section names.
    for command in ["cargo test", "bash .ci/test-backends", "bash .ci/run"] {
        assert!(text.contains(command), "README.md lost `{command}`");
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("The reset page (`pwreset serve`)"),
        "the-reset-page-pwreset-serve"
    );
    assert_eq!(
        slug("Walkthrough: a Django application on PostgreSQL"),
        "walkthrough-a-django-application-on-postgresql"
    );
    assert_eq!(
        slug("The application's password format"),
        "the-applications-password-format"
    );
    let a = anchors("# A\n## Cron\n```\n# not a heading\n```\n## Cron\n");
    assert_eq!(
        a,
        ["a", "cron", "cron-1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

/// Every `docs/PAGE.md` named in the source, the bench scripts and Cargo.toml exists, and a
/// heading quoted after it (`docs/postgresql.md, \"Least privilege\"`) is on that page.
#[test]
fn every_docs_page_named_in_the_source_exists() {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs" || e == "sh") {
                out.push(p);
            }
        }
    }
    let mut sources = vec![repo().join("Cargo.toml")];
    files(&repo().join("src"), &mut sources);
    files(&repo().join("bench"), &mut sources);
    let mut broken = Vec::new();
    let mut checked = 0;
    for source in &sources {
        let text = std::fs::read_to_string(source).expect("read source");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("docs/") {
            rest = &rest[i + "docs/".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            // A reference that ends a sentence: `see docs/mail.md.`
            let name = name.trim_end_matches('.');
            if !name.ends_with(".md") {
                continue;
            }
            checked += 1;
            let page = repo().join("docs").join(name);
            let Ok(page_text) = std::fs::read_to_string(&page) else {
                broken.push(format!("{}: docs/{name}: no such page", source.display()));
                continue;
            };
            let after = &rest[name.len()..];
            let quoted = after
                .strip_prefix(", \\\"")
                .or_else(|| after.strip_prefix(", \""));
            if let Some(q) = quoted {
                let heading = q.split(['"', '\\']).next().unwrap_or_default();
                if !anchors(&page_text).contains(&slug(heading)) {
                    broken.push(format!(
                        "{}: docs/{name} has no heading {heading:?}",
                        source.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no docs/ reference found: is the scanner broken?"
    );
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
