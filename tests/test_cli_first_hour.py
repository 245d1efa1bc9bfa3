"""The command line as a new user meets it in the first hour: --out checked
before training, --version, bare `rnnkit`, a progress bar without tqdm, the
final validation's progress, sample --help, bench's peers in the top-level
help, a prime from the corpus, labelled chars/s figures and no NumPy pickle
advice. Not the command-by-command suite (test_cli.py)."""

import io
import re

import numpy as np
import pytest

import rnnkit
from rnnkit import __main__ as cli
from rnnkit.__main__ import build_parser, main

CORPUS = "hello world, said the cat\n  and the dog said: woof\n\n" * 40
SMALL = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "10", "--batch", "4"]


def run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "out, message",
    [
        ("no/such/folder/m.npz", "the folder"),
        (".", "is a directory"),
        ("corpus.txt/m.npz", "does not exist"),
    ],
)
def test_out_is_checked_before_training(corpus, tmp_path, capsys, monkeypatch, out, message):
    monkeypatch.chdir(tmp_path)
    trained = []
    monkeypatch.setattr(rnnkit.text.CharModel, "fit", lambda *a, **k: trained.append(1))
    rc, stdout, err = run(["train-text", str(corpus), *SMALL, "--steps", "2", "--out", out], capsys)
    assert rc == 1 and message in err and "Traceback" not in err
    assert not trained and "corpus:" not in stdout  # nothing was read, built or trained


def test_out_that_cannot_be_created_is_refused(corpus, tmp_path, capsys, monkeypatch):
    real_open = open

    def refusing_open(path, *a, **k):
        if "rnnkit-probe" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", refusing_open)
    rc, _, err = run(["train-text", str(corpus), *SMALL, "--out", str(tmp_path / "m.npz")], capsys)
    assert rc == 1 and "cannot write --out" in err and "Permission denied" in err


def test_version_and_bare_command(capsys):
    rc, out, _ = run(["--version"], capsys)
    assert rc == 0 and out.strip() == f"rnnkit {rnnkit.__version__}"
    rc, out, err = run([], capsys)
    assert rc == 0 and out.startswith("usage: rnnkit") and "train-text" in out and not err


def test_top_level_help_names_every_bench_peer(capsys):
    from rnnkit.bench._peers import PEER_NAMES

    rc, out, _ = run(["--help"], capsys)
    assert rc == 0
    for name in PEER_NAMES:
        assert f"({name})" in out, name


def test_sample_help_gives_every_option_a_help_text_and_default():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    sample = sub.choices["sample"]
    for action in sample._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        if action.option_strings:
            assert "default" in action.help, (action.dest, action.help)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_without_tqdm_and_final_validation_progress(
    corpus, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(cli, "_import_tqdm", lambda: None)  # as after `pip install .`
    tty = _Tty()
    monkeypatch.setattr(cli.sys, "stderr", tty)
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the bar is cut to its width
    rc, out, _ = run(
        [
            "train-text",
            str(corpus),
            *SMALL,
            "--steps",
            "6",
            "--out",
            str(tmp_path / "m.npz"),
            "--sample-length",
            "0",
        ],
        capsys,
    )
    assert rc == 0
    bar = tty.getvalue()
    assert "\r" in bar and re.search(r"100% \|#{24}\| 6/6 steps", bar), bar
    assert "train chars/s=" in bar and "final validation" in bar
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli._TextBar(10, "steps", _Tty())
    narrow.set_postfix_str("x" * 100)
    assert max(len(line) for line in narrow.stream.getvalue().split("\r")) <= 39


def test_plain_progress_labels_chars_per_second_and_reports_final_validation(
    corpus, tmp_path, capsys
):
    rc, out, _ = run(
        [
            "train-text",
            str(corpus),
            *SMALL,
            "--steps",
            "4",
            "--out",
            str(tmp_path / "m.npz"),
            "--no-progress",
            "--sample-length",
            "30",
        ],
        capsys,
    )
    assert rc == 0
    assert re.search(r"final validation: [\d,]+/[\d,]+ characters \(100%\)", out), out
    # every throughput figure says which one it is
    for m in re.finditer(r"chars/s", out):
        context = out[max(0, m.start() - 6) : m.end() + 8]
        assert "train chars/s" in context or "chars/s overall" in context, context
    assert "train chars/s (the steps alone)" in out
    assert "chars/s overall (with evaluations and samples)" in out
    # the final sample's prime is the start of one of the corpus's lines, not "def "
    sample = out.split("--- sample (temperature 0.8) ---\n", 1)[1]
    assert sample.startswith("hello ") or sample.startswith("  and "), sample[:20]


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_pickled_checkpoints_give_no_numpy_pickle_advice(tmp_path, capsys, suffix):
    path = tmp_path / f"evil{suffix}"
    obj = np.array([{"a": 1}], dtype=object)
    if suffix == ".npz":
        np.savez(path, header=obj)
    else:
        np.save(path, obj, allow_pickle=True)
    rc, _, err = run(["sample", str(path)], capsys)
    assert rc == 1 and "pickled Python objects" in err
    assert "allow_pickle" not in err and "Traceback" not in err
