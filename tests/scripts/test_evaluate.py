import json

import pytest

from imaging.errors import OutputError
from scripts.evaluate import main
from tests.segmentation.conftest import install_tiny_models
from tests.segmentation.conftest import one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture
def models_dir(tmp_path):
    return install_tiny_models(tmp_path / "weights", training={"phantom_train_seeds": [1000, 1001]})


def args(out, models_dir, *extra):
    return ["--out", str(out), "--models-dir", str(models_dir), "--model", "tiny-seg",
            "--locator", "tiny-loc", "--device", "cpu", *extra]


def test_nothing_to_evaluate_is_a_parser_error(tmp_path, models_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(args(tmp_path / "r.json", models_dir, "--phantoms", "0"))
    assert exit_info.value.code == 2


def test_one_phantom_gives_a_table_and_json(tmp_path, models_dir, capsys):
    out = tmp_path / "results.json"
    assert main(args(out, models_dir, "--phantoms", "1", "--sessions", "1")) == 0
    results = json.loads(out.read_text())
    assert {row["method"] for row in results["summary"]} == {"model", "baseline"}
    assert results["settings"]["phantom_seeds"] == [10_000]
    assert "false graft (model)" in capsys.readouterr().out
    with pytest.raises(OutputError, match="--force"):
        main(args(out, models_dir, "--phantoms", "1", "--sessions", "1"))


def test_training_seeds_are_refused(tmp_path, models_dir):
    from imaging.errors import ModelError
    with pytest.raises(ModelError, match="used to train"):
        main(args(tmp_path / "r.json", models_dir, "--phantoms", "2", "--seed", "1000"))
