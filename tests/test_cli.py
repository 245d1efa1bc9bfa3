"""The ``rnnkit`` command line: main([...]) in process for each command and each
kind of bad input (a one-line error, never a traceback), and the installed
console script once, in a subprocess."""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from rnnkit.__main__ import main
from rnnkit.text import CharModel

CORPUS = "def add(a, b):\n    return a + b\n\n" * 60  # 1,980 characters

SMALL = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "10", "--batch", "4"]


def run(argv, capsys):
    """main(argv) -> (exit status, stdout, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc, err, message):
    assert rc not in (0, None), "expected a failure"
    assert message in err, err
    assert "Traceback" not in err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def test_train_text_then_sample(corpus, tmp_path, capsys):
    out_path = tmp_path / "m.npz"
    rc, out, err = run(
        [
            "train-text",
            str(corpus),
            *SMALL,
            "--steps",
            "12",
            "--out",
            str(out_path),
            "--sample-length",
            "20",
            "--no-progress",
        ],
        capsys,
    )
    assert rc == 0, err
    assert "unigram entropy of the corpus:" in out
    assert "validation loss:" in out and "nats/char" in out
    assert f"saved {out_path}" in out
    assert "--- sample at step" in out
    # the final sample's prime is the start of one of the corpus's lines
    assert re.search(r"--- sample \(temperature 0\.8\) ---\n(def |    return )", out), out
    assert "step 12/12  loss" in out  # plain progress lines
    model = CharModel.load(out_path)
    assert model.steps_trained == 12 and model.hidden_size == 8
    rc, out, err = run(
        ["sample", str(out_path), "--prime", "def ", "--length", "30", "--seed", "1"], capsys
    )
    assert rc == 0 and out.startswith("def ") and len(out) == len("def ") + 30 + 1


def test_train_text_progress_bar_and_plain_fallback(corpus, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    argv = [
        "train-text",
        str(corpus),
        *SMALL,
        "--steps",
        "3",
        "--out",
        str(tmp_path / "m.npz"),
        "--sample-length",
        "0",
    ]
    rc, out, err = run(argv, capsys)
    assert rc == 0 and "3/3" in err and "chars/s=" in err and "val=" in err  # tqdm on stderr
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    rc, out, err = run(argv, capsys)
    assert rc == 0 and "step 3/3  loss" in out and "chars/s" in out and err == ""


def test_train_text_with_a_time_budget(corpus, tmp_path, capsys):
    rc, out, err = run(
        [
            "train-text",
            str(corpus),
            *SMALL,
            "--minutes",
            "0.002",
            "--no-progress",
            "--sample-length",
            "0",
            "--out",
            str(tmp_path / "m.npz"),
        ],
        capsys,
    )
    assert rc == 0, err
    assert "budget: 0.002 minutes" in out and "validation loss:" in out


def make(name, data):
    def setup(d):
        (d / name).write_bytes(data)
        return d / name

    return setup


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: d / "missing.txt", "no such file"),
        (make("empty.txt", b""), "is empty"),
        (
            make("latin1.txt", "naïve café".encode("latin-1")),
            "is not UTF-8 text: byte 0xef at offset 2",
        ),
        (lambda d: d, "is a directory"),
        (make("short.txt", b"hello world"), "lower --batch or --seq-len"),
    ],
)
def test_train_text_bad_files(tmp_path, capsys, setup, message):
    path = setup(tmp_path)
    rc, out, err = run(["train-text", str(path), "--out", str(tmp_path / "m.npz")], capsys)
    assert_clean_error(rc, err, message)
    assert err.startswith("rnnkit train-text: error:")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-text", "--hidden", "0"], "expected a positive integer, got '0'"),
        (["train-text", "--steps", "5", "--minutes", "1"], "not allowed with argument"),
        (["train-text", "--cell", "lstmx"], "invalid choice: 'lstmx'"),
        (["train-text", "--dropout", "1.5"], "expected a fraction in [0, 1)"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_usage(capsys, argv, message):
    rc, out, err = run(argv, capsys)
    assert rc == 2
    assert_clean_error(rc, err, message)


def test_sample_bad_checkpoints_and_prime(tmp_path, capsys):
    rc, _, err = run(["sample", str(tmp_path / "none.npz")], capsys)
    assert_clean_error(rc, err, "no such checkpoint")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 garbage")
    rc, _, err = run(["sample", str(tmp_path / "bad.npz")], capsys)
    assert_clean_error(rc, err, "is not a valid rnnkit checkpoint")
    CharModel(hidden_size=4, num_layers=1, embedding_dim=2, vocab="ab").save(tmp_path / "ab.npz")
    rc, _, err = run(["sample", str(tmp_path / "ab.npz"), "--prime", "abc"], capsys)
    assert_clean_error(rc, err, "first 'c' at position 2")
    rc, out, _ = run(
        ["sample", str(tmp_path / "ab.npz"), "--length", "5", "--temperature", "0"], capsys
    )
    assert rc == 0 and set(out.strip()) <= set("ab") and len(out) == 6


def test_info_prints_the_configuration(capsys):
    import rnnkit

    rc, out, _ = run(["info"], capsys)
    assert rc == 0 and rnnkit.__version__ in out and "isa_available" in out


def test_bench_dispatches_to_rnnkit_bench_or_says_it_is_missing(capsys, monkeypatch):
    got = []
    fake = types.ModuleType("rnnkit.bench")
    fake.main = lambda argv: got.append(argv) or 0
    monkeypatch.setitem(sys.modules, "rnnkit.bench", fake)
    assert main(["bench", "--cells", "lstm", "--help"]) == 0
    assert got == [["--cells", "lstm", "--help"]]
    monkeypatch.setitem(sys.modules, "rnnkit.bench", None)  # importing it now fails
    rc, _, err = run(["bench"], capsys)
    assert_clean_error(
        rc, err, "rnnkit bench: error: the benchmark harness (rnnkit.bench) is not part"
    )


def test_bench_reports_a_missing_dependency_of_rnnkit_bench(capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a, **kw):
        if name == "rnnkit.bench":
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    rc, _, err = run(["bench", "--plot"], capsys)
    assert_clean_error(
        rc,
        err,
        "needs the module 'matplotlib', which is not installed; pip install 'rnnkit[bench]'",
    )


def test_console_script_in_a_subprocess(tmp_path):
    script = Path(sys.executable).with_name("rnnkit")
    assert script.exists(), f"the rnnkit console script is not installed next to {sys.executable}"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run(
        [str(script), "train-text", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        == f"rnnkit train-text: error: no such file: '{tmp_path / 'missing.txt'}'"
    )
    assert res.stdout == ""


def test_default_corpus_is_used_without_a_file(tmp_path, capsys):
    """No FILE: the standard-library sources of this interpreter (one tiny step)."""
    from rnnkit.data import default_corpus, unigram_entropy

    text = default_corpus()
    rc, out, err = run(
        [
            "train-text",
            *SMALL,
            "--steps",
            "1",
            "--no-progress",
            "--sample-length",
            "0",
            "--out",
            str(tmp_path / "m.npz"),
        ],
        capsys,
    )
    assert rc == 0, err
    assert (
        f"corpus: the default corpus (Python standard-library sources): {len(text):,} characters"
        in out
    )
    assert f"unigram entropy of the corpus: {unigram_entropy(text):.3f} nats/char" in out
    assert CharModel.load(tmp_path / "m.npz").vocab == "".join(sorted(set(text)))


# --- found in review -----------------------------------------------------------------


def _spoiled_checkpoint(tmp_path, header_update=None, config_update=None):
    """A valid tiny checkpoint with its JSON header edited."""
    import json

    import numpy as np

    path = tmp_path / "ok.npz"
    CharModel(hidden_size=4, num_layers=1, embedding_dim=2, vocab="ab").save(path)
    data = dict(np.load(path))
    header = json.loads(data["header"].tobytes())
    header.update(header_update or {})
    header["config"].update(config_update or {})
    data["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    return str(bad)


@pytest.mark.parametrize(
    "header, config, message",
    [
        ({"steps_trained": "abc"}, None, "'steps_trained' must be an integer >= 0, got 'abc'"),
        ({"steps_trained": -5}, None, "'steps_trained' must be an integer >= 0"),
        # Each of these made load() allocate the claimed model before comparing
        # it with the stored weights: a memory bomb (PiB here, tens of GB at
        # hidden_size 30000) and a MemoryError traceback.
        (None, {"hidden_size": 10**7}, "needs weight 'rnn.weight_hh_l0' of shape"),
        (None, {"embedding_dim": 10**9}, "needs weight 'embedding.weight' of shape"),
        (None, {"num_layers": 10**6}, "says num_layers 1000000, but the file holds"),
    ],
)
def test_sample_spoiled_checkpoint_headers(tmp_path, capsys, header, config, message):
    rc, _, err = run(["sample", _spoiled_checkpoint(tmp_path, header, config)], capsys)
    assert_clean_error(rc, err, message)
    assert len(err.strip().splitlines()) == 1


def test_sample_length_past_memory_is_one_line(tmp_path, capsys):
    CharModel(hidden_size=4, num_layers=1, embedding_dim=2, vocab="ab").save(tmp_path / "ab.npz")
    rc, _, err = run(["sample", str(tmp_path / "ab.npz"), "--length", str(10**20)], capsys)
    assert_clean_error(rc, err, "length must fit in memory")


def test_train_text_sizes_past_memory_are_one_line(corpus, tmp_path, capsys, monkeypatch):
    argv = ["train-text", str(corpus), *SMALL, "--steps", "1", "--no-progress"]
    argv += ["--sample-length", "0", "--out", str(tmp_path / "m.npz")]
    rc, _, err = run([*argv, "--hidden", str(10**20)], capsys)  # a ValueError from the layers
    assert_clean_error(rc, err, "more than memory can hold")

    def no_memory(*args, **kwargs):  # sizes that pass the checks but not the RAM
        raise MemoryError("Unable to allocate 12.8 GiB")

    monkeypatch.setattr(CharModel, "fit", no_memory)
    rc, _, err = run(argv, capsys)
    assert_clean_error(rc, err, "out of memory (Unable to allocate 12.8 GiB)")


def test_output_the_terminal_cannot_encode_is_escaped(tmp_path):
    # PYTHONIOENCODING=ascii (or an ASCII locale): printing a sample with 'é'
    # raised UnicodeEncodeError with a traceback.
    CharModel(hidden_size=4, num_layers=1, embedding_dim=2, vocab="é€").save(tmp_path / "u.npz")
    env = dict(os.environ, PYTHONIOENCODING="ascii", PYTHONWARNINGS="ignore")
    res = subprocess.run(
        [sys.executable, "-m", "rnnkit", "sample", str(tmp_path / "u.npz"), "--length", "8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "\\xe9" in res.stdout or "\\u20ac" in res.stdout
