"""The package as a user installs it: a wheel built from the repository, installed with
`pip install --no-deps` into a fresh venv (that reuses this venv's dependencies), then
`coderl` run from a directory outside the repository, so nothing can come from the checkout:
`--help`, a 2-step `finetune` with the shipped experiment gin file, and `execute` on the
shipped MBPP copy (`--data packaged`).
"""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from training_utils import TINY_MODEL, make_problems, make_tokenizer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin dir of a venv holding only the wheel, a work dir outside the repository)."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    # --no-build-isolation: the build uses this venv's setuptools (CI has no index cache).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "-w", str(wheels), str(REPO_ROOT)], cwd=root, env=os.environ)
    wheel, = wheels.glob("coderl_jax-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=os.environ)
    site = next((venv / "lib").glob("python*/site-packages"))
    # The test venv's site-packages as a path entry (its own .pth files, among them the
    # editable install's finder for the checkout, are not processed from there).
    (site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--no-deps", "--no-index", str(wheel)], cwd=root, env=os.environ)
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return wheel, venv / "bin", work, env


def test_wheel_holds_every_subpackage_and_data(installed):
    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for sub in ("models", "data", "sandbox", "training", "rl", "train", "eval"):
        assert f"coderl_jax/{sub}/__init__.py" in names, sub
    for gin in ("experiments/demo_cpu.gin", "runs/trainer.gin", "runs/rl.gin",
                "models/demo_cpu.gin"):
        assert f"coderl_jax/gin_configs/{gin}" in names, gin
    for data in ("mbpp/mbpp.jsonl", "mbpp/sanitized-mbpp.json", "mbpp/LICENSE.md",
                 "apps/train.jsonl", "apps/test_example_tests.jsonl", "apps/LICENSE.md",
                 "README.md"):
        assert f"coderl_jax/data/benchmarks/{data}" in names, data


def test_installed_coderl_runs_outside_the_repository(installed):
    _, bin_dir, work, env = installed
    python = str(bin_dir / "python")
    where = _run([python, "-c", "import coderl_jax, coderl_jax.train.finetune as f; "
                  "print(coderl_jax.__file__); print(f.__file__)"], cwd=work, env=env).stdout
    assert str(REPO_ROOT) not in where and "site-packages" in where, where

    assert "finetune" in _run([str(bin_dir / "coderl"), "--help"], cwd=work, env=env).stdout

    data, problems = make_problems(work, n=8)
    tok = make_tokenizer(work, problems)
    _run([str(bin_dir / "coderl"), "finetune", "--workdir", "ft", "--dataset", "synthetic",
          "--data", str(data), "--tokenizer", str(tok),
          "--gin_file", "experiments/demo_cpu.gin", *TINY_MODEL, "--gin.TRAIN_STEPS=2",
          "--gin.BATCH_SIZE=4", "--gin.MAX_SOURCE_LENGTH=256", "--gin.MAX_TARGET_LENGTH=96",
          "--gin.PROGRESS=False", "--gin.finetune.eval_problems=0"], cwd=work, env=env)
    assert (work / "ft" / "model").is_dir()
    assert [json.loads(x)["step"] for x in (work / "ft" / "metrics.jsonl").read_text()
            .splitlines()][-1] == 2

    samples = work / "samples.jsonl"
    references = {}
    with open(REPO_ROOT / "coderl_jax" / "data" / "benchmarks" / "mbpp" / "mbpp.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record["task_id"] in (2, 3):
                references[record["task_id"]] = record["code"]
    samples.write_text(json.dumps({"task_id": 2, "code": references[2]}) + "\n"
                       + json.dumps({"task_id": 3, "code": "def f(:"}) + "\n")
    _run([str(bin_dir / "coderl"), "execute", "--dataset", "mbpp", "--data", "packaged",
          "--samples", str(samples), "--out", "results.jsonl", "--workers", "2",
          "--no-progress"], cwd=work, env=env)
    results = [json.loads(x) for x in (work / "results.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in results] == ["PassedTest", "CompileError"]
