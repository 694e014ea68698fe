"""The README's two set-up commands: CI runs the second verbatim."""

from pathlib import Path
import re

REPO = Path(__file__).resolve().parent.parent


def _readme_commands():
    text = (REPO / "README.md").read_text()
    head = text.split("## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", head, flags=re.S)


def test_readme_opens_with_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    assert all("\n" not in c for c in cmds)
    assert "fermixr run examples/" in cmds[0] and "pip install" in cmds[0]
    assert "pytest" in cmds[1] and "pip install" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_example_recipe_exists():
    cmd = _readme_commands()[0]
    recipe = re.search(r"fermixr run (\S+)", cmd).group(1)
    assert (REPO / recipe).is_file()
