"""Where the bytes of a wasm module go, by crate, from `twiggy top`'s CSV
of a build that keeps its function names.

    python3 scripts/wasm-attribution.py TOP_CSV [ROWS]

Each item is charged to the first crate its (demangled) name mentions:
`<datafusion_common::scalar::ScalarValue as core::clone::Clone>::clone`
goes to datafusion_common. Data segments and items without a crate are
charged to what they are; names and debug sections, which the shipped
module has not, are left out. Prints a Markdown table of the largest."""

import csv
import re
import sys
from collections import Counter

CRATE = re.compile(r"([a-z][a-z0-9_]*)::")


STD = {"core", "alloc", "std"}
# Sections the build keeps for this report and the shipped module has not.
NOT_SHIPPED = ('"function names" subsection', "custom section '.debug")


def owner(name: str) -> str:
    if name.startswith("data segment") or name.startswith("data["):
        return "(data segments)"
    found = CRATE.search(name)
    if not found:
        return "(" + name.split("[")[0].strip().strip('"') + ")"
    crate = found.group(1)
    # Generic code of the standard library is charged to the crate of the
    # type it runs on: the first crate named in its type arguments.
    while crate in STD:
        generic = name.find("<", found.end())
        if generic < 0:
            return crate
        found = CRATE.search(name, generic)
        if not found:
            return crate
        crate = found.group(1)
        name = name[found.start():]
        found = CRATE.match(name)
    return crate


def main() -> None:
    path = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    sizes: Counter = Counter()
    total = 0
    with open(path, newline="") as f:
        for item in csv.DictReader(f):
            if any(marker in item["Name"] for marker in NOT_SHIPPED):
                continue
            size = int(item["ShallowSize"])
            total += size
            sizes[owner(item["Name"])] += size
    print(f"| crate | bytes | share |")
    print("|---|---|---|")
    for crate, size in sizes.most_common(rows):
        print(f"| {crate} | {size:,} | {100 * size / total:.1f}% |")
    print(f"| all {len(sizes)} | {total:,} | 100% |")


if __name__ == "__main__":
    main()
