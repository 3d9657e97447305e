"""The README's Python snippets run, in order, as written: offline on the tiny model, and against the
real vLLM server of the test session for the adapter snippets."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys, vllm_server, vllm_llm):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 7
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VLLM_URL", vllm_server)
    monkeypatch.setenv("VLLM_MODEL", "tiny-smolvlm")
    namespace: dict = {"llm": vllm_llm}  # the README's commented-out engine
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert "torch.Size([1, 3])" in capsys.readouterr().out
    assert namespace["decision"].resolution in (384, 512, "full")
    assert namespace["reply"].usage.prompt_tokens > 0 and namespace["result"].response.usage.prompt_tokens > 0
    assert [r.usage.prompt_tokens for r in namespace["responses"]][0] < namespace["responses"][1].usage.prompt_tokens
    assert len(namespace["outputs"][0].prompt_token_ids) > 0
