"""Workshop kit: the in-room switch, a quiz reset, and the generated instructor guide.

In a notebook (the first code cell is a good place)::

    from course_lib import workshop
    workshop.enable()          # every later measurement in this kernel uses fast settings
    workshop.reset_quizzes()   # clear every quiz shown in this kernel (between groups)

From a shell, the same switch for every notebook a JupyterLab starts::

    COURSE_WORKSHOP=1 python3 course.py open      # COURSE_FAST=1 means the same

*Workshop mode* is the measurement code's fast mode (``microbench.fast_mode()``, read when a
measurement runs, not when a module is imported): shorter timing runs, smaller matmuls, fewer
cache-scan sizes. The bandwidth buffers stay as large as in the default mode, so the numbers
still describe main memory; they are a little noisier. A machine profile measured in the
default mode is reused in workshop mode (``profile.is_current``); a fast one is measured again
when a default-mode notebook asks for the profile.

The instructor guide is generated, never edited by hand, so its answer keys cannot drift from
the quiz banks and its objectives and exercises cannot drift from the notebooks::

    python -m course_lib guide -o docs/INSTRUCTOR_GUIDE.md

``instructor_guide()`` assembles the hand-written parts below (audience, agendas, where learners
get stuck, discussion prompts: plain data) with what it reads from the notebooks (objectives,
section headings, exercises) and the answer key of every quiz bank (``quiz.answer_key``).
Exercise solutions are not copied: each notebook computes them with ``course_lib``, some from
the learner's own measurements, behind its **Show solutions** button.

No side effects on import, and nothing heavier than the standard library at import time.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

__all__ = ["AGENDAS", "ENV_VARIABLES", "disable", "enable", "instructor_guide", "is_enabled",
           "notebook_outline", "reset_quizzes"]

ENV_VARIABLES = ("COURSE_WORKSHOP", "COURSE_FAST")  # either one switches workshop mode on
_TRUE = ("1", "true", "yes", "on")
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


# ============================================================================ the switch
def is_enabled() -> bool:
    """True when COURSE_WORKSHOP or COURSE_FAST is 1/true/yes/on (read now, not at import)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ENV_VARIABLES)


def enable(quiet: bool = False) -> None:
    """Workshop mode for this kernel: every later measurement uses fast settings.

    Sets COURSE_WORKSHOP=1 and COURSE_FAST=1 in ``os.environ`` (which the measurement code reads
    at each call, and which processes started later, such as notebook 04's ranks, inherit).
    """
    for name in ENV_VARIABLES:
        os.environ[name] = "1"
    if not quiet:
        print("Workshop mode is on: measurement cells below use fast settings (shorter runs, "
              "a little more noise). A machine profile measured earlier is reused.")


def disable(quiet: bool = False) -> None:
    """Back to the default (careful) measurements. Sets both variables to 0 rather than deleting
    them, so it also overrides a COURSE_FAST=1 that the launcher exported (Binder does)."""
    for name in ENV_VARIABLES:
        os.environ[name] = "0"
    if not quiet:
        print("Workshop mode is off: measurement cells below use the default settings.")


# ============================================================================ quiz reset
def _live_quiz_views() -> list:
    """Every QuizView still open in this kernel."""
    from . import quiz_widget

    hook = getattr(quiz_widget, "LIVE_VIEWS", None)  # a WeakSet, if quiz_widget keeps one
    if hook is not None:
        return list(hook)
    if quiz_widget.QuizView is None:
        return []
    # ipywidgets keeps every widget it has created in this registry until the widget is closed
    from ipywidgets.widgets import widget as _widget

    registry = getattr(_widget, "_instances", {})
    return [w for w in list(registry.values()) if isinstance(w, quiz_widget.QuizView)]


def reset_quizzes() -> int:
    """Clear every quiz displayed in this kernel, as if each one's **Start again** was pressed
    (answers, feedback and score). Returns how many quizzes were reset. Quizzes store nothing on
    disk: restarting the kernel resets them too."""
    views = _live_quiz_views()
    for view in views:
        view.reset()
    return len(views)


# ============================================================================ reading the notebooks
def _markdown_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


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


def notebook_path(nb_id: str) -> Path:
    from .quiz_bank import NOTEBOOKS

    return NOTEBOOK_DIR / f"{NOTEBOOKS[nb_id]}.ipynb"


def notebook_outline(nb_id: str) -> dict | None:
    """What the guide takes from a notebook: title, minutes, objectives, prerequisites, section
    headings and exercises. None if the notebook is not in this checkout."""
    path = notebook_path(nb_id)
    if not path.exists():
        return None
    cells = _markdown_cells(path)
    first = cells[0].splitlines() if cells else []
    title = next((line.lstrip("# ").strip() for line in first if line.startswith("# ")), path.stem)
    minutes = re.search(r"about (\d+) minutes", cells[0] if cells else "")
    list_start = next((i for i, line in enumerate(first) if re.match(r"\s{0,3}[-*]\s", line)), len(first))
    lead = first[list_start - 1] if 0 < list_start <= len(first) else ""
    lead = re.sub(r"\*\*Learning objectives\.?\*\*|\(about \d+ minutes\)|\*\*", "", lead)
    lead = " ".join(lead.split()).replace(" ,", ",")
    prereq = re.search(r"\*\*Prerequisites:?\*\*:?\s*(.+?)(?:\n\s*\n|\Z)", cells[0] if cells else "",
                       re.DOTALL)
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
    return {
        "id": nb_id, "file": path.name, "title": title,
        "minutes": int(minutes.group(1)) if minutes else None,
        "objectives_lead": lead.rstrip(":") + ":" if lead else "",
        "objectives": _list_items(first[list_start:]),
        "prerequisites": " ".join(prereq.group(1).split()) if prereq else "",
        "sections": sections, "exercises": exercises,
    }


# ============================================================================ hand-written content
AUDIENCE = """\
**Who the workshop is for.** Programmers and ML practitioners who know what a neural network
layer is (a matrix multiplied by a vector) and can read Python. No GPU, no CUDA, no prior
knowledge of inference systems. Typical groups: backend engineers who call LLM APIs, ML
engineers moving from training to serving, students after a first deep-learning course.

**Prerequisites for attendees.** A laptop with Python 3.10 or newer and about 2 GB of free
memory (or a browser, for Binder or Colab); the pre-flight below done before the day. Useful but
not required: a rough idea of what a transformer layer contains.

**Prerequisites for the instructor.** Having run every notebook once, top to bottom, on a laptop
like the attendees'. Being able to explain, without slides, why a matrix-vector product reads
every weight once and does two floating-point operations per weight: the whole course follows
from that.

**What attendees leave with.** One idea, t_token ≈ model bytes ÷ memory bandwidth at batch
size 1, backed by their own measurement, and the vocabulary to reason about everything built on
it: arithmetic intensity, prefill vs decode, the roofline, the critical batch, tensor
parallelism and speculative decoding."""

# (minutes, activity). The tests check that they add up to 180 and 90 minutes.
AGENDAS: dict[str, list[tuple[int, str]]] = {
    "3-hour workshop": [
        (10, "Welcome; everyone runs `python -m course_lib check` and fixes what it reports (in pairs)"),
        (15, "00 Start here: measure every laptop; collect the read bandwidths on the whiteboard"),
        (35, "01 The bottleneck: parallel pass vs token loop, the formula, the calculator, predict, measure"),
        (10, "Break (stragglers finish 01's measurement)"),
        (30, "02 Prefill vs decode: intensity by hand, the prefill curve, TTFT vs TPOT, KV-cache reads"),
        (30, "03 The roofline: the ridge point, the explorer, measure the batching knee, test the 32x claim"),
        (10, "Break"),
        (30, "04 The limits of parallelism: the data dependency, tensor parallelism, speculative decoding"),
        (10, "Wrap-up: the map of optimisations (which term each attacks), questions, feedback"),
    ],
    "90-minute workshop": [
        (5, "Welcome; pre-flight problems (attendees ran the check and notebook 00 at home)"),
        (10, "00 Start here: re-run the profile cell; compare bandwidths in the room"),
        (30, "01 The bottleneck: the formula, the calculator, predict then measure (the heart of it)"),
        (15, "02 Prefill vs decode: intensity, the prefill curve, TTFT vs TPOT; the KV cache as homework"),
        (15, "03 The roofline: the ridge point, the explorer, the critical batch; measuring it as homework"),
        (10, "04 The limits of parallelism: the dependency, the speculative-decoding sliders; rest as homework"),
        (5, "Wrap-up: the map of optimisations; where to go next"),
    ],
}

# (symptom, what to do), for every notebook
STUCK_GENERAL: list[tuple[str, str]] = [
    (("Sliders, charts or quizzes do not show (\"Error displaying widget\", a blank space, or the "
      "quiz printed as plain text)"),
     ("Run `python -m course_lib check` in the course environment: the lab-extension lines say which "
      "front-end extension is missing and how to reinstall it. Then restart JupyterLab itself (not "
      "only the kernel) and reload the browser tab. Editors other than JupyterLab (VS Code, classic "
      "Notebook) need their own widget support; JupyterLab from `python3 course.py open` is the "
      "tested set-up. A quiz printed as text is still complete: learners can answer on paper.")),
    ("A measurement cell takes minutes, or the whole room's laptops crawl",
     ("Switch on workshop mode: `from course_lib import workshop; workshop.enable()` at the top of "
      "the notebook (or start JupyterLab with `COURSE_WORKSHOP=1`). Close other programs (video "
      "calls, browser tabs with video). In a measurement cell, drop the largest preset from the "
      "list of presets: the lesson survives with three sizes. Pair a slow laptop with a fast one.")),
    ("The kernel died, or a cell says \"this model needs … GB … but only … GB is free\"",
     ("The memory guard checks before allocating a toy model; its message names the fix (a smaller "
      "preset or batch). Every open notebook keeps its own kernel and its own toy models: shut down "
      "the kernels of notebooks already finished (Running panel in JupyterLab's left bar, or "
      "Kernel → Shut Down Kernel) and re-run the notebook from the top.")),
    ("Binder: the kernel restarts by itself, or the session is gone after a pause",
     ("Binder gives about 1 CPU and 2 GB of memory, and ends a session after some idle minutes; "
      "nothing is saved. Keep one notebook's kernel running at a time, and download notebooks with "
      "answers worth keeping (File → Download). Binder starts in fast mode already. Launch it "
      "before the session starts: building or pulling the image can take several minutes.")),
    ("Windows",
     ("Use `py course.py check` and `py course.py open` (the launcher) from PowerShell or cmd in "
      "the repository folder; no activation step is needed. If the firewall asks about Python when "
      "notebook 04 starts its processes, allow private networks: the processes talk to each other "
      "over a local socket. If Python is not found, install it from python.org and tick \"Add to "
      "PATH\", or use Binder.")),
    ("NameError, or a cell uses a variable that does not exist",
     ("Cells were run out of order, or the kernel was restarted. Kernel → Restart Kernel and Run All "
      "Cells (quick in workshop mode), or run from the top to the current cell.")),
    ("\"My numbers are different from my neighbour's / from the slide\"",
     ("That is the point of measuring. Compare ratios, not absolute numbers: measured time vs the "
      "bound, prefill vs decode tokens/s, batch 32 vs batch 1. Laptops differ several-fold in "
      "memory bandwidth, and a shared or throttling machine adds noise: re-run the cell.")),
    ("A GPU laptop or Apple silicon behaves unlike the others",
     ("The course picks CUDA, then MPS, then the CPU. Small toy models on a GPU are bound by kernel "
      "launches, not bandwidth; notebook 01 shows it. To compare with the CPU, start JupyterLab "
      "with `COURSE_DEVICE=cpu`.")),
]

STUCK: dict[str, list[tuple[str, str]]] = {
    "00": [
        ("The measured bandwidth is far below the laptop's memory datasheet",
         ("The course measures with one CPU thread (steadier on shared machines), and one core "
          "cannot pull the full bandwidth of every memory channel. That is fine: every later "
          "notebook compares the toy model with this same measurement.")),
        ("The profile numbers change between runs",
         ("Other programs compete for memory bandwidth. `get_profile(device, remeasure=True)` "
          "measures again; the cached profile is what later notebooks reuse.")),
    ],
    "01": [
        ("\"The small models are nowhere near the line\"",
         ("Expected: each decode step runs a few hundred small operations with a fixed cost each. "
          "Point at the launch-aware column of the table and at the straight-line fit's intercept. "
          "On a GPU the effect is larger still (kernel launches).")),
        ("An MBU above 100 %",
         ("The model's weights fit in the processor's cache (hollow markers): it is read faster than "
          "main memory allows. A benchmarking trap, not a bug.")),
        ("The calculator's numbers look off by a factor of a thousand",
         ("Units: bandwidth is in GB/s on the slider and TB/s on datasheets; parameters, not bytes, "
          "on the size slider. Ask learners to say the formula with units out loud.")),
        ("\"A 70B model fits on one 80 GB GPU\"",
         ("At FP16 it needs two bytes per parameter; the notebook's cell prints the weight bytes and "
          "the minimum number of GPUs. The popular version of this lesson gets it wrong.")),
    ],
    "02": [
        ("The hand-computed intensity is off by a factor of two",
         ("Either the 2 FLOPs per multiply-add were forgotten, or 2-byte values were used while the "
          "CPU toy runs in FP32 (4 bytes). Redo the count: FLOPs = 2·n·d_in·d_out.")),
        ("The prefill curve rises in steps for the first few prompt lengths",
         ("On a CPU the math library switches from a matrix-vector kernel to matrix-matrix kernels "
          "that are less efficient for a handful of rows. The notebook says so; the shape after "
          "that is the lesson.")),
        ("TTFT and TPOT are confused",
         ("TTFT is the time for the whole prompt (one prefill), TPOT the time per generated token. "
          "Compare tokens per second of each, as the notebook prints.")),
        ("\"The KV cache barely changes the toy's time\"",
         ("Right for the toy at these lengths: its KV cache is small next to its weights. The 7B-class "
          "chart is where the KV cache rivals the weights.")),
    ],
    "03": [
        ("Reading the log-log roofline",
         ("Start from the units: x is FLOP per byte, y is FLOP/s, so the slanted part is a bandwidth. "
          "Have learners find the ridge point with a finger before using the explorer.")),
        ("Ridge point vs critical batch",
         ("The ridge point is in FLOP/byte; the critical batch is the batch that reaches it, ridge × "
          "bytes per weight ÷ 2 (two FLOPs per weight per sequence).")),
        ("\"Batching did not give 32× on my laptop\"",
         ("Also expected: a CPU's ridge point is low, so its knee comes after a few sequences. On a "
          "datacenter GPU the knee is far further right. Show the recorded GPU reference data if "
          "the notebook offers it.")),
    ],
    "04": [
        ("The tensor-parallel cell takes long to start or shows no speed-up",
         ("Starting processes from a notebook takes seconds. On a laptop both ranks share the same "
          "memory bus, and on Binder the same CPU, so the split saves little; the lesson is the "
          "communication time per step. Use the analytical sliders for the datacenter picture.")),
        ("The speculative-decoding formula",
         ("Work one case on the board: with acceptance α, the chance that the first k drafts all "
          "survive is α^k; the expected tokens per pass add those chances up, plus the one token the "
          "big model always contributes. The speed-up then divides by the cost of a round, γ·c + 1.")),
        ("\"Speculation changes the answer\"",
         ("With greedy verification the output is exactly the target model's own greedy output (up "
          "to floating-point ties); the demo compares them.")),
    ],
}

DISCUSSION: dict[str, list[str]] = {
    "00": [("Whose laptop has the highest bandwidth, and does it match what they paid for? What else "
            "besides the memory chips limits it?"),
           ("Divide the measured FLOP/s by the bandwidth: what does that ratio mean for a program that "
            "does two operations per byte it reads?")],
    "01": [("The formula ignores several costs. Which matters most for a small model on a GPU, and "
            "which for a huge model with a long conversation?"),
           ("A vendor advertises twice the FLOP/s at the same bandwidth. What happens to batch-1 "
            "decode speed?"),
           ("Look up your laptop's bandwidth and an H100's on the calculator. What does the formula "
            "predict for the same model on each, and what would change the picture?")],
    "02": ["Why can an API charge less for input tokens than for output tokens?",
           ("Your product streams long answers to short questions. Which of TTFT and TPOT do users "
            "notice, and which term of the formula would you attack?"),
           ("Grouped-query attention keeps fewer K and V heads. Which term does it shrink, and when "
            "does that matter?")],
    "03": [("\"32 requests give 32× the throughput at the same latency.\" When is that true, and what "
            "breaks it on a GPU with long contexts?"),
           ("Where on the roofline would you put prefill of a long document, and a batch of 256 chat "
            "users with short contexts?"),
           ("Why do serving systems batch requests from different users, and what does each user pay "
            "for it?")],
    "04": [("Why can no hardware compute token 50 before token 49, while batching and tensor "
            "parallelism still help?"),
           ("Tensor parallelism splits the bytes over N devices. What stops the speed-up from growing "
            "with N?"),
           ("When does speculative decoding slow things down? Think of a draft model that is "
            "often wrong, or not much cheaper than the target.")],
}


# ============================================================================ rendering
def _agenda_table(items: list[tuple[int, str]]) -> str:
    rows, start = ["| start | minutes | activity |", "|---|---|---|"], 0
    for minutes, activity in items:
        rows.append(f"| {start // 60}:{start % 60:02d} | {minutes} | {activity} |")
        start += minutes
    rows.append(f"| {start // 60}:{start % 60:02d} | | end ({start} minutes) |")
    return "\n".join(rows)


def _stuck_table(items: list[tuple[str, str]]) -> str:
    return "\n".join(f"- **{symptom}.** {fix}" for symptom, fix in items)


def _shift_headings(markdown: str, levels: int) -> str:
    return re.sub(r"(?m)^(#{1,6}) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", markdown)


def _preflight() -> str:
    from . import check

    packages = ", ".join(f"`{name}` ({why})" for name, why in check.REQUIRED_PACKAGES.items())
    extensions = ", ".join(f"`{name}`" for name in check.LAB_EXTENSIONS)
    minimum = ".".join(str(v) for v in check.MIN_PYTHON)
    return f"""\
### The pre-flight: `python -m course_lib check`

`python3 course.py check` (Windows: `py course.py check`) creates the course environment if
needed, installs the pinned packages and runs `python -m course_lib check`. Each line is
`[ok  ]`, `[FAIL]` (must be fixed) or `[note]` (information only):

- **Python**: version {minimum} or newer.
- **Packages**: {packages}. A missing one names the install command.
- **device**: the device the course will use (CUDA GPU, Apple MPS or the CPU) and the precisions
  the toy model can run there.
- **free memory**: at least {check.MIN_FREE_MEMORY / 1e9:.1f} GB free on that device.
- **GPU**: a note when there is none; the course runs on the CPU and shows recorded GPU runs.
- **lab extension** lines: {extensions}. Without them sliders, charts and quizzes do not display;
  the fix is printed.

The last line is the verdict: `Verdict: READY` (exit status 0), or `Verdict: NOT READY` with one
fix per problem (exit status 1). Ask attendees to send you the whole output if they cannot reach
READY; most problems are a missing lab extension or an old Python.

### What to send attendees (a week before)

> **Before the workshop "Why is LLM inference so slow?"** (20 minutes, please do it before the
> day). Pick one of three ways:
>
> 1. **Your laptop (recommended).** Install Python {minimum} or newer. Download or clone the
>    course repository, open a terminal in its folder and run `python3 course.py check`
>    (Windows: `py course.py check`). The first run installs the course (a few minutes). You
>    should see `Verdict: READY`; if not, do what it says or send me its output. Then run
>    `python3 course.py open`, open `00_start_here.ipynb` and run it (Run → Run All Cells): it
>    measures your machine once and keeps the result for the day.
> 2. **Binder (nothing to install).** Click the *launch binder* badge in the README. It can take
>    several minutes to start and forgets everything when you close it; it is slower than most
>    laptops, but everything works.
> 3. **Google Colab.** Use the notebook's *Open in Colab* link in the README and run its first
>    cell, which installs the course into the Colab runtime. Run notebook 00 again whenever
>    Colab gives you a fresh runtime.
>
> Bring a charger. Close video calls and heavy programs during the workshop: we measure memory
> bandwidth, and they compete for it.

### Slow laptops and machines that cannot install

- **Workshop mode** (below) shortens every measurement; Binder runs in it already.
- **Smaller presets**: in a measurement cell, remove the largest toy preset from the list; the
  memory guard's message also says when a smaller one is needed.
- **Recorded GPU reference data**: `assets/reference/` holds measurements recorded on datacenter
  GPUs (`course_lib.reference`), labelled as recorded, so a CPU-only room still sees GPU numbers.
- **Pairs**: a slow laptop next to a fast one makes the best discussion anyway.

### The instructor's checklist (the day before)

- On a laptop like the attendees', start JupyterLab in workshop mode and run every notebook
  top to bottom (Run → Run All Cells); note how long each takes, and press every **Show
  solutions** button to see this machine's solutions.
- Launch Binder once, so that its image is built before attendees ask for it.
- Print or open this guide's answer keys on a screen that is not projected.
- Have `docs/SLIDES.md` ready in a presentation tool, and the room's Wi-Fi details for Binder
  and Colab users."""


def _in_room() -> str:
    return """\
### Workshop mode

One switch makes every measurement cell use fast settings (shorter timing runs, smaller
matmuls, fewer cache-scan sizes; the bandwidth buffers stay large, so the numbers still describe
main memory, with a little more noise):

- for a whole JupyterLab: start it with the environment variable `COURSE_WORKSHOP=1` (or
  `COURSE_FAST=1`): `COURSE_WORKSHOP=1 python3 course.py open` on Linux and macOS,
  `$env:COURSE_WORKSHOP="1"; py course.py open` in PowerShell, `set COURSE_WORKSHOP=1` then
  `py course.py open` in cmd;
- in one notebook: `from course_lib import workshop; workshop.enable()` in a cell above the
  measurements (`workshop.disable()` switches back, `workshop.is_enabled()` tells).

The machine profile measured by notebook 00 is cached on disk and reused: one measured in the
default mode is also used in workshop mode; one measured in workshop mode is measured again the
next time a notebook runs in the default mode. Attendees who ran notebook 00 at home start the
day with a careful profile.

### Resetting quizzes

Quizzes keep their state in the kernel only: nothing is stored on disk or sent anywhere. Each
quiz has a **Start again** button; `workshop.reset_quizzes()` clears every quiz shown in the
kernel at once; restarting the kernel clears everything.

### Slides and answer keys

`docs/SLIDES.md` has a short outline per notebook (Markdown, slides separated by `---`, which
Marp, reveal-md and similar tools present as they are). Keep the answer keys below on your own
screen, not the projector; `python -m course_lib quiz --answers NN` prints one in a terminal."""


def _notebook_section(nb_id: str) -> str:
    from .quiz_bank import NOTEBOOKS

    outline = notebook_outline(nb_id)
    out = []
    if outline is None:
        out += [f"### {NOTEBOOKS[nb_id]}", "",
                f"(`{NOTEBOOKS[nb_id]}.ipynb` is not in this checkout yet: regenerate this guide when it is.)",
                ""]
    else:
        minutes = f", about {outline['minutes']} minutes self-paced" if outline["minutes"] else ""
        out += [f"### {outline['title']}", "", f"`notebooks/{outline['file']}`{minutes}.", ""]
        if outline["objectives"]:
            out += [f"**Learning objectives.** {outline['objectives_lead']}".rstrip(), ""]
            out += [f"- {o}" for o in outline["objectives"]] + [""]
        if outline["prerequisites"]:
            out += [f"**Prerequisites:** {outline['prerequisites']}", ""]
        if outline["sections"]:
            out += ["**Sections:** " + "; ".join(outline["sections"]) + ".", ""]
    if STUCK.get(nb_id):
        out += ["**Where learners get stuck.**", "", _stuck_table(STUCK[nb_id]), ""]
    if DISCUSSION.get(nb_id):
        out += ["**Discussion prompts.**", ""] + [f"- {p}" for p in DISCUSSION[nb_id]] + [""]
    if outline and outline["exercises"]:
        out += ["**Exercises.**", ""] + [f"{i}. {e}" for i, e in enumerate(outline["exercises"], 1)] + [""]
        out += [("Solutions: the notebook's **Show solutions** button computes them with `course_lib` "
                 "(some from the learner's own measurements, so every learner gets their own numbers). "
                 "Run the notebook in workshop mode beforehand to see them."), ""]
    return "\n".join(out)


def instructor_guide() -> str:
    """The instructor guide as Markdown (what `python -m course_lib guide` prints)."""
    from . import quiz

    ids = quiz.notebook_ids()
    parts = [
        "# Instructor guide: \"Why is LLM inference so slow?\"",
        "",
        ("<!-- Generated by `python -m course_lib guide -o docs/INSTRUCTOR_GUIDE.md` from "
         "course_lib/workshop.py, the notebooks and the quiz banks. Do not edit by hand: "
         "tests/test_workshop.py fails when this file and the generated text differ. -->"),
        "",
        ("Everything needed to teach the course in a room: audience, agendas, the pre-flight to send "
         "attendees, workshop mode, where learners get stuck, discussion prompts, and the answer key "
         "of every quiz."),
        "",
        "## Contents",
        "",
        "1. Audience and prerequisites",
        "2. Agendas",
        "3. Before the workshop",
        "4. In the room",
        "5. Where learners get stuck (all notebooks)",
        "6. The notebooks: objectives, stuck points, discussion prompts, exercises",
        "7. Answer keys",
        "",
        "## 1. Audience and prerequisites",
        "",
        AUDIENCE,
        "",
        "## 2. Agendas",
        "",
        ("Self-paced, the notebooks take the minutes listed in section 6. In a room, the instructor "
         "introduces each notebook in a few minutes, attendees work through it (in pairs if they "
         "like), and each block ends with a discussion prompt and the quiz."),
        "",
    ]
    for name, items in AGENDAS.items():
        parts += [f"### {name}", "", _agenda_table(items), ""]
    parts += ["## 3. Before the workshop", "", _preflight(), "",
              "## 4. In the room", "", _in_room(), "",
              "## 5. Where learners get stuck (all notebooks)", "", _stuck_table(STUCK_GENERAL), "",
              "## 6. The notebooks", ""]
    from .quiz_bank import NOTEBOOKS

    for nb_id in sorted(set(NOTEBOOKS) | set(ids)):
        parts.append(_notebook_section(nb_id))
    parts += ["## 7. Answer keys", "",
              ("Generated from the quiz banks (`course_lib/data/quizzes/`). A *measured* question is "
               "graded against the learner's own measurement: its key gives the formula, and the "
               "notebook's quiz computes the value for each learner."), ""]
    for nb_id in ids:
        parts += [_shift_headings(quiz.answer_key(nb_id), 2).rstrip(), ""]
    return "\n".join(parts).rstrip() + "\n"
