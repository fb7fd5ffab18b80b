"""The [prune] table: every key checked, errors name the key (and the nearest known one)."""

import pytest

from harness.config import ConfigError, load_config


def load(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return load_config(path)


def test_prune_keys_load(tmp_path):
    prune = load(
        tmp_path,
        """[prune]
methods = ["global-magnitude/gradual", "taylor/iterative", "magnitude/one-shot/1:4", "magnitude/gradual/filter"]
skip = ["conv1"]
layer_targets = { fc1 = 0.95, conv2 = 0 }
min_weights = 8
round_fraction = 0.3
rewind_epoch = 2
""",
    ).prune
    assert prune.methods[1] == "taylor/iterative" and prune.skip == ("conv1",)
    assert prune.layer_targets == {"fc1": 0.95, "conv2": 0}
    assert (prune.min_weights, prune.round_fraction, prune.rewind_epoch) == (8, 0.3, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("method = 'magnitude'", "unknown key 'method' (did you mean 'methods'?)"),
        (
            "methods = ['magnitude/gradul']",
            "'methods': method 'magnitude/gradul': unknown schedule 'gradul' (did you mean 'gradual'?)",
        ),
        ("methods = []", "'methods' is empty"),
        ("methods = ['random/gradual', 'random/gradual']", "'methods' repeats a method"),
        ("methods = 'magnitude/gradual'", "'methods' must be tuple"),
        ("skip = 'conv1'", "'skip' must be tuple"),
        ("layer_targets = { fc1 = 1.0 }", "'layer_targets': target 1.0 of layer 'fc1' is outside [0, 1)"),
        ("layer_targets = { fc1 = 'most' }", "'layer_targets': target 'most' of layer 'fc1' is outside [0, 1)"),
        ("min_weights = 0", "'min_weights' must be at least 1"),
        ("round_fraction = 1.0", "'round_fraction' 1.0 is outside (0, 1)"),
        ("finetune_epochs = -1", "'finetune_epochs' must be at least 0"),
        ("rewind_epoch = 50", "'rewind_epoch' 50 is after the last dense epoch (40)"),
        ("saliency_batchs = 4", "unknown key 'saliency_batchs' (did you mean 'saliency_batches'?)"),
    ],
)
def test_bad_prune_key_is_named(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"[prune]\n{text}\n")
    assert message in str(err.value) and "[prune]" in str(err.value)
