"""show_config and CPU feature detection (cpuid + XCR0 in rnnkit._core)."""

import io
import platform
import re
from pathlib import Path

import pytest

import rnnkit


def _proc_cpuinfo_flags():
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_show_config_prints_version_compiler_features_threads():
    buf = io.StringIO()
    rnnkit.show_config(file=buf)
    text = buf.getvalue()
    assert re.search(r"^rnnkit\s+: " + re.escape(rnnkit.__version__) + "$", text, re.M), text
    assert re.search(r"^compiler\s+: \S+", text, re.M), text
    assert re.search(r"^cpu_features\s+: ", text, re.M), text
    assert re.search(r"^num_threads\s+: [1-9]\d*$", text, re.M), text
    assert re.search(r"^isa_available\s+: .*scalar", text, re.M), text


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="cpuid is x86-only")
def test_cpu_features_agree_with_the_kernel():
    # Linux lists a flag in /proc/cpuinfo only when the CPU has it and the
    # kernel enables it, which is what cpuid + XCR0 must also conclude.
    flags = _proc_cpuinfo_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this system")
    feats = rnnkit.cpu_features()
    assert feats["x86_64"] and feats["sse2"]
    for ours, linux in [("avx", "avx"), ("fma", "fma"), ("avx2", "avx2"),
                        ("avx512f", "avx512f"), ("avx512bw", "avx512bw"),
                        ("avx512vl", "avx512vl"), ("avx512dq", "avx512dq")]:
        assert feats[ours] == (linux in flags), f"{ours}: cpuid+xcr0 says {feats[ours]}, " \
                                                f"/proc/cpuinfo says {linux in flags}"


def test_isa_levels_nest():
    from rnnkit import _core

    feats = rnnkit.cpu_features()
    assert _core.has_avx2_fma() == (feats["avx"] and feats["avx2"] and feats["fma"])
    if _core.has_avx512():
        assert _core.has_avx2_fma()
        assert feats["os_saves_zmm"]
