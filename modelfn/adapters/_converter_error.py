"""Converter failures in a few lines: the root cause first, the converter's dump only at ``--verbose``.

Converters wrap their real error in messages that print every node attribute they were building
(skl2onnx's "Unable to create node ... attributes={...}" runs to 45-279 KB), which hides a
one-line cause such as protobuf refusing a bool. The short message names the converter, the root
error and the first line of the wrapper; the whole chain stays on the exception (``__cause__``) for
``modelfn package --verbose`` and for logs. Standard library only: the CLI imports this module.
"""

from __future__ import annotations

from modelfn.errors import ModelfnError, PackagingError

MAX_LINE = 240
"""Characters kept of any one line of a converter's message."""
MAX_LINES = 6
"""Lines kept of a multi-line message in the short form."""
VERBOSE_HINT = "(full converter error: modelfn package --verbose)"


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the ``raise ... from`` / implicit-context chain (loops stop)."""
    seen = {id(exc)}
    current = exc
    while True:
        nxt = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if nxt is None or id(nxt) in seen:
            return current
        seen.add(id(nxt))
        current = nxt


def clip(text: str, limit: int = MAX_LINE) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (``…`` marks a cut)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    cut = len(first) > limit or len(lines) > 1
    return (first[:limit].rstrip() + " …") if cut else first


def describe(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``, clipped."""
    text = clip(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def converter_failure(prefix: str, exc: BaseException, *, field: str | None = None) -> PackagingError:
    """A ``PackagingError`` reading ``prefix: <root cause>`` (+ the wrapper's first line when it differs).

    Raise it ``from exc`` so the full chain stays available.
    """
    root = root_cause(exc)
    message = f"{prefix}: {describe(root)}"
    if root is not exc:
        message += f" (raised while: {describe(exc)})"
    if len(str(exc)) > MAX_LINE or root is not exc:
        message += f" {VERBOSE_HINT}"
    return PackagingError(message, field=field)


def brief(exc: ModelfnError) -> str:
    """The error's message in at most ``MAX_LINES`` clipped lines, with the root cause when it is not already there."""
    lines = [line for line in exc.message.splitlines() if line.strip()]
    shown = [line if len(line) <= MAX_LINE else line[:MAX_LINE].rstrip() + " …" for line in lines[:MAX_LINES]]
    clipped = len(lines) > MAX_LINES or any(len(line) > MAX_LINE for line in lines)
    root = root_cause(exc)
    cause = "" if root is exc else describe(root)
    text = "\n".join(shown)
    if cause and clip(str(root)) not in text:
        text += f"\ncause: {cause}"
    if clipped and VERBOSE_HINT not in text:
        text += f"\n{VERBOSE_HINT}"
    return text
