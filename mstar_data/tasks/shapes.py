"""Coloured shapes in a grid; the question adds up the counts of some colours.

Each example is deterministic in (seed, variant, index), so any one of them can be regenerated alone. The
reference chain of thought is in the M-STAR format: one paragraph per step, blank lines between, and a
'# Answer' header before the answer:

    red: 2.

    blue: 3.

    2 + 3 = 5.

    # Answer

    5
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from mstar_data.ingest.images import png_bytes

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 30), "blue": (30, 60, 220), "yellow": (230, 200, 0),
           "purple": (140, 40, 170)}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Variant:
    grid: int
    colours: tuple[str, ...]
    min_shapes: int
    max_shapes: int
    asked: int  # how many colours the question adds up


# easy asks two of three colours, chosen per example, so the question has to be read (always asking the same
# pair makes the task too easy for self-evolution to show anything once the vision tower is pretrained).
VARIANTS = {
    "easy": Variant(grid=3, colours=("red", "green", "blue"), min_shapes=2, max_shapes=6, asked=2),
    "hard": Variant(grid=4, colours=tuple(COLOURS), min_shapes=4, max_shapes=10, asked=3),
}


@dataclass
class ShapesExample:
    index: int
    question: str
    answer: str
    cot: str
    image_png: bytes
    counts: dict[str, int]
    cells: dict[int, tuple[str, str]] = field(default_factory=dict)  # grid cell (row-major) -> (colour, shape)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_example(seed: int, index: int, variant: str = "easy", size: int = 64) -> ShapesExample:
    v = VARIANTS[variant]
    rng = random.Random(f"shapes/{variant}/{seed}/{index}")
    n = rng.randint(v.min_shapes, min(v.max_shapes, v.grid * v.grid))
    cells = rng.sample(range(v.grid * v.grid), n)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cell = size / v.grid
    counts = {c: 0 for c in v.colours}
    layout = {}
    for c in cells:
        colour = rng.choice(v.colours)
        counts[colour] += 1
        r, col = divmod(c, v.grid)
        pad = rng.uniform(0.12, 0.25) * cell
        box = (int(col * cell + pad), int(r * cell + pad), int((col + 1) * cell - pad), int((r + 1) * cell - pad))
        shape = rng.choice(SHAPES)
        layout[c] = (colour, shape)
        _draw(draw, shape, box, COLOURS[colour])
    asked = rng.sample(v.colours, v.asked)
    names = ", ".join(asked[:-1]) + f" and {asked[-1]}"
    question = f"How many {names} shapes are there in total?"
    steps = [f"{c}: {counts[c]}." for c in asked]
    total = counts[asked[0]]
    for c in asked[1:]:
        steps.append(f"{total} + {counts[c]} = {total + counts[c]}.")
        total += counts[c]
    cot = "\n\n".join(steps) + f"\n\n# Answer\n\n{total}"
    return ShapesExample(index, question, str(total), cot, png_bytes(img), counts, layout)


def split_of(index: int, n: int, val_fraction: float = 0.15, test_fraction: float = 0.15) -> str:
    """Train first, then val, then test, by position: the same n and fractions give the same splits."""
    n_train = n - round(n * val_fraction) - round(n * test_fraction)
    n_val = round(n * val_fraction)
    return "train" if index < n_train else "val" if index < n_train + n_val else "test"


_CLAIM = re.compile(r"^([a-z]+)\s*:\s*(\d+)\s*\.?$")
_SUM = re.compile(r"^(\d+)\s*\+\s*(\d+)\s*=\s*(\d+)\s*\.?$")
_ANSWER = re.compile(r"^#+\s*answer\s*:?\s*(\d+)\s*\.?$", re.IGNORECASE)


def asked_colours(question: str) -> list[str]:
    """The colours a question adds up, in the order it names them."""
    found = [(question.find(f" {c}"), c) for c in COLOURS if f" {c}" in question]
    return [c for _, c in sorted(found)]


def check_steps(question: str, counts: dict[str, int], steps: list[str]) -> list[bool]:
    """Whether each step of a response is true of the scene: "colour: n." when the scene has n shapes of that
    colour; "a + b = c." when a + b = c, b is the count of an asked colour and a a sum of asked counts (the
    running total); the '# Answer' step when it gives the true total. Anything else is not a checkable claim,
    so it is not valid."""
    asked = [counts.get(c, 0) for c in asked_colours(question)]
    sums = {sum(asked[i] for i in range(len(asked)) if mask >> i & 1) for mask in range(1, 1 << len(asked))}
    total = sum(asked)
    out = []
    for step in steps:
        s = " ".join(step.split()).lower()
        if m := _CLAIM.match(s):
            out.append(m.group(1) in counts and counts[m.group(1)] == int(m.group(2)))
        elif m := _SUM.match(s):
            a, b, c = map(int, m.groups())
            out.append(a + b == c and a in sums and b in asked and c in sums)
        elif m := _ANSWER.match(s):
            out.append(int(m.group(1)) == total)
        else:
            out.append(False)
    return out
