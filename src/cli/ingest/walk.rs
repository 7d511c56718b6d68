//! Which files a set of paths means: folders walked recursively with the `ignore` crate
//! (.gitignore and .ignore honoured even outside a git repository, hidden files skipped),
//! narrowed by --include / --exclude globs.

use std::path::{Path, PathBuf};

use ignore::overrides::OverrideBuilder;
use ignore::WalkBuilder;

use super::read::{Kind, Problem};

/// A file to read, and its id: its path relative to the root it was given under.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub relative: String,
    pub kind: Kind,
    pub bytes: u64,
    /// The folder it was found under, absolute (`None` for a file named on the command line):
    /// stored as `root` metadata, so `--prune` deletes only what that folder produced.
    pub root: Option<String>,
}

#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<Found>,
    /// Files of kinds akidb does not read (counted in the summary).
    pub other_kinds: usize,
    pub problems: Vec<Problem>,
}

pub fn walk(roots: &[PathBuf], include: &[String], exclude: &[String]) -> Result<Walked, String> {
    let mut walked = Walked::default();
    for root in roots {
        let metadata = std::fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
        if metadata.is_file() {
            // A file named on the command line is read whatever the globs say; its id is its name.
            let relative = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match Kind::of(root) {
                Some(kind) => walked.files.push(Found { path: root.clone(), relative, kind, bytes: metadata.len(), root: None }),
                None => walked.problems.push(Problem { path: relative, place: None, message: "not a file type akidb reads (.jsonl .json .txt .md .html .pdf)".into() }),
            }
            continue;
        }
        let absolute = std::fs::canonicalize(root).map_or_else(|_| root.display().to_string(), |p| p.display().to_string());
        let mut overrides = OverrideBuilder::new(root);
        for glob in include {
            overrides.add(glob).map_err(|e| format!("--include {glob}: {e}"))?;
        }
        for glob in exclude {
            overrides.add(&format!("!{glob}")).map_err(|e| format!("--exclude {glob}: {e}"))?;
        }
        let overrides = overrides.build().map_err(|e| e.to_string())?;
        let walker = WalkBuilder::new(root).hidden(true).git_ignore(true).require_git(false).overrides(overrides).sort_by_file_name(|a, b| a.cmp(b)).build();
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    walked.problems.push(Problem { path: root.display().to_string(), place: None, message: err.to_string() });
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            // A hidden file that an --include glob matches is still hidden (overrides win over
            // the walker's own hidden-file rule).
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Some(kind) = Kind::of(path) else {
                walked.other_kinds += 1;
                continue;
            };
            let relative = relative_id(root, path);
            let bytes = entry.metadata().map_or(0, |m| m.len());
            walked.files.push(Found { path: path.to_owned(), relative, kind, bytes, root: Some(absolute.clone()) });
        }
    }
    check_unique(&walked.files)?;
    Ok(walked)
}

/// Ids are paths relative to the root they were found under, so two roots can give two files
/// the same id: that is refused, naming both, rather than letting one overwrite the other.
fn check_unique(files: &[Found]) -> Result<(), String> {
    let mut seen: std::collections::HashMap<&str, &Path> = std::collections::HashMap::new();
    for file in files {
        if let Some(first) = seen.insert(&file.relative, &file.path) {
            return Err(format!(
                "{} and {} would both get the id '{}' (ids are paths relative to the folder given): ingest their common parent folder, or each into its own collection",
                first.display(),
                file.path.display(),
                file.relative
            ));
        }
    }
    Ok(())
}

/// `path` relative to `root`, with `/` separators whatever the platform.
fn relative_id(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_hidden_files_and_globs_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs/deep")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        for file in ["a.md", "docs/b.txt", "docs/deep/c.html", "docs/skip.md", ".hidden/d.md", ".e.md", "target/f.md", "image.png"] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        let ids = |walked: &Walked| walked.files.iter().map(|f| f.relative.clone()).collect::<Vec<_>>();
        let all = walk(&[root.to_owned()], &[], &[]).unwrap();
        assert_eq!(ids(&all), ["a.md", "docs/b.txt", "docs/deep/c.html", "docs/skip.md"]);
        assert_eq!(all.other_kinds, 1);
        let some = walk(&[root.to_owned()], &["*.md".into(), "*.html".into()], &["skip.md".into()]).unwrap();
        assert_eq!(ids(&some), ["a.md", "docs/deep/c.html"]);
        let file = walk(&[root.join("docs/b.txt")], &[], &[]).unwrap();
        assert_eq!(ids(&file), ["b.txt"]);
    }

    #[test]
    fn two_roots_giving_one_id_are_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("README.md"), sub).unwrap();
        }
        let err = walk(&[dir.path().join("a"), dir.path().join("b")], &[], &[]).unwrap_err();
        assert!(err.contains("a/README.md") && err.contains("b/README.md") && err.contains("'README.md'"), "{err}");
        // Their parent gives them distinct ids.
        let parent = walk(&[dir.path().to_owned()], &[], &[]).unwrap();
        assert_eq!(parent.files.iter().map(|f| f.relative.as_str()).collect::<Vec<_>>(), ["a/README.md", "b/README.md"]);
    }
}
