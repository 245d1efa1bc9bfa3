"""``rnnkit bench --user-cells``: the built-in cells through the Python-step
path (rows ``rnnkit-step``) beside the fused rows, checked for agreement with
them before being timed. Timing itself is never asserted (CI machines are noisy)."""

from __future__ import annotations

import json

import pytest

from rnnkit import bench
from rnnkit.bench import _cli


def test_user_cell_rows_run_beside_the_fused_rows_and_agree(tmp_path, capsys):
    path = tmp_path / "bench.json"
    argv = ["--grid", "5x2x8,3x1x3x5", "--threads", "1", "--repeat", "1", "--min-time", "0",
            "--ceiling", "none", "--no-progress", "--peers", "none", "--backend", "native",
            "--user-cells", "--json", str(path)]
    rc = bench.main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "rnnkit-step" in out and "MISMATCH" not in out
    results = json.loads(path.read_text())["results"]
    step = [r for r in results if r["impl"] == "rnnkit-step"]
    cells = {r["cell"] for r in step}
    assert cells == set(bench.CELLS)
    modes = {r["mode"] for r in step}
    assert {"inference", "training", "training-forward", "training-backward"} <= modes
    for r in step:
        assert r["agrees"] is True, r
        assert r["ms"] is not None and r["ms"] > 0


def test_user_cells_is_off_by_default():
    args = _cli.build_parser().parse_args([])
    assert args.user_cells is False
    with pytest.raises(SystemExit):
        _cli.build_parser().parse_args(["--user-cells=yes"])
