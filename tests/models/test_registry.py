import pytest
import torch

from imaging.errors import ModelError
from models.registry import available_models, install_model, load_card, load_model
from tests.models.test_card import make_card


@pytest.fixture
def installed(tmp_path):
    card = make_card(name="tiny", architecture={"channels": [2, 4], "strides": [2],
                                                "out_channels": 4})
    from models.registry import build_network
    net = build_network(card)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return install_model(card, net.state_dict(), tmp_path), net, tmp_path


def test_registry_lists_and_loads_installed_model(installed):
    card, net, folder = installed
    assert available_models(folder) == ("tiny",)
    assert load_card("tiny", folder) == card
    loaded = load_model("tiny", torch.device("cpu"), folder)
    assert not loaded.network.training
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(loaded.network(x), net.eval()(x))


def test_wrong_sha256_is_refused(installed):
    card, _, folder = installed
    path = folder / card.weights_file
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load_model("tiny", "cpu", folder)


def test_missing_weights_and_unknown_model(installed):
    card, _, folder = installed
    (folder / card.weights_file).unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model("tiny", "cpu", folder)
    with pytest.raises(ModelError, match=r"installed models: \['tiny'\]"):
        load_card("nope", folder)


def test_shipped_models_load_when_installed():
    for name in available_models():
        loaded = load_model(name, "cpu")
        assert loaded.card.name == name
