from pathlib import Path

import pytest

from mstar_data.errors import MstarError
from mstar_data.loop.grpo_recipe import GrpoRecipe
from mstar_data.loop.recipe import Recipe, load_recipe, resolve_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))


def test_every_packaged_recipe_validates():
    names = {p.name for p in RECIPES}
    assert {"mstar.toml", "rest_em.toml", "iterative_rft.toml", "continuous_static.toml", "demo.toml"} <= names
    for path in RECIPES:
        recipe, text = load_recipe(path)
        assert isinstance(recipe, (Recipe, GrpoRecipe)) and text.strip()
        resolve_recipe(path, smoke=True)  # and each shrinks for --smoke (its own kind of shrink)


def test_paper_recipe_values():
    r, _ = load_recipe("mstar.toml")
    assert (r.sample.n, r.select.view, r.select.k, r.train.method, r.data.interval) == (16, "trainset_top_k", 2,
                                                                                         "continuous", 0.25)
    assert r.temperature_grid()[0] == 0.3 and r.temperature_grid()[-1] == 1.6 and len(r.temperature_grid()) == 14


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[run]\nbase_policy = "x"\n[sample]\ntemprature = 0.5\n')
    with pytest.raises(MstarError, match=r"field 'sample.temprature': Extra inputs are not permitted"):
        load_recipe(p)
    p.write_text('[run]\nbase_policy = "x"\n[train]\nmethod = "magic"\n')
    with pytest.raises(MstarError, match=r"field 'train.method'"):
        load_recipe(p)
    p.write_text('[run]\nid = "x"\n')
    with pytest.raises(MstarError, match=r"field 'run.base_policy': Field required"):
        load_recipe(p)
    p.write_text("[run\n")
    with pytest.raises(MstarError, match="not valid TOML"):
        load_recipe(p)


def test_set_overrides_the_file():
    r, _ = load_recipe("demo.toml", ["sample.n=3", "run.id=other", "train.lr=0.5", "select.correct_only=false"])
    assert (r.sample.n, r.run.id, r.train.lr, r.select.correct_only) == (3, "other", 0.5, False)
    with pytest.raises(MstarError, match="expected section.key=value"):
        load_recipe("demo.toml", ["nonsense"])
    with pytest.raises(MstarError, match="field 'sample.nn'"):
        load_recipe("demo.toml", ["sample.nn=3"])


def test_a_record_made_before_a_field_existed_is_no_difference():
    """A run recorded by an older mstar lacks the fields added since: they take today's defaults, so upgrading
    alone never refuses a rerun, while a value really set differently still does."""
    import json

    from mstar_data.loop.recipe import recipe_diff, recipe_json

    r = resolve_recipe("demo.toml")
    old = json.loads(recipe_json(r))
    del old["select"]["refine_k"], old["select"]["select_k"]
    assert recipe_diff(json.dumps(old), r) == []
    old["select"]["k"] = 7
    assert recipe_diff(json.dumps(old), r) == ["select.k"]
