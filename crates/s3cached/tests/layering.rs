//! The library's layering, checked on its source: every module's imports point to its own
//! layer or below (docs/ARCHITECTURE.md), and no module imports, directly or through others,
//! one that imports it back. Test code (`#[cfg(test)]`) may assemble any layers and is left
//! out.
//!
//! Edges are read from `crate::`, `super::` and `self::` paths in `use` items, in code and
//! inside macro invocations, at the granularity of one module per file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The layers, lowest first, each one or more folders of `src/`: a module's layer is the folder
/// it sits in. A module may import from its own folder and from the layers below; the folders
/// of one layer are independent of each other. This list is the only place the order is
/// written: a new file is placed in a folder, not registered here.
const LAYERS: &[&[&str]] = &[
    &["model", "metrics"],
    &["tier", "origin"],
    &["engine"],
    &["doors"],
    &["process"],
];

type Module = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<TokenStream>()
                .is_ok_and(|t| t.into_iter().any(|tt| matches!(tt, TokenTree::Ident(i) if i == "test")))
    })
}

/// Collects the absolute paths a file refers to, skipping test-only items.
struct Refs<'a> {
    here: &'a Module,
    paths: Vec<Module>,
    test_modules: Vec<String>,
}

impl Refs<'_> {
    /// `segments` made absolute, when they start at `crate`, `super` or `self`.
    fn absolute(&self, segments: &[String]) -> Option<Module> {
        let mut base = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super" | "self") => self.here.clone(),
            _ => return None,
        };
        let mut rest = segments;
        if rest[0] == "crate" || rest[0] == "self" {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn add(&mut self, segments: &[String]) {
        if let Some(p) = self.absolute(segments) {
            self.paths.push(p);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                if n.ident == "self" {
                    self.add(prefix);
                } else {
                    prefix.push(n.ident.to_string());
                    self.add(prefix);
                    prefix.pop();
                }
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.add(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.add(prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&id.to_string().as_str()) => {
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        let colons = matches!((&trees.get(j), &trees.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                        match (colons, trees.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segments.len() > 1 {
                        self.add(&segments);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test_only(attrs) {
            if let syn::Item::Mod(m) = item {
                self.test_modules.push(m.ident.to_string());
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.add(&segments);
        syn::visit::visit_path(self, path);
    }

    // `pub(super)` and `pub(in path)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Module → modules it imports from (other than itself), for the crate whose sources are in
/// `src`.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut parsed = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for file in &files {
        let here = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("read source");
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut refs = Refs {
            here: &here,
            paths: Vec::new(),
            test_modules: Vec::new(),
        };
        refs.visit_file(&ast);
        for m in &refs.test_modules {
            let mut child = here.clone();
            child.push(m.clone());
            test_only.insert(child);
        }
        let paths = refs.paths;
        parsed.insert(here, paths);
    }
    let modules: BTreeSet<Module> = parsed
        .keys()
        .filter(|m| !test_only.iter().any(|t| m.starts_with(t)))
        .cloned()
        .collect();
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut targets = BTreeSet::new();
        for path in &parsed[m] {
            // The longest prefix of the path that is a module is where the item lives.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p));
            if let Some(t) = target.filter(|t| t != m && !t.is_empty()) {
                targets.insert(t);
            }
        }
        graph.insert(m.clone(), targets);
    }
    graph
}

fn name(m: &Module) -> String {
    if m.is_empty() { "crate".to_owned() } else { m.join("::") }
}

/// The layer of a module: the position in [`LAYERS`] of the folder it sits in (a folder's own
/// `mod.rs` included). A file beside `lib.rs`, or in a folder missing from the list, has none.
fn layer_of(m: &Module) -> Option<usize> {
    let folder = m.first()?.as_str();
    LAYERS.iter().position(|folders| folders.contains(&folder))
}

/// Modules that sit in no layer's folder: a file beside `lib.rs`, or a folder missing from
/// [`LAYERS`].
fn unplaced(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    graph
        .keys()
        .filter(|m| !m.is_empty() && layer_of(m).is_none())
        .map(name)
        .collect()
}

/// Imports that point to a higher layer, or to another folder of the same layer.
fn wrong_imports(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, targets) in graph {
        let Some(from_layer) = layer_of(from) else { continue };
        for to in targets {
            let Some(to_layer) = layer_of(to) else { continue };
            let upward = to_layer > from_layer;
            let sideways = to_layer == from_layer && to[0] != from[0];
            if upward || sideways {
                wrong.push(format!(
                    "{} (layer {}, {}/) imports {} (layer {}, {}/)",
                    name(from),
                    from_layer + 1,
                    from[0],
                    name(to),
                    to_layer + 1,
                    to[0]
                ));
            }
        }
    }
    wrong
}

/// Cycles of imports, each written `a -> b -> a`.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    // Depth-first search; a back edge closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
        cycles: &mut Vec<String>,
    ) {
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for next in graph.get(m).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..].iter().map(name).collect();
                    cycle.push(name(next));
                    cycles.push(cycle.join(" -> "));
                }
                Some(Mark::Done) => {}
                None => visit(next, graph, marks, stack, cycles),
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for m in graph.keys() {
        if !marks.contains_key(m) {
            visit(m, graph, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn every_module_sits_in_a_layer_folder() {
    let unplaced = unplaced(&graph(&src_dir()));
    assert!(
        unplaced.is_empty(),
        "modules outside the layer folders {LAYERS:?} (move them into the folder of their \
         layer): {unplaced:?}"
    );
}

#[test]
fn imports_point_down() {
    let wrong = wrong_imports(&graph(&src_dir()));
    assert!(
        wrong.is_empty(),
        "imports from a higher layer or a sibling folder:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycles() {
    let cycles = cycles(&graph(&src_dir()));
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_edges() {
    // Guards the checker itself: edges known to exist must be found.
    let graph = graph(&src_dir());
    let has = |from: &str, to: &str| {
        let f: Module = from.split("::").map(str::to_owned).collect();
        let t: Module = to.split("::").map(str::to_owned).collect();
        graph.get(&f).is_some_and(|ts| ts.contains(&t))
    };
    assert!(has("engine::read", "engine::fill") || has("engine::read", "engine::outcome"));
    assert!(has("engine::store", "engine"));
    assert!(has("tier::tiered", "tier::write_guard"));
    assert!(has("process::server", "engine"));
    assert!(has("doors::hot_path", "model::read_request"));
}

/// Writes a small crate's sources into a temporary directory: `(path under src, text)`.
fn scratch_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write source");
    }
    dir
}

#[test]
fn the_checker_refuses_an_upward_import_and_places_new_files_by_folder() {
    let dir = scratch_crate(&[
        ("lib.rs", "pub mod model; pub mod engine;"),
        ("model/mod.rs", "pub mod key; pub mod fresh_file;"),
        ("model/key.rs", "use crate::engine::Engine;"),
        // A new file nobody registered: placed by its folder, and its import down is fine.
        ("model/fresh_file.rs", "use crate::model::key::Key;"),
        ("engine/mod.rs", "use crate::model::key::Key; pub struct Engine;"),
    ]);
    let graph = graph(dir.path());
    assert_eq!(unplaced(&graph), Vec::<String>::new());
    assert_eq!(
        wrong_imports(&graph),
        vec!["model::key (layer 1, model/) imports engine (layer 3, engine/)".to_owned()]
    );
    assert_eq!(cycles(&graph), vec!["engine -> model::key -> engine".to_owned()]);
}

#[test]
fn the_checker_refuses_sibling_folders_and_files_outside_a_folder() {
    let dir = scratch_crate(&[
        ("lib.rs", "pub mod tier; pub mod origin; pub mod loose;"),
        ("tier/mod.rs", "use crate::origin::Client;"),
        ("origin/mod.rs", "pub struct Client;"),
        ("loose.rs", ""),
    ]);
    let graph = graph(dir.path());
    assert_eq!(unplaced(&graph), vec!["loose".to_owned()]);
    assert_eq!(
        wrong_imports(&graph),
        vec!["tier (layer 2, tier/) imports origin (layer 2, origin/)".to_owned()]
    );
}
