#!/usr/bin/env python3
"""The link graph of cohost's own libraries and programs, from CMake.

Reads the Graphviz file `cmake --graphviz` writes, keeps the project's targets
(cohost_* libraries and the cohost and cohost-client programs; tests, their
support libraries, benchmarks and external libraries left out), drops edges implied by others (transitive
reduction, so each arrow is a direct layer-to-layer dependency), and prints a
Mermaid flowchart. docs/architecture.md shows it between the markers
`<!-- link-graph:begin -->` and `<!-- link-graph:end -->`; scripts/lint.sh
checks that they agree.

Usage: link_graph.py GRAPH.dot            print the Mermaid block
       link_graph.py GRAPH.dot --check DOC  exit 1 if DOC's block differs
"""
import re
import sys

BEGIN = "<!-- link-graph:begin -->"
END = "<!-- link-graph:end -->"


def read_graph(path):
    labels, edges = {}, set()
    for line in open(path):
        m = re.match(r'\s*"(node\d+)" \[ label = "([^"]+)"', line)
        if m:
            labels[m.group(1)] = m.group(2)
            continue
        m = re.match(r'\s*"(node\d+)" -> "(node\d+)"', line)
        if m and m.group(1) != m.group(2):
            edges.add((m.group(1), m.group(2)))
    keep = {n for n, label in labels.items()
            if (label.startswith("cohost_") and not label.startswith("cohost_test_"))
            or label in ("cohost", "cohost-client")}
    graph = {labels[n]: set() for n in keep}
    for a, b in edges:
        if a in keep and b in keep:
            graph[labels[a]].add(labels[b])
    return graph


def reachable(graph, start):
    seen, stack = set(), list(graph[start])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(graph[n])
    return seen


def reduce(graph):
    out = {}
    for a, targets in graph.items():
        out[a] = {b for b in targets
                  if not any(b in reachable(graph, c) for c in targets if c != b)}
    return out


def mermaid(graph):
    lines = [BEGIN, "```mermaid", "flowchart TD"]
    for a in sorted(graph):
        for b in sorted(graph[a]):
            lines.append(f"  {a} --> {b}")
    lines += ["```", END]
    return "\n".join(lines)


def main():
    block = mermaid(reduce(read_graph(sys.argv[1])))
    if len(sys.argv) == 4 and sys.argv[2] == "--check":
        doc = open(sys.argv[3]).read()
        m = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), doc, re.S)
        if m is None or m.group(0) != block:
            print(f"{sys.argv[3]}: its link graph differs from CMake's; it should read:\n{block}")
            return 1
        return 0
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
