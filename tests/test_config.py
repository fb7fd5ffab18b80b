import pytest

from harness.compiler import KERNEL_FORMATS
from harness.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_default_config_ships_and_loads():
    config = load_config("configs/digits.toml")
    assert config.targets == (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    assert config.kernels[0] == "dense" and config.kernels[-1] == "auto"
    assert set(config.kernels) <= set(KERNEL_FORMATS) | {"auto"}
    assert config.flash_budget == 0
    assert config.boards == ("mps2_an386",)


def test_overrides_replace_file_values(tmp_path):
    config = load_config(write(tmp_path, "[sweep]\ntargets = [0.5]\n"), targets=(0.0, 0.9), boards=None)
    assert config.targets == (0.0, 0.9)
    assert config.boards == ("mps2_an386",)


@pytest.mark.parametrize("text, message", [
    ("[sweep]\ntargetz = [0.5]\n", "unknown key 'targetz' (did you mean 'targets'?)"),
    ("[devices]\nruns = 3\n", "unknown table [devices] (did you mean 'device'?)"),
    ("[device]\nrunz = 3\n", "[device]: unknown key 'runz'"),
    ("[device]\nruns = 'many'\n", "'runs' must be int"),
    ("[sweep]\ntargets = [0.5, 1.0]\n", "sparsity target 1.0 is outside [0, 1)"),
    ("[sweep]\ntargets = [-0.1]\n", "outside [0, 1)"),
    ("[sweep]\nkernels = ['cssr']\n", "unknown kernel 'cssr' (did you mean 'csr'?)"),
    ("[sweep]\nboards = ['mps2_an368']\n", "unknown board 'mps2_an368' (did you mean 'mps2_an386'?)"),
    ("[sweep\n", "not valid TOML"),
    ("[sweep]\nkernels = ['atuo']\n", "unknown kernel 'atuo' (did you mean 'auto'?)"),
    ("[sweep]\nflash_budjet = 4096\n", "unknown key 'flash_budjet' (did you mean 'flash_budget'?)"),
    ("[sweep]\nflash_budget = '4 KiB'\n", "'flash_budget' must be int"),
    ("[sweep]\nkernels = ['auto']\nflash_budget = -1\n", "'flash_budget' must be at least 0"),
    ("[sweep]\nkernels = ['dense', 'csr']\nflash_budget = 4096\n", "'flash_budget' applies to the auto kernel only"),
    ("[farm]\npoints_per_turn = 0\n", "[farm]: 'points_per_turn' must be at least 1"),
    ("[farm]\nadress = 'lab:20408'\n", "[farm]: unknown key 'adress' (did you mean 'address'?)"),
])
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    if "board" not in message:
        assert str(path) in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: no such config file"):
        load_config(tmp_path / "nothere.toml")


def test_every_weight_format_and_auto_are_kernels(tmp_path):
    kernels = [*KERNEL_FORMATS, "auto"]
    config = load_config(write(tmp_path, f"[sweep]\nkernels = {kernels}\nflash_budget = 4096\n"))
    assert config.kernels == tuple(kernels) and config.flash_budget == 4096
