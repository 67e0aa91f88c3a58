#!/usr/bin/env python3
"""The documentation check (ctest `docs`). Prints one line per problem and exits 1; exits 0 when
clean.

1. Every relative link and image in README.md and docs/*.md points to a file or folder of the
   repository, and every `#anchor` to a heading of the file it names (GitHub's slugs: lower case,
   punctuation dropped, spaces to hyphens, -1, -2 ... for repeated headings). Links inside code
   spans and fenced code blocks are text, not links.
2. The option reference cannot drift from the programs: for each program given on the command
   line, the options its --help lists and the options docs/configuration.md names in that
   program's section are the same set. A section is the level-2 heading that names the program
   in backticks (## `dae_dist` ...) up to the next level-2 heading; an option named there is a
   backticked word in the first cell of a table row (`key` or `--key`).

    check_docs.py REPO_ROOT [--dae-dist BIN] [--dae-denoise BIN] [--dae-export BIN]
                            [--dae-prepare BIN]
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.parse

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the target may carry a "title".
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
HTML_ANCHOR = re.compile(r"""<a\s+[^>]*\b(?:name|id)\s*=\s*["']([^"']+)["']""")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HEADING_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def prose_lines(text):
    """(line number, line) outside fenced code blocks, with code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = HEADING_LINK.sub(r"\1", heading)  # a link in a heading counts as its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and _ (Unicode too)
    return text.replace(" ", "-")


def anchors_of(path, cache={}):
    if path not in cache:
        text = path.read_text(encoding="utf-8")
        found, seen = set(), {}
        fenced = False
        for line in text.splitlines():
            if FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:
                continue
            found.update(HTML_ANCHOR.findall(line))
            match = ATX_HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        cache[path] = found
    return cache[path]


def check_links(root, files):
    problems = []
    for path in files:
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        for number, line in prose_lines(text):
            targets = INLINE_LINK.findall(line) + HTML_ATTR.findall(line)
            match = REFERENCE_DEF.match(line)
            if match:
                targets.append(match.group(1))
            for target in targets:
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                    continue  # http:, https:, mailto: ... : not ours to check
                where = f"{rel}:{number}: link '{target}'"
                file_part, _, anchor = target.partition("#")
                file_part = urllib.parse.unquote(file_part)
                if file_part.startswith("/"):
                    problems.append(f"{where}: absolute path; use a path relative to {rel}")
                    continue
                goal = (path.parent / file_part).resolve() if file_part else path.resolve()
                try:
                    goal.relative_to(root)
                except ValueError:
                    problems.append(f"{where}: points outside the repository")
                    continue
                if not goal.exists():
                    problems.append(f"{where}: no such file")
                    continue
                if anchor:
                    if goal.is_dir() or goal.suffix.lower() not in (".md", ".markdown"):
                        problems.append(f"{where}: an anchor into a file that has no headings")
                    elif urllib.parse.unquote(anchor) not in anchors_of(goal):
                        problems.append(f"{where}: no heading with anchor '#{anchor}' in "
                                        f"{goal.relative_to(root)}")
    return problems


HELP_OPTION = re.compile(r"^\s+(?:-\w \[ )?--([a-z][a-z0-9-]*)")
USAGE_OPTION = re.compile(r"--([a-z][a-z0-9-]*)")
IGNORED = {"help"}


def help_options(binary):
    """The options a program's --help lists: its option lines, or else its usage line's words."""
    result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        first = next((l.strip() for l in result.stderr.splitlines() if l.strip()), "")
        raise RuntimeError(f"{binary} --help exited with {result.returncode}" +
                           (f" ({first})" if first else ""))
    options = {m.group(1) for line in text.splitlines() if (m := HELP_OPTION.match(line))}
    if not options:
        for line in text.splitlines():
            if line.lstrip().startswith("usage:"):
                options.update(USAGE_OPTION.findall(line))
    return options - IGNORED


def documented_options(config_md, program):
    """The options the section of `program` in configuration.md names in its tables' first cells,
    or None when it has no such section."""
    section, inside, found = set(), False, False
    fenced = False
    heading = re.compile(r"^##\s+.*`" + re.escape(program) + r"`")
    for line in config_md.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            if inside:
                break
            inside = bool(heading.match(line))
            found = found or inside
            continue
        if inside and line.startswith("|"):
            first = line.strip().strip("|").split("|")[0]
            if set(first.strip()) <= set("-: "):
                continue  # the header's separator row
            for token in re.findall(r"`([^`]+)`", first):
                name = token.strip().lstrip("-").split()[0] if token.strip() else ""
                if re.fullmatch(r"[a-z][a-z0-9-]*", name):
                    section.add(name)
    return section if found else None


def check_options(root, programs):
    problems = []
    config_md = root / "docs" / "configuration.md"
    if programs and not config_md.is_file():
        return ["docs/configuration.md: missing (the option reference)"]
    for program, binary in programs:
        try:
            listed = help_options(binary)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
            problems.append(f"{program}: cannot read its --help: {error}")
            continue
        documented = documented_options(config_md, program)
        if documented is None:
            problems.append(f"docs/configuration.md: no section (## `{program}` ...) for {program}")
            continue
        for name in sorted(listed - documented - IGNORED):
            problems.append(f"docs/configuration.md: {program} --{name} is in --help but not "
                            f"in its section")
        for name in sorted(documented - listed - IGNORED):
            problems.append(f"docs/configuration.md: {program} --{name} is documented but "
                            f"{program} --help does not list it")
    return problems


def check(root, programs):
    root = pathlib.Path(root).resolve()
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    files += sorted((root / "docs").glob("*.md"))
    return check_links(root, files) + check_options(root, programs)


def self_test():
    """The check must find a broken link, a wrong anchor and a missing file on a made-up tree."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "docs").mkdir()
        (root / "README.md").write_text(
            "# Title\n\nSee [a](docs/a.md#a-b_c), [b](docs/a.md#nope), [c](docs/missing.md),\n"
            "`[d](docs/in-code.md)` and ![e](docs/a.md).\n\n```\n[f](docs/fenced.md)\n```\n")
        (root / "docs" / "a.md").write_text(
            "# A `b`_c\n\n[back](../README.md#title) [up](../../x.md) [twice](#a-b_c-1)\n\n"
            "## A b_c\n")
        got = check(root, [])
    expected = {"README.md:3: link 'docs/a.md#nope'", "README.md:3: link 'docs/missing.md'",
                "docs/a.md:3: link '../../x.md'"}
    found = {p.split(": ", 2)[0] + ": " + p.split(": ", 2)[1] for p in got}
    if found != expected:
        print("check_docs self-test failed: expected problems " + str(sorted(expected)) +
              ", got " + str(got), file=sys.stderr)
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    for program in ("dae-dist", "dae-denoise", "dae-export", "dae-prepare"):
        parser.add_argument(f"--{program}", metavar="BIN")
    args = parser.parse_args()
    if not self_test():
        return 1
    programs = [(name.replace("-", "_"), getattr(args, name.replace("-", "_")))
                for name in ("dae-dist", "dae-denoise", "dae-export", "dae-prepare")
                if getattr(args, name.replace("-", "_"))]
    problems = check(args.root, programs)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
