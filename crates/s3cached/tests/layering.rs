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

/// Layer of each top-level module, lowest first. A module may import from its own layer and
/// the layers below it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "data",
        &[
            "key",
            "block",
            "entry",
            "range",
            "conditional",
            "size",
            "metrics",
            "config",
            "identities",
            "write_guard",
            "read_request",
            "hit_headers",
            "operation",
            "form_decode",
        ],
    ),
    ("tiers and origin", &["tier", "origin"]),
    ("engine", &["engine"]),
    (
        "doors",
        &[
            "front",
            "pass_through",
            "hot_path",
            "sigv4",
            "host",
            "auth",
            "origin_grants",
        ],
    ),
    ("process", &["server", "admin", "events", "warm", "tls"]),
];

type Module = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_of(file: &Path) -> Module {
    let rel = file.strip_prefix(src_dir()).expect("file under src");
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

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Module → modules it imports from (other than itself).
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut parsed = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for file in &files {
        let here = module_of(file);
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

fn layer_of(m: &Module) -> Option<usize> {
    let top = m.first()?;
    LAYERS.iter().position(|(_, mods)| mods.contains(&top.as_str()))
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = graph()
        .keys()
        .filter(|m| !m.is_empty() && layer_of(m).is_none())
        .map(name)
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS (add them, and to docs/ARCHITECTURE.md): {unplaced:?}"
    );
}

#[test]
fn imports_point_down_or_sideways() {
    let mut upward = Vec::new();
    for (from, targets) in graph() {
        let Some(from_layer) = layer_of(&from) else { continue };
        for to in targets {
            if let Some(to_layer) = layer_of(&to)
                && to_layer > from_layer
            {
                upward.push(format!(
                    "{} ({}) imports {} ({})",
                    name(&from),
                    LAYERS[from_layer].0,
                    name(&to),
                    LAYERS[to_layer].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher layer:\n{}", upward.join("\n"));
}

#[test]
fn no_import_cycles() {
    let graph = graph();
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
    let mut cycles = Vec::new();
    for m in graph.keys() {
        if !marks.contains_key(m) {
            visit(m, &graph, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_edges() {
    // Guards the checker itself: edges known to exist must be found.
    let graph = graph();
    let has = |from: &str, to: &str| {
        let f: Module = from.split("::").map(str::to_owned).collect();
        let t: Module = to.split("::").map(str::to_owned).collect();
        graph.get(&f).is_some_and(|ts| ts.contains(&t))
    };
    assert!(has("engine::read", "engine::fill") || has("engine::read", "engine::outcome"));
    assert!(has("engine::store", "engine"));
    assert!(has("tier::tiered", "write_guard"));
    assert!(has("server", "engine"));
    assert!(has("hot_path", "read_request"));
}
