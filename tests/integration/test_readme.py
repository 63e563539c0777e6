"""The README's first example runs as printed, and cannot lose its event even when the
run reaches its wait late (a slow first step)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def first_example() -> str:
    text = README.read_text()
    section = text.split("## A first workflow", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's first example"
    return match.group(1)


@pytest.mark.parametrize("slow_first_step", [False, True])
def test_the_first_example_runs_and_keeps_its_event(
    slow_first_step: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = first_example()
    if slow_first_step:  # the decision is sent long before the run waits for it
        code = code.replace(
            '    return ctx.required_param("document_id")',
            '    import time; time.sleep(0.3)\n    return ctx.required_param("document_id")',
        )
        assert "time.sleep(0.3)" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "value='approved-by:alice'" in printed
    assert "value='receipt-ch_1'" in printed
