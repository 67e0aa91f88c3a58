#!/usr/bin/env python3
"""The layer check (ctest `layers`): every #include "dae/<layer>/<name>.hpp" in src/ and
include/dae/ must point down the layer order of README's Architecture section, and the include
graph must have no cycle. Prints one line per offending include and exits 1; exits 0 when clean.

    apps -> train, eval -> model, data, dist -> io -> core      (cuda: the plugin, -> dist, core)

Layers of the same height never include each other (train and eval are siblings: the trainer
reaches the evaluation through a callback), and a file may include its own layer's headers.
The libraries behind the RAII handles are each included by the one layer that wraps them (MPI by
dist, HDF5 by io, CUDA and NCCL by cuda); the others reach them through that layer's headers.
"""
import pathlib
import re
import sys
import tempfile

# What each layer may include besides itself.
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "data": {"io", "core"},
    "model": {"io", "core"},
    "dist": {"io", "core"},
    "train": {"model", "data", "dist", "io", "core"},
    "eval": {"model", "data", "dist", "io", "core"},
    "cuda": {"dist", "core"},
    "apps": {"train", "eval", "model", "data", "dist", "io", "core"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"dae/([a-z0-9_]+)/([a-z0-9_]+\.hpp)"', re.M)
# A wrapped library's header -> the layer that wraps it.
WRAPPED = [(re.compile(r"mpi\.h"), "dist"), (re.compile(r"hdf5\.h|H5\w*\.h"), "io"),
           (re.compile(r"nccl\.h|cuda\w*\.h"), "cuda")]
SYSTEM_INCLUDE = re.compile(r"^\s*#\s*include\s+<([^>]+)>", re.M)


def layer_of(root, path):
    parts = path.relative_to(root).parts
    # src/<layer>/x.cpp or include/dae/<layer>/x.hpp
    return parts[1] if parts[0] == "src" else parts[2]


def main(root):
    root = pathlib.Path(root).resolve()
    files = sorted(list((root / "src").rglob("*.cpp")) + list((root / "src").rglob("*.inc")) +
                   list((root / "include" / "dae").rglob("*.hpp")))
    problems = []
    graph = {}  # header or source -> headers it includes, as include/dae/... paths
    for path in files:
        rel = path.relative_to(root)
        if len(rel.parts) < (3 if rel.parts[0] == "src" else 4):
            problems.append(f"{rel}: not in a layer folder")
            continue
        layer = layer_of(root, path)
        if layer not in ALLOWED:
            problems.append(f"{rel}: unknown layer folder '{layer}'")
            continue
        graph[str(rel)] = []
        text = path.read_text()
        for header in SYSTEM_INCLUDE.findall(text):
            for pattern, owner in WRAPPED:
                if pattern.fullmatch(header) and layer != owner:
                    problems.append(f"{rel}: {layer}/ includes <{header}>, which only {owner}/ "
                                    f"wraps")
        for target_layer, name in INCLUDE.findall(text):
            target = f"include/dae/{target_layer}/{name}"
            if not (root / target).is_file():
                problems.append(f"{rel}: includes {target}, which does not exist")
                continue
            graph[str(rel)].append(target)
            if target_layer != layer and target_layer not in ALLOWED[layer]:
                problems.append(f"{rel}: {layer}/ includes {target_layer}/{name} "
                                f"(against the layer order)")
    # Cycles among headers (a source is never included, so it cannot close one).
    state = {}  # node -> 1 on the current path, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    for line in problems:
        print(line)
    if not problems:
        print(f"layers: {len(graph)} files, every include follows the layer order, no cycle")
    return 1 if problems else 0


def self_test():
    """The check itself must fail on a tree that breaks the order or has a cycle."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        files = {
            "include/dae/core/a.hpp": '#include "dae/io/b.hpp"\n',       # core -> io: upward
            "include/dae/io/b.hpp": '#include "dae/io/c.hpp"\n',
            "include/dae/io/c.hpp": '#include "dae/io/b.hpp"\n',         # b <-> c: a cycle
            "src/train/t.cpp": '#include "dae/eval/e.hpp"\n',            # siblings
            "include/dae/eval/e.hpp": "",
            "src/io/fine.cpp": '#include "dae/core/a.hpp"\n#include <hdf5.h>\n',  # allowed
            "src/core/m.cpp": "#include <mpi.h>\n",                     # MPI outside dist
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(root)
        report = out.getvalue()
        expected = ["include/dae/core/a.hpp: core/ includes io/b.hpp", "include cycle:",
                    "src/train/t.cpp: train/ includes eval/e.hpp",
                    "src/core/m.cpp: core/ includes <mpi.h>, which only dist/ wraps"]
        missing = [e for e in expected if e not in report]
        if status != 1 or missing or "src/io/fine.cpp" in report:
            print("self-test failed: the check missed", missing, "in:\n" + report)
            return 1
    return 0


if __name__ == "__main__":
    if self_test() != 0:
        sys.exit(1)
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
