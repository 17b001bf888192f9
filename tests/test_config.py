"""cece.show_config(): the printed report (OpenMP and SIMD lines) and mode="dicts", consistent
with cece._core.build_info(); the CECE_SIMD environment variable that forces a level."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cece

KEYS = {"version", "compiler", "openmp", "threads", "simd_compiled", "simd_supported",
        "simd_selected", "python", "numpy"}
LEVELS = ("baseline", "avx2", "avx512")


def test_dicts_keys_and_values():
    config = cece.show_config(mode="dicts")
    assert isinstance(config, dict)
    assert set(config) == KEYS
    info = cece._core.build_info()
    assert config["version"] == cece.__version__
    assert config["openmp"] is info["openmp"] and isinstance(config["openmp"], bool)
    assert isinstance(config["threads"], int) and config["threads"] >= 1
    assert config["simd_compiled"] == info["simd_compiled"]
    assert config["simd_supported"] == info["simd_supported"]
    assert config["simd_selected"] == info["simd_selected"]
    assert config["numpy"] == np.__version__
    assert config["python"] == sys.version.split()[0]
    assert "baseline" in config["simd_compiled"] and "baseline" in config["simd_supported"]
    assert set(config["simd_supported"]) <= set(config["simd_compiled"]) <= set(LEVELS)
    assert config["simd_selected"] in config["simd_supported"]
    assert isinstance(config["compiler"], str) and config["compiler"]


def test_stdout_report(capsys):
    assert cece.show_config() is None
    assert cece.show_config(mode="stdout") is None
    text = capsys.readouterr().out
    report = text[: len(text) // 2]
    config = cece.show_config(mode="dicts")
    lines = report.splitlines()
    assert lines[0] == f"cece {config['version']}"

    def line(label):
        found = [ln for ln in lines if ln.strip().startswith(label)]
        assert len(found) == 1, (label, report)
        return found[0].split(":", 1)[1].strip()

    assert line("OpenMP") == ("yes" if config["openmp"] else "no")
    assert line("SIMD compiled").split() == config["simd_compiled"]
    assert line("SIMD supported").split() == config["simd_supported"]
    assert line("SIMD selected") == config["simd_selected"]
    assert line("threads").startswith(str(config["threads"]))
    assert config["compiler"] in report and config["numpy"] in report


def test_report_follows_the_selected_level(simd_level, capsys):
    assert cece.show_config(mode="dicts")["simd_selected"] == simd_level
    cece.show_config()
    assert f"SIMD selected:  {simd_level}" in capsys.readouterr().out


def _import_in_child(env_value, cwd):
    """Import the very cece under test in a fresh interpreter (run from an empty directory,
    with cece's parent directory first on the path) and return its config and warnings."""
    env = dict(os.environ)
    env.pop("CECE_SIMD", None)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(cece.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    if env_value is not None:
        env["CECE_SIMD"] = env_value
    code = ("import json, warnings; warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    import cece\n"
            "print(json.dumps([cece.show_config(mode='dicts'), [str(x.message) for x in w]]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stderr
    config, warned = json.loads(out.stdout.strip().splitlines()[-1])
    assert config["version"] == cece.__version__
    return config, warned


def test_environment_forces_a_level(tmp_path):
    supported = cece._core.build_info()["simd_supported"]
    default, warned = _import_in_child(None, tmp_path)
    assert default["simd_selected"] == supported[-1]  # the best level this CPU runs
    assert not warned
    for level in supported:
        config, warned = _import_in_child(level.upper(), tmp_path)
        assert config["simd_selected"] == level and not warned


def test_environment_with_an_unusable_level_warns(tmp_path):
    supported = cece._core.build_info()["simd_supported"]
    compiled = cece._core.build_info()["simd_compiled"]
    for bogus in ["sse9"] + [lv for lv in compiled if lv not in supported]:
        config, warned = _import_in_child(bogus, tmp_path)
        assert config["simd_selected"] == supported[-1]
        assert any("CECE_SIMD" in message and bogus in message for message in warned), warned


@pytest.mark.parametrize("mode", ["json", "", None, "DICTS"])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match="mode"):
        cece.show_config(mode=mode)
