"""Print modelfn's requirements (base + chosen extras) with some distributions replaced.

The CUDA image needs onnxruntime-gpu, which provides the same ``onnxruntime`` module as the
``onnxruntime`` distribution named by modelfn's base dependencies. Installing modelfn with
``--no-deps`` and then this list (``--replace onnxruntime=onnxruntime-gpu==X``) never installs
both. Reads the metadata of the modelfn installed in the running interpreter; stdlib only.
"""

from __future__ import annotations

import argparse
import re
from importlib.metadata import requires

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_AND_EDGE = re.compile(r"^and\s+|\s+and$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(extras: set[str], replacements: dict[str, str]) -> list[str]:
    """Requirement lines for the base set plus ``extras``; self-references to modelfn are dropped."""
    lines: list[str] = []
    for entry in requires("modelfn") or []:
        spec, _, marker = entry.partition(";")
        match = _NAME.match(spec)
        if match is None:
            continue
        name = _normalize(match.group(1))
        wanted = _EXTRA.findall(marker)
        if wanted and not set(wanted) & extras:
            continue
        if name == "modelfn":  # "modelfn[cli]" inside another extra: its entries are listed on their own
            continue
        extra_free = _AND_EDGE.sub("", _EXTRA.sub("", marker).strip())
        line = replacements.get(name, spec.strip())
        lines.append(f"{line}; {extra_free}" if extra_free else line)
    return sorted(set(lines))


def main() -> None:
    """Command line: --extra NAME (repeatable), --replace DIST=REQUIREMENT (repeatable)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--replace", action="append", default=[], metavar="DIST=REQUIREMENT")
    args = parser.parse_args()
    replacements = {}
    for item in args.replace:
        name, sep, requirement = item.partition("=")
        if not sep or not requirement:
            parser.error(f"--replace takes DIST=REQUIREMENT, got {item!r}")
        replacements[_normalize(name)] = requirement
    print("\n".join(resolve(set(args.extra), replacements)))


if __name__ == "__main__":
    main()
