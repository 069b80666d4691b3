#!/usr/bin/env python3
"""Prints the server crate's modules by layer with what each imports; exits 1 on an import cycle or
an import from a lower layer to a higher one (layers as in lib.rs)."""
import os, re, sys, collections
root = sys.argv[1] if len(sys.argv) > 1 else "crates/notion-oauth-handler/src"
LAYERS = [
    ("leaves", ["domain", "hooks", "templates", "vault", "api_keys", "signatures", "crypto", "telemetry", "metrics", "notion"]),
    ("config", ["config"]),
    ("store", ["store"]),
    ("services", ["flow", "links", "lifecycle", "proxy", "delivery", "rate_limits"]),
    ("pages", ["pages"]),
    ("state", ["state"]),
    ("routes", ["routes"]),
    ("startup", ["serving", "tls", "acme", "startup", "embed", "fuzzing"]),
    ("cli", ["cli", "commands"]),
]
layer_of = {m: i for i, (_, ms) in enumerate(LAYERS) for m in ms}
edges = collections.defaultdict(set)   # module -> modules it imports
files = collections.defaultdict(set)
for dirpath, _, names in os.walk(root):
    for name in names:
        if not name.endswith(".rs") or name in ("lib.rs", "main.rs"):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        module = rel.split(os.sep)[0].removesuffix(".rs")
        text = open(path).read()
        text = text.split("#[cfg(test)]")[0]
        for target in re.findall(r"crate::(\w+)", text):
            if target != module:
                edges[module].add(target)
                files[(module, target)].add(rel)
bad = []
for module in sorted(edges, key=lambda m: (layer_of.get(m, 99), m)):
    for target in sorted(edges[module]):
        if module not in layer_of or target not in layer_of:
            bad.append(f"unknown module: {module} -> {target}")
        elif layer_of[target] > layer_of[module]:
            bad.append(f"upward: {module} -> {target} ({', '.join(sorted(files[(module, target)]))})")
# cycles between modules (same layer included)
def cycle_from(start):
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None
for module in edges:
    cycle = cycle_from(module)
    if cycle:
        bad.append("cycle: " + " -> ".join(cycle))
        break
# Cycles between sibling files of one folder (a module and its own children are one unit).
for dirpath, _, names in os.walk(root):
    siblings = {n.removesuffix(".rs") for n in names if n.endswith(".rs") and n != "mod.rs"}
    if "mod.rs" not in names or not siblings:
        continue
    uses = collections.defaultdict(set)
    for sibling in siblings:
        text = open(os.path.join(dirpath, sibling + ".rs")).read().split("#[cfg(test)]")[0]
        found = set(re.findall(r"super::(\w+)", text))
        for group in re.findall(r"super::\{([^}]*)\}", text):
            found |= {part.strip().split("::")[0] for part in group.split(",")}
        uses[sibling] = (found & siblings) - {sibling}
    for start in siblings:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in uses[node]:
                if nxt == start:
                    bad.append(f"cycle in {os.path.relpath(dirpath, root)}/: " + " -> ".join(path + [start]))
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
for i, (name, modules) in enumerate(LAYERS):
    for module in modules:
        below = sorted(edges.get(module, ()), key=lambda t: (layer_of.get(t, 99), t))
        print(f"{i + 1}. {name:<9} {module:<11} imports: {', '.join(below) or '-'}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("no cycle, no upward import")
