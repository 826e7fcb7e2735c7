"""Build docs/INSTRUCTOR_GUIDE.md (a maintainer script, not part of course_lib).

    python docs/build_guide.py            # write docs/INSTRUCTOR_GUIDE.md
    python docs/build_guide.py --check    # exit status 1 if the committed guide is stale
    python docs/build_guide.py -o -       # print it

The guide is assembled, never edited by hand, so it cannot drift from its sources: the hand-written
Markdown in docs/guide/ (see docs/guide/README.md), what it reads from the notebooks (title, minutes,
learning objectives, prerequisites, section headings, exercises) and the answer key of every quiz
bank (``course_lib.checks.answer_key``). Exercise solutions are not copied: each notebook computes
them behind its **Show solutions** button, some from the learner's own measurements.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "INSTRUCTOR_GUIDE.md"
PARTS = ROOT / "docs" / "guide"
NOTEBOOKS = ROOT / "notebooks"
SECTIONS = [  # (heading, hand-written file)
    ("1. Audience and prerequisites", "audience.md"),
    ("2. Agendas", "agendas.md"),
    ("3. Before the workshop", "preflight.md"),
    ("4. In the room", "in_the_room.md"),
    ("5. Where learners get stuck (all notebooks)", "stuck.md"),
]


def part(name: str) -> str:
    return (PARTS / name).read_text(encoding="utf-8").strip()


def _list_items(lines: list[str]) -> list[str]:
    """The items of the first Markdown list in ``lines`` ('- ' or '1. '), continuation lines joined."""
    items: list[str] = []
    for line in lines:
        start = re.match(r"\s{0,3}(?:[-*]|\d+\.)\s+(.*)", line)
        if start:
            items.append(start.group(1).strip())
        elif items and line.startswith((" ", "\t")) and line.strip():
            items[-1] += " " + line.strip()
        elif items:
            break
    return items


def notebook_outline(path: Path) -> dict:
    """Title, minutes, objectives, prerequisites, section headings and exercises of a notebook."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "markdown"]
    intro = cells[0] if cells else ""
    first = intro.splitlines()
    title = next((line.lstrip("# ").strip() for line in first if line.startswith("# ")), path.stem)
    minutes = re.search(r"about (\d+) minutes", intro)
    list_start = next((i for i, line in enumerate(first) if re.match(r"\s{0,3}[-*]\s", line)), len(first))
    lead = first[list_start - 1] if 0 < list_start <= len(first) else ""
    lead = re.sub(r"\*\*Learning objectives\.?\*\*|\(about \d+ minutes\)|\*\*", "", lead)
    lead = " ".join(lead.split()).replace(" ,", ",")
    prereq = re.search(r"\*\*Prerequisites:?\*\*:?\s*(.+?)(?:\n\s*\n|\Z)", intro, re.DOTALL)
    sections, exercises = [], []
    for text in cells:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("## "):
                heading = line[3:].strip()
                if heading.lower() == "exercises":
                    exercises = _list_items(lines[i + 1:])
                elif heading.lower() not in ("summary", "check yourself"):
                    sections.append(heading)
    return {"file": path.name, "title": title, "minutes": int(minutes.group(1)) if minutes else None,
            "objectives_lead": lead.rstrip(":") + ":" if lead else "", "objectives": _list_items(first[list_start:]),
            "prerequisites": " ".join(prereq.group(1).split()) if prereq else "",
            "sections": sections, "exercises": exercises}


def notebook_section(nb_id: str) -> str:
    paths = sorted(NOTEBOOKS.glob(f"{nb_id}_*.ipynb"))
    if not paths:
        out = [f"### Notebook {nb_id}", "", "(Not in this checkout yet: rebuild this guide when it is.)", ""]
        outline = None
    else:
        outline = notebook_outline(paths[0])
        minutes = f", about {outline['minutes']} minutes self-paced" if outline["minutes"] else ""
        out = [f"### {outline['title']}", "", f"`notebooks/{outline['file']}`{minutes}.", ""]
        if outline["objectives"]:
            out += [f"**Learning objectives.** {outline['objectives_lead']}".rstrip(), ""]
            out += [f"- {o}" for o in outline["objectives"]] + [""]
        if outline["prerequisites"]:
            out += [f"**Prerequisites:** {outline['prerequisites']}", ""]
        if outline["sections"]:
            out += ["**Sections:** " + "; ".join(outline["sections"]) + ".", ""]
    if (PARTS / f"notebook_{nb_id}.md").exists():
        out += [part(f"notebook_{nb_id}.md"), ""]
    if outline and outline["exercises"]:
        out += ["**Exercises.**", ""] + [f"{i}. {e}" for i, e in enumerate(outline["exercises"], 1)] + [""]
        out += [("Solutions: the notebook's **Show solutions** button computes them with `course_lib` "
                 "(some from the learner's own measurements, so every learner gets their own numbers). "
                 "Run the notebook in workshop mode beforehand to see them."), ""]
    return "\n".join(out)


def build() -> str:
    """The whole guide, as Markdown."""
    sys.path.insert(0, str(ROOT))
    from course_lib import checks, quiz

    ids = quiz.notebook_ids()
    out = ["# Instructor guide: \"Why is LLM inference so slow?\"", "",
           ("<!-- Built by `python docs/build_guide.py` from docs/guide/*.md, the notebooks and the quiz "
            "banks. Do not edit by hand: tests/test_guide.py fails when this file is stale. -->"), "",
           part("intro.md"), "", "## Contents", ""]
    out += [f"{heading}" for heading, _ in SECTIONS]
    out += ["6. The notebooks: objectives, stuck points, discussion prompts, exercises", "7. Answer keys", ""]
    for heading, name in SECTIONS:
        out += [f"## {heading}", "", part(name), ""]
    out += ["## 6. The notebooks", ""]
    nb_ids = sorted(set(ids) | {p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")})
    out += [notebook_section(nb_id) for nb_id in nb_ids]
    out += ["## 7. Answer keys", "", part("answer_keys.md"), ""]
    for nb_id in ids:  # the key's headings move two levels down, under "## 7."
        key = re.sub(r"(?m)^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", checks.answer_key(nb_id))
        out += [key.rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(GUIDE), help="where to write it ('-': print it)")
    parser.add_argument("--check", action="store_true", help="exit status 1 if OUTPUT differs from the build")
    args = parser.parse_args(argv)
    text, target = build(), Path(args.output)
    if args.output == "-":
        sys.stdout.write(text)
    elif args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: run python docs/build_guide.py", file=sys.stderr)
            return 1
    else:
        target.write_text(text, encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
