"""The digits generator: a VAE decoder trained deterministically and cached by recipe (a tiny
recipe here, so the test trains in about a second)."""
import torch

from cnn_widgets.zoo import cache, generator
from cnn_widgets.zoo.digits import digits


def test_training_is_deterministic():
    x = digits().x_train[:128]
    a, la = generator.train_vae(x, code_dim=4, epochs=1, batch_size=64, lr=2e-3, seed=5)
    b, lb = generator.train_vae(x, code_dim=4, epochs=1, batch_size=64, lr=2e-3, seed=5)
    c, _ = generator.train_vae(x, code_dim=4, epochs=1, batch_size=64, lr=2e-3, seed=6)
    assert la == lb
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_digits_generator_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(generator, "RECIPE", {"code_dim": 4, "epochs": 1, "batch_size": 256,
                                              "lr": 2e-3, "seed": 0})
    g1 = generator.digits_generator()
    assert not g1.model_card["from_cache"] and g1.code_dim == 4
    assert list(tmp_path.glob("digits-vae-*.pt"))
    g2 = generator.digits_generator()
    assert g2.model_card["from_cache"] and not g2.training
    for k, v in g1.state_dict().items():
        assert torch.equal(v, g2.state_dict()[k]), k
    with torch.no_grad():
        out = g2(torch.randn(5, 4))
    assert out.shape == (5, 1, 28, 28) and 0 <= float(out.min()) and float(out.max()) <= 1
    monkeypatch.setattr(generator, "RECIPE", {**generator.RECIPE, "seed": 1})
    assert not generator.digits_generator().model_card["from_cache"]   # new recipe, new file
