"""The topic and payload parsers under coverage-guided fuzzing (atheris, libFuzzer), bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TARGET = Path(__file__).with_name("atheris_protocol.py")
RUNS = 200_000


def test_protocol_parsers_survive_coverage_guided_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    subprocess.run(
        [sys.executable, str(TARGET), "--write-seeds", str(corpus)], check=True, timeout=60
    )
    seeds = len(list(corpus.iterdir()))
    done = subprocess.run(
        [sys.executable, str(TARGET), f"-runs={RUNS}", "-seed=20261126",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0, f"{crashes}\n{done.stderr[-4000:]}"
    assert f"Done {RUNS} runs" in done.stderr
    assert not crashes
    # The fuzzer found inputs that reach paths the well-formed seeds do not.
    assert len(list(corpus.iterdir())) > seeds
