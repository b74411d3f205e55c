"""The CLI as a careful user meets it (issue 11): it never deletes their files, prints data literally, says
what went wrong in one line, and keeps finished work on Ctrl-C. Everything runs through `mstar ARGS`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mstar_data.store import Store


def _mstar(*args):
    return [sys.executable, "-c", "from mstar_cli.main import main; main()", *map(str, args)]


def _one_line_error(r, *needles: str) -> None:
    assert r.rc != 0
    lines = [ln for ln in r.err.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in r.err, r.err
    if r.rc == 1:  # our own errors: exactly one line
        assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for n in needles:
        assert n in r.err, r.err


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items

    uri = str(tmp_path_factory.mktemp("careful") / "store")
    ingest_items(Store(uri), synthetic_items(60, 1, "easy", 0.5), source="synthetic", dataset="synthetic",
                 split="train")
    return uri


@pytest.fixture
def quick_bootstrap(monkeypatch):
    """bootstrap-policy in a few seconds: no vision pretraining (what is tested is where it writes)."""
    import mstar_data.models.tiny as tiny

    monkeypatch.setattr(tiny, "pretrain_vision", lambda *a, **k: None)
    return ["--max-steps", "1", "--max-seconds", "5"]


# -- 1. --out never deletes what the command did not create ------------------------------------------------

FOLDER_COMMANDS = {
    "bootstrap-policy": lambda out, store: ["bootstrap-policy", "--out", out, "--store", store],
    "prm train": lambda out, store: ["prm", "train", "--policy", "p", "--run", "r", "--out", out, "--store", store],
    "export prm": lambda out, store: ["export", "prm", "--run", "r", "--out", out, "--store", store],
    "export cot": lambda out, store: ["export", "cot", "--run", "r", "--out", out, "--store", store],
}


@pytest.mark.parametrize("command", sorted(FOLDER_COMMANDS))
def test_out_into_a_folder_of_user_files_is_refused_and_the_files_stay(cli, small_store, tmp_path, command):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("precious")
    for force in ([], ["--force"]):  # --force does not make a user's folder ours
        r = cli(*FOLDER_COMMANDS[command](str(user), small_store), *force)
        _one_line_error(r, "--out", "not empty", "keep.txt")
        assert sorted(p.name for p in user.iterdir()) == ["keep.txt"]
        assert (user / "keep.txt").read_text() == "precious"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    r = cli(*FOLDER_COMMANDS[command](str(a_file), small_store))
    _one_line_error(r, "--out", "is a file")
    assert a_file.read_text() == "mine"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("command", ["sql", "judge"])
def test_out_file_commands_never_overwrite_an_unrelated_file(cli, small_store, tmp_path, command):
    src = tmp_path / "out.jsonl"
    src.write_text(json.dumps({"response": "# Answer\n\n4", "answer": "4"}) + "\n")
    target = tmp_path / "result.json"
    target.write_text("my notes, not a result\x00")
    args = (["sql", "select 1 as x", "--format", "json", "--store", small_store] if command == "sql"
            else ["judge", str(src)])
    r = cli(*args, "--out", target)
    _one_line_error(r, "--out", "exists", "--force")
    r = cli(*args, "--out", target, "--force")
    _one_line_error(r, "--out", "left alone")
    assert target.read_text() == "my notes, not a result\x00"
    r = cli(*args, "--out", tmp_path)  # a folder
    _one_line_error(r, "--out", "is a folder")
    fresh = tmp_path / "new.json"
    assert cli(*args, "--out", fresh).rc == 0 and fresh.is_file()
    assert cli(*args, "--out", fresh).rc == 1  # its own earlier output: only with --force
    assert cli(*args, "--out", fresh, "--force").rc == 0


def test_bootstrap_out_dot_works_and_force_replaces_only_its_own_files(cli, small_store, tmp_path, monkeypatch,
                                                                       quick_bootstrap):
    here = tmp_path / "policy"
    here.mkdir()
    monkeypatch.chdir(here)
    r = cli("bootstrap-policy", "--out", ".", *quick_bootstrap, "--store", small_store)
    assert r.rc == 0, r.err
    assert (here / "mstar_policy.json").is_file() and (here / "config.json").is_file()
    assert not (here / ".mstar-partial").exists() and not (tmp_path / "policy.partial").exists()
    (here / "keep.txt").write_text("mine")
    again = cli("bootstrap-policy", "--out", ".", *quick_bootstrap, "--store", small_store)
    _one_line_error(again, "previous bootstrap-policy output", "--force")
    assert cli("bootstrap-policy", "--out", ".", *quick_bootstrap, "--force", "--store", small_store).rc == 0
    assert (here / "keep.txt").read_text() == "mine"
    assert json.loads((here / "mstar_policy.json").read_text())["kind"] == "bootstrap"


def test_checkpoint_save_replaces_only_its_own_entries(tmp_path):
    """train/checkpoint.save (every training writes through it) keeps a file someone put in the folder."""
    from mstar_data.errors import MstarError
    from mstar_data.train import checkpoint as ckpt

    class Saves:
        def __init__(self, name):
            self.name = name

        def save_pretrained(self, d):
            Path(d, self.name).write_text("w")

        def state_dict(self):
            return {}

    target = tmp_path / "it-0001"
    ckpt.save(target, Saves("model.safetensors"), Saves("tokenizer.json"), Saves(""), Saves(""), {"steps": 1})
    (target / "keep.txt").write_text("mine")
    ckpt.save(target, Saves("model-2.safetensors"), Saves("tokenizer.json"), Saves(""), Saves(""), {"steps": 2})
    names = sorted(p.name for p in target.iterdir())
    assert names == ["checkpoint.json", "keep.txt", "model-2.safetensors", "tokenizer.json", "trainer"]
    assert ckpt.read_meta(target)["steps"] == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(MstarError, match="not empty"):
        ckpt.save(foreign, Saves("m"), Saves("t"), Saves(""), Saves(""), {})
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


# -- 2. Ctrl-C keeps finished work ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_flushes_finished_rollouts_and_records_the_job(small_store, tmp_path, sig):
    import shutil

    from mstar_data.models.tiny import build_tiny_policy

    store = str(tmp_path / "store")
    shutil.copytree(small_store, store)
    policy = tmp_path / "policy"
    build_tiny_policy(policy)
    args = ["generate", "--policy", policy, "--n", "64", "--run", "ctrl-c", "--max-new-tokens", "24",
            "--batch-size", "8", "--flush-rows", "8", "--store", store]
    proc = subprocess.Popen(_mstar(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if Store(store, create=False).count("rollouts") >= 8:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be interrupted: " + proc.stderr.read()[-500:]
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Seen once with the machine loaded 4x over: the first SIGINT was not acted on within 120 s (it may
        # land inside a native Lance write). A user presses Ctrl-C again; so do we, and the rows must still be
        # kept and the job recorded.
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert [ln for ln in err.splitlines() if ln.strip()] == [err.strip()]  # one line
    assert "interrupted" in err and "rerun" in err
    s = Store(store, create=False)
    kept = s.count("rollouts")
    assert 8 <= kept < 42 * 64
    jobs = s.dataset("jobs").to_table().to_pylist()
    assert [(j["status"], j["n_written"]) for j in jobs] == [("interrupted", kept)]
    assert f"{kept} of" in err


# -- 3. every value printed literally ---------------------------------------------------------------------

MARKUP = ["USER: what? [/INST] The answer is 3", "In [b] the interval [/b] what is :x: ?", "[red]x[/red] :smile:"]


def test_sql_prints_markup_and_emoji_codes_literally(cli, small_store):
    for text in MARKUP:
        r = cli("sql", f"select '{text}' as response", "--store", small_store)
        assert r.rc == 0, r.err
        assert text in r.out
    r = cli("sql", f"select '{MARKUP[1]}' as q, 1 as n", "--store", small_store)
    assert MARKUP[1] in r.out and "❌" not in r.out


def test_judge_prints_odd_field_values_literally(cli, tmp_path):
    src = tmp_path / "odd.jsonl"
    recs = [{"response": "# Answer\n\n3", "answer": "3", "question_type": "[/INST]", "answer_type": "[b]int[/b]"},
            {"response": "# Answer\n\n4", "answer": "5", "question_type": ":x:", "answer_type": "integer"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = cli("judge", src)
    assert r.rc == 0, r.err
    assert "[/INST]" in r.out and "[b]int[/b]" in r.out and ":x:" in r.out


# -- 4. wide results readable -----------------------------------------------------------------------------

def test_wide_results_switch_to_records_and_values_print_as_duckdb_does(cli, small_store, tmp_path):
    r = cli("sql", "select * from queries limit 3", "--store", small_store)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) < 60 and sum(ln.startswith("-[ record") for ln in lines) == 3
    assert all(len(ln) <= 80 for ln in lines)
    assert "…" in r.out  # long cells cut
    r = cli("sql", "select 0.7::float as f, [0.70::decimal(4,2), 0.7] as l, {'a': 1} as s", "--store", small_store)
    assert "0.7 " in r.out or "0.7│" in r.out.replace(" ", "") and "0.699999" not in r.out
    assert "[0.70, 0.70]" in r.out and "Decimal" not in r.out and "{'a': 1}" in r.out
    r = cli("sql", "select 1 as x", "--format", "table", "--out", tmp_path / "x.txt", "--store", small_store)
    _one_line_error(r, "--format table")
    assert not (tmp_path / "x.txt").exists()
    out = tmp_path / "x.csv"
    assert cli("sql", "select 1 as x", "--out", out, "--store", small_store).rc == 0
    assert out.read_text() == "x\n1\n"


# -- 5. 6. 7. saying what went wrong ----------------------------------------------------------------------

def test_unknown_split_or_stage_is_refused_naming_what_the_store_has(cli, small_store):
    r = cli("generate", "--policy", "p", "--split", "bogus", "--store", small_store)
    _one_line_error(r, "--split 'bogus'", "train (", "val (")
    r = cli("generate", "--policy", "p", "--split", "Train", "--store", small_store)
    _one_line_error(r, "--split 'Train'")
    r = cli("generate", "--policy", "p", "--stage", "nope", "--store", small_store)
    _one_line_error(r, "--stage")
    r = cli("train", "--run", "nope", "--iteration", "0", "--policy-in", "p", "--store", small_store)
    _one_line_error(r, "--run 'nope'", "no rollouts")
    r = cli("train", "--run", "nope", "--iteration", "0", "--policy-in", "p", "--view", "bogus", "--store", small_store)
    _one_line_error(r, "--view 'bogus'", "trainset_top_k")


def test_bad_values_are_one_line_naming_the_option(cli, small_store, tmp_path):
    a_file = tmp_path / "store-file"
    a_file.write_text("x")
    _one_line_error(cli("tables", "--store", a_file), "--store", "is a file")
    _one_line_error(cli("bootstrap-policy", "--out", "p", "--target-acc", "5", "--store", small_store), "--target-acc")
    _one_line_error(cli("bootstrap-policy", "--out", "p", "--size", "huge", "--store", small_store), "--size", "tiny")
    _one_line_error(cli("generate", "--policy", "p", "--backend", "tgi", "--store", small_store), "--backend", "vllm")
    for bad in ("2", "-1"):
        _one_line_error(cli("ingest", "synthetic", "--cot-fraction", bad, "--store", small_store), "--cot-fraction")
    src = tmp_path / "mv.json"
    src.write_text(json.dumps({"1": {"question": "q", "image": "a.png", "answer": "1"}}))
    _one_line_error(cli("ingest", "mathvista", src, "--val-fraction", "0.2", "--store", small_store),
                    "--val-fraction", "'test'")


def test_a_store_folder_of_other_files_is_refused(cli, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    _one_line_error(cli("init", "--store", folder), "--store", "notes.txt", "empty")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_prm_eval_with_nothing_to_evaluate_says_so(cli, small_store, tmp_path):
    from mstar_data.train.checkpoint import META

    prm = tmp_path / "prm"
    prm.mkdir()
    (prm / "config.json").write_text("{}")
    (prm / META).write_text(json.dumps({"prm": {"id": "x"}}))
    r = cli("prm", "eval", "--prm", prm, "--run", "nothing", "--store", small_store)
    _one_line_error(r, "run 'nothing'", "no eval rollouts")
    assert "None" not in r.out


# -- 8. help ----------------------------------------------------------------------------------------------

def _commands():
    import typer.main

    from mstar_cli.main import app

    root = typer.main.get_command(app)

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd
    return list(walk(root, []))


def test_every_command_help_describes_every_option_with_an_example(cli):
    commands = _commands()
    assert len(commands) >= 20
    for path, cmd in commands:
        undocumented = [p.name for p in cmd.params if not getattr(p, "help", None) and p.name != "help"
                        and p.param_type_name == "option"]
        assert undocumented == [], (path, undocumented)
        r = cli(*path, "--help")
        assert r.rc == 0, (path, r.err)
        assert "<bool>" not in r.out, path
        assert "Example: mstar " in r.out and "--debug" in r.out, path


def test_allowed_values_version_and_aliases(cli, small_store):
    assert "warmup|explore|val|temp-sweep|eval|mc" in cli("generate", "--help").out
    assert "tiny|small" in cli("bootstrap-policy", "--help").out
    assert "hf|lmdeploy|vllm" in cli("generate", "--help").out
    r = cli("--version")
    assert r.rc == 0 and r.out.startswith("mstar ")
    help_label = cli("prm", "label", "--help").out
    assert "--continuations" in help_label and "--m" in help_label
    # the old spelling still parses (it then fails on the missing run, not on the option)
    r = cli("prm", "label", "--policy", "p", "--run", "r", "--m", "3", "--store", small_store)
    assert r.rc == 1 and "--m" not in r.err


def test_sql_list_descriptions_are_whole_sentences(cli):
    from mstar_cli.sql import _comment_block, first_sentences
    from mstar_data.sql_views import load_sql_files

    for name, f in load_sql_files().items():
        d = first_sentences(_comment_block(f.text))
        assert d.endswith((".", ")", ":")), (name, d)
    assert cli("sql", "--list").rc == 0


# -- 9. getting started -----------------------------------------------------------------------------------

def test_readme_says_how_to_get_mstar_and_what_the_tiny_policy_is():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/mstar" in readme
    assert "only knows the shapes task" in readme and "real" in readme


def test_demo_queries_run_as_printed_in_a_fresh_shell(small_store, tmp_path):
    from mstar_cli.options import shell_command
    from mstar_data.loop.demo import QUERIES

    line = shell_command("sql", "--store", str(Path(small_store).resolve()), QUERIES[0])
    argv = shlex.split(line)
    assert argv[1:3] == ["sql", "--store"] and argv[-1] == QUERIES[0] and Path(argv[-2]).is_absolute()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MSTAR_STORE")}
    env["PATH"] = "/usr/bin:/bin"  # a fresh shell: the venv not activated
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr


# -- 10. the benchmark's own prompt -----------------------------------------------------------------------

def test_mathvista_query_hint_reaches_the_benchmark_prompt(cli, tmp_path):
    from PIL import Image

    from mstar_data.inputs import select_queries
    from mstar_data.prompts import build_prompt

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    hint = ("Hint: Please answer the question requiring a floating-point number with two decimal places and "
            "provide the final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How long is it?")
    src = tmp_path / "mv.json"
    src.write_text(json.dumps({"1": {"question": "How long is it?", "image": "a.png", "answer": "1.25",
                                     "answer_type": "float", "precision": 2, "query": hint},
                               "2": {"question": "How many?", "image": "a.png", "answer": "3",
                                     "answer_type": "integer"}}))
    store = str(tmp_path / "store")
    assert cli("ingest", "mathvista", src, "--store", store).rc == 0
    q1, q2 = select_queries(Store(store, create=False), split="test")
    assert q1["hint"] == hint and q2["hint"] is None
    p1 = build_prompt(q1["question"], q1["choices"], variant="benchmark", hint=q1["hint"])
    assert p1.startswith("Hint: Please answer") and "# Answer" in p1
    p2 = build_prompt(q2["question"], variant="benchmark", answer_type=q2["answer_type"])
    assert "integer" in p2 and build_prompt("Q?") == build_prompt("Q?", variant="cot")  # cot unchanged


# -- 11. smaller things -----------------------------------------------------------------------------------

def test_dynamics_plot_labels_and_never_overwrites_a_foreign_file(tmp_path):
    from mstar_data.errors import MstarError
    from mstar_data.loop.dynamics_plot import plot_dynamics, written_by_us

    rows = [{"iteration": i, "greedy_acc": 0.3 + i / 10, "pass_at_k": 0.5, "k": 4, "reward_pass_at_2": None,
             "temperature": 1.0} for i in range(3)]
    out = plot_dynamics(rows, tmp_path / "d.png", "t")
    assert written_by_us(out)
    plot_dynamics(rows, out, "t again")  # its own plot: replaced
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"not a plot")
    with pytest.raises(MstarError, match="left alone"):
        plot_dynamics(rows, mine, "t")
    assert mine.read_bytes() == b"not a plot"


def test_progress_in_a_log_file_shows_the_real_totals(capsys):
    from mstar_cli.progress import ProgressBars

    with ProgressBars() as p:  # captured output is not a terminal
        for done in range(0, 11):
            p("generate explore it0", done, 10, "1.0 rollouts/s")
    out = capsys.readouterr().out
    assert "generate explore it0: 10/10" in out and out.count("generate explore it0") <= 5


def test_generate_selecting_nothing_exits_non_zero(cli, small_store, tmp_path):
    from mstar_data.models.tiny import build_tiny_policy

    policy = tmp_path / "policy"
    build_tiny_policy(policy)
    r = cli("generate", "--policy", policy, "--shard", "5/6", "--limit", "3", "--n", "1", "--store", small_store)
    _one_line_error(r, "matched no queries")
    assert "select * from dynamics" in r.out  # where to look next
