from pathlib import Path

import pytest

from harness.config import TaskConfig, config_reference, load_task_config
from harness.errors import ConfigError
from tests.conftest import ROOT, write_task

DATA = '{"instruction": "Say hi", "output": "hi"}\n'


def load(tmp_path: Path, yaml_text: str) -> TaskConfig:
    folder = write_task(tmp_path / "t", yaml_text, {"train.jsonl": DATA, "test.jsonl": DATA, "all.jsonl": DATA})
    return load_task_config(folder / "task.yaml")


def test_defaults_fill_every_key_not_given(tmp_path):
    cfg = load(tmp_path, "data:\n  file: all.jsonl\n")
    assert cfg.name == "t"  # folder name
    assert cfg.finetune.lora_r == 16 and cfg.finetune.lora_alpha == 32 and cfg.finetune.epochs == 3
    assert cfg.finetune.learning_rate == pytest.approx(2e-4) and cfg.finetune.batch_size == 4
    assert cfg.strategies == ["prompt", "rag", "finetune"]
    assert cfg.data.test_fraction == 0.2


@pytest.mark.parametrize("yaml_text, line, fragment", [
    ("data:\n  file: all.jsonl\nmodle: x\n", 3, "field 'modle': unknown key"),
    ("data:\n  file: all.jsonl\nprompt:\n  k_shots: 2\n", 4, "field 'prompt.k_shots': unknown key"),
    ("data:\n  file: all.jsonl\nprompt:\n  k_shot: two\n", 4, "field 'prompt.k_shot': expected int"),
    ("data:\n  file: all.jsonl\nfinetune:\n  lora_dropout: 1.5\n", 4, "field 'finetune.lora_dropout': 1.5 is above"),
    ("data:\n  file: all.jsonl\nscorer: bleu\n", 3, "field 'scorer': 'bleu' is not one of"),
    ("data:\n  file: all.jsonl\nstrategies: [prompt, lora]\n", 3, "field 'strategies': 'lora' is not one of"),
    ("data:\n  file: all.jsonl\ndata_x: 1\n", 3, "unknown key"),
    ("data:\n  file: missing.jsonl\n", 2, "field 'data.file': file not found"),
    ("data:\n  file: all.jsonl\n  train: train.jsonl\n", 2, "field 'data.file': give either"),
    ("data:\n  train: train.jsonl\n", 1, "field 'data': needs `file`"),
    ("data:\n  file: all.jsonl\ngeneration:\n  stop: \"\\n\"\n", 4, "field 'generation.stop': expected a list"),
    ("data: [1, 2\n", 2, "invalid YAML"),
])
def test_bad_config_names_file_line_and_field(tmp_path, yaml_text, line, fragment):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, yaml_text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 't' / 'task.yaml'}:{line}: ")
    assert fragment in message
    assert "\n" not in message


def test_every_shipped_task_config_loads():
    configs = sorted((ROOT / "tasks").glob("*/task.yaml"))
    assert len(configs) >= 2
    for path in configs:
        cfg = load_task_config(path)
        assert cfg.name == path.parent.name


def test_readme_documents_every_key():
    readme = (ROOT / "README.md").read_text()
    missing = [key for key, _, _ in config_reference() if f"`{key}`" not in readme]
    assert not missing, f"README lacks {missing}; paste the output of `python -m harness keys`"
