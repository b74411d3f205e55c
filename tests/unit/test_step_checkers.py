"""The shapes task's step checker: every claim of a response checked against the generated scene."""

import json

from mstar_data.steps import split_steps
from mstar_data.tasks.checkers import check_steps, checker_spec
from mstar_data.tasks.shapes import asked_colours, check_steps as shapes_check, make_example


def test_reference_cots_are_all_valid():
    for variant in ("easy", "hard"):
        for i in range(50):
            ex = make_example(3, i, variant)
            steps = split_steps(ex.cot)
            assert shapes_check(ex.question, ex.counts, steps) == [True] * len(steps), (ex.question, steps)


def test_each_kind_of_wrong_step():
    q = "How many red and blue shapes are there in total?"
    counts = {"red": 2, "green": 5, "blue": 3}
    assert asked_colours(q) == ["red", "blue"]
    steps = ["red: 2.", "red: 3.", "green: 5.", "2 + 3 = 5.", "1 + 1 = 3.", "1 + 4 = 5.", "5 + 2 = 7.",
             "# Answer\n\n5", "# Answer\n\n6", "I count the shapes.", "Red: 2"]
    assert shapes_check(q, counts, steps) == [True, False, True, True, False, False, False, True, False, False,
                                              True]


def test_dispatch_from_query_meta():
    ex = make_example(0, 7)
    meta = json.dumps({"seed": 0, "index": 7, "variant": "easy", "counts": ex.counts})
    spec = checker_spec(meta)
    assert json.loads(spec)["task"] == "shapes"
    assert check_steps(spec, ex.question, split_steps(ex.cot)) == [True] * len(split_steps(ex.cot))
    assert checker_spec(json.dumps({"query": "MathVista hint"})) is None
    assert checker_spec("not json") is None and checker_spec(None) is None
    assert check_steps(None, ex.question, ["a"]) is None
