r"""Generates the Markdown API reference (``docs/api.md``) from the docstrings of the public exports.

    python -m tools.apidoc --out docs/api.md      # write it
    python -m tools.apidoc --check docs/api.md    # exit 1 if it is out of date

The public API is what the subpackages' ``__init__`` files export (:data:`PUBLIC_MODULES`): their
``__all__`` where defined, else every public function and class they import from this package. For each
one the reference shows the signature (:func:`inspect.signature`) and the docstring, translated from the
reStructuredText/Google style used in the code (roles such as ``:class:`~x.Y```, ``:math:``, ``..
math::`` blocks, ``Args:`` sections) to Markdown, and for classes their own public methods. The output
depends only on the code, so a test can regenerate it and compare.
"""

import argparse
import importlib
import inspect
import re
import sys

PUBLIC_MODULES = (
    "plstm_geometric.graph",
    "plstm_geometric.functional",
    "plstm_geometric.nn",
    "plstm_geometric.transforms",
    "plstm_geometric.models",
    "plstm_geometric.datasets",
)
COMMAND = "python -m tools.apidoc --out docs/api.md"
# Google-style section headers that introduce a block of "name (type): description" entries.
SECTIONS = (
    "Args",
    "Arguments",
    "Parameters",
    "Returns",
    "Return",
    "Raises",
    "Shapes",
    "Shape",
    "Attributes",
    "Items",
    "Yields",
    "Note",
    "Notes",
    "Example",
    "Examples",
)
# PyG conventions with the same meaning on every class; listing them everywhere would only add noise.
SKIPPED_METHODS = frozenset({"reset_parameters", "extra_repr"})


def public_exports(module) -> list[tuple[str, object]]:
    """``(name, object)`` of the public functions and classes a subpackage exports, in export order."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and getattr(value, "__module__", "").startswith("plstm_geometric")
        ]
    return [
        (name, getattr(module, name))
        for name in names
        if inspect.isfunction(getattr(module, name)) or inspect.isclass(getattr(module, name))
    ]


def shorten(text: str) -> str:
    """``torch.Tensor`` -> ``Tensor``: dotted paths in signatures reduced to their last component."""
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def signature(obj, name: str, drop_first: bool = False) -> str | None:
    """``name(parameters) -> annotation``, with ``self``/``cls`` left out when ``drop_first``."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins and C-implemented classes have none
        return None
    if drop_first:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    text = str(sig)
    # Object defaults print with their address, which would change at every run.
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    return f"{name}{shorten(text)}"


# "name (type): description" at the start of an entry of these sections; in the others (Returns, Shapes, ...)
# lines at the section's indentation continue one paragraph unless they start a "- " bullet.
ENTRY_SECTIONS = ("Args", "Arguments", "Parameters", "Attributes", "Raises")
ENTRY = re.compile(r"([\w\\*., ]+?)(\s\([^)]*\))?:(\s|$)")


def _math_role(match) -> str:
    # A role may be wrapped over several docstring lines; inline math must stay on one.
    return "$" + " ".join(match.group(1).split()) + "$"


INLINE_RULES = (
    # :math:`x` -> $x$
    (re.compile(r":math:`([^`]+)`"), _math_role),
    # :class:`~a.b.C` -> `C`; :func:`a.b.f` -> `a.b.f`
    (re.compile(r":(?:class|func|meth|obj|data|attr|mod|exc|py:\w+):`~(?:[\w.]+\.)?([^`]+)`"), r"`\1`"),
    (re.compile(r":(?:class|func|meth|obj|data|attr|mod|exc|py:\w+):`([^`]+)`"), r"`\1`"),
    # `text <url>`_ -> [text](url)
    (re.compile(r"`([^`<]+?)\s*<([^>]+)>`_+"), r"[\1](\2)"),
    # ``code`` -> `code`
    (re.compile(r"``([^`]+)``"), r"`\1`"),
)


def inline(text: str) -> str:
    for pattern, replacement in INLINE_RULES:
        text = pattern.sub(replacement, text)
    return text


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def indented_block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The lines from ``start`` that are blank or indented deeper than ``base``, and the index after them
    (trailing blank lines are left to the caller)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or indentation(lines[end]) > base):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def dedent(block: list[str]) -> list[str]:
    depth = min((indentation(line) for line in block if line.strip()), default=0)
    return [line[depth:] for line in block]


def math_block(block: list[str]) -> str:
    body = "\n".join(dedent(block)).strip()
    # Display math with alignment points or line breaks needs an environment outside reStructuredText.
    if "&" in body or "\\\\" in body:
        body = "\\begin{aligned}\n" + body + "\n\\end{aligned}"
    return f"\n$$\n{body}\n$$\n"


def code_names(entry: str) -> str:
    """``query, key (Tensor): ...`` -> ```query`, `key` (Tensor): ...``: names as code, so that e.g.
    ``**kwargs`` is not read as bold."""
    match = ENTRY.match(entry)
    names = ", ".join(f"`{name.strip().replace(chr(92), '')}`" for name in match.group(1).split(","))
    return names + (match.group(2) or "") + entry[match.end(2) if match.group(2) else match.end(1) :]


def section(name: str, block: list[str]) -> str:
    """A Google-style section as Markdown: bullets for its entries, paragraphs for its prose."""
    entries: list[list] = []  # [is_bullet, text]
    for line in dedent(block):
        text = line.strip()
        if not text:
            continue
        bullet = text.startswith(("- ", "* "))
        starts = indentation(line) == 0 and (bullet or (name in ENTRY_SECTIONS and ENTRY.match(text)))
        if starts or not entries:
            if bullet:
                text = text[2:]
            elif starts:
                text = code_names(text)
            entries.append([bool(starts), text])
        else:
            entries[-1][1] += " " + text
    body = "\n".join(("- " if is_bullet else "") + inline(text) for is_bullet, text in entries)
    return f"\n**{name}:**\n\n{body}\n"


def to_markdown(doc: str | None) -> str:
    """A docstring in the package's reStructuredText/Google style, as Markdown."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    chunks: list[str] = []  # finished Markdown
    prose: list[str] = []  # plain lines, converted together so that roles may span lines

    def flush():
        if prose:
            chunks.append(inline("\n".join(prose)))
            prose.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        depth = indentation(line)
        header = re.fullmatch(r"(\w+):", stripped)
        if stripped.startswith(".. math::"):
            flush()
            block, index = indented_block(lines, index + 1, depth)
            first = stripped[len(".. math::") :].strip()
            chunks.append(math_block(([first] if first else []) + block))
        elif header and header.group(1) in SECTIONS:
            flush()
            block, index = indented_block(lines, index + 1, depth)
            chunks.append(section(header.group(1), block))
        elif stripped.endswith("::"):
            # A literal block: the paragraph keeps one colon, the block becomes a code fence.
            text = stripped[:-2].rstrip()
            if text:
                prose.append(" " * depth + text + ":")
            flush()
            block, index = indented_block(lines, index + 1, depth)
            chunks.append("\n```\n" + "\n".join(dedent(block)).strip("\n") + "\n```\n")
        else:
            prose.append(line)
            index += 1
    flush()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(chunks)).strip()


def anchor(heading: str, seen: dict[str, int]) -> str:
    """The anchor GitHub gives a heading (lower case, punctuation dropped, spaces to dashes, repeats
    numbered)."""
    slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def own_methods(cls) -> list[tuple[str, object, str]]:
    """``(name, function or property, signature)`` of the public members a class defines itself, in
    definition order: those with a docstring, and ``forward`` (a module's entry point) in any case."""
    members = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name in SKIPPED_METHODS:
            continue
        if isinstance(member, property):
            text = None
        elif isinstance(member, staticmethod):
            member = member.__func__
            text = signature(member, name)
        elif isinstance(member, classmethod) or inspect.isfunction(member):
            # Bound to the class (classmethod) or to an instance: the first parameter is not passed.
            member = getattr(member, "__func__", member)
            text = signature(member, name, drop_first=True)
        else:
            continue
        if member.__doc__ or name == "forward":
            members.append((name, member, text))
    return members


def document_object(name: str, obj, seen: dict[str, int]) -> tuple[list[str], str]:
    """The Markdown lines for one export, and its anchor."""
    lines = [f"### `{name}`", ""]
    link = anchor(name, seen)
    if inspect.isclass(obj):
        lines += [
            "```python",
            f"class {signature(obj, name) or name}",
            "```",
            "",
            to_markdown(vars(obj).get("__doc__")),
            "",
        ]
        for member_name, member, text in own_methods(obj):
            suffix = " (property)" if text is None else ""
            anchor(f"{name}.{member_name}{suffix}", seen)  # keeps later duplicates numbered as GitHub does
            lines += [f"#### `{name}.{member_name}`{suffix}", ""]
            if text is not None:
                lines += ["```python", text, "```", ""]
            lines += [to_markdown(member.__doc__), ""]
    else:
        lines += ["```python", signature(obj, name) or name, "```", "", to_markdown(obj.__doc__), ""]
    return lines, link


def render_api(modules=PUBLIC_MODULES) -> str:
    """The whole reference as one Markdown string."""
    seen: dict[str, int] = {}
    anchor("API reference", seen)
    anchor("Contents", seen)
    contents, body = [], []
    for module_name in modules:
        module = importlib.import_module(module_name)
        module_anchor = anchor(module_name, seen)
        body += [f"## {module_name}", ""]
        if module.__doc__:
            body += [to_markdown(module.__doc__), ""]
        links = []
        for name, obj in public_exports(module):
            lines, link = document_object(name, obj, seen)
            body += lines
            links.append(f"[`{name}`](#{link})")
        contents.append(f"- [{module_name}](#{module_anchor}): " + ", ".join(links))
    header = [
        "# API reference",
        "",
        f"Generated from the docstrings by `{COMMAND}`; do not edit by hand (a test checks that it is up "
        "to date). Every public function and class of the subpackages is listed with its signature.",
        "",
        "## Contents",
        "",
    ]
    text = "\n".join(header + contents + [""] + body)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Markdown API reference from the docstrings.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", help="write the reference to this file (default: standard output)")
    target.add_argument("--check", metavar="PATH", help="exit with status 1 if PATH differs from the generated text")
    args = parser.parse_args(argv)
    text = render_api()
    if args.check:
        with open(args.check, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{args.check} is out of date: run `{COMMAND}`", file=sys.stderr)
                return 1
        return 0
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
