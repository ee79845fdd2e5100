"""The `coderl` CLI: dispatch, and fast start-up (no JAX for --help, execute, evaluate, and
not for `generate --help`: JAX loads only when it samples)."""

import subprocess
import sys

import pytest

from coderl_jax import cli

HEAVY = ("jax", "flax", "transformers", "torch", "tensorflow")


def _modules_loaded_by(argv: list[str]) -> set[str]:
    """Runs the CLI in a fresh interpreter and returns the heavy modules it imported."""
    code = (
        "import sys\n"
        "from coderl_jax.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    heavy = out[out.rindex("HEAVY:") + len("HEAVY:"):].strip()
    return set(filter(None, heavy.split(",")))


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["execute", "--help"], ["evaluate", "--help"], ["generate", "--help"]],
    ids=["top-level", "execute", "evaluate", "generate-help"],
)
def test_fast_commands_do_not_import_heavy_libraries(argv):
    assert _modules_loaded_by(argv) == set()


def test_every_command_builds_its_parser():
    for name in cli.COMMANDS:
        parser = cli.build_parser([name])
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--help"])
        assert exc.value.code == 0


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
