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


@pytest.mark.parametrize(
    "text, overrides, name",
    [
        ('[sweep]\nmodel = "ic_resnet8"\n', {}, "ic_resnet8"),  # was "digits-cnn", whatever the model
        ('[sweep]\nmodel = "ic_resnet8"\nname = "mine"\n', {}, "mine"),
        ('[sweep]\nmodel = "ic_resnet8"\n', {"model": "/data/kws ref.tflite"}, "kws-ref"),
        ('[sweep]\nmodel = "ic_resnet8"\n', {"name": "given"}, "given"),
        ("[sweep]\ntargets = [0.5]\n", {}, "digits-cnn"),  # the default model's run keeps its name
    ],
)
def test_a_run_without_a_name_is_named_after_its_model(tmp_path, text, overrides, name):
    assert load_config(write(tmp_path, text), **overrides).name == name


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sweep]\ntargetz = [0.5]\n", "unknown key 'targetz' (did you mean 'targets'?)"),
        ("[devices]\nruns = 3\n", "unknown table [devices] (did you mean 'device'?)"),
        ("[device]\nrunz = 3\n", "[device]: unknown key 'runz'"),
        ("[device]\nruns = 'many'\n", "'runs' must be int"),
        ("[sweep]\ntargets = [0.5, 1.0]\n", "[sweep]: 'targets' 1.0 is outside [0, 1)"),
        ("[sweep]\ntargets = [-0.1]\n", "outside [0, 1)"),
        ("[sweep]\nkernels = ['cssr']\n", "unknown kernel 'cssr' (did you mean 'csr'?)"),
        ("[sweep]\nboards = ['mps2_an368']\n", "unknown board 'mps2_an368' (did you mean 'mps2_an386'?)"),
        ("[sweep\n", "not valid TOML"),
        ("[sweep]\nkernels = ['atuo']\n", "unknown kernel 'atuo' (did you mean 'auto'?)"),
        ("[sweep]\nflash_budjet = 4096\n", "unknown key 'flash_budjet' (did you mean 'flash_budget'?)"),
        ("[sweep]\nflash_budget = '4 KiB'\n", "'flash_budget' must be int"),
        ("[sweep]\nkernels = ['auto']\nflash_budget = -1\n", "'flash_budget' must be at least 0"),
        (
            "[sweep]\nkernels = ['dense', 'csr']\nflash_budget = 4096\n",
            "'flash_budget' applies to the auto kernel only",
        ),
        ("[farm]\npoints_per_turn = 0\n", "[farm]: 'points_per_turn' must be at least 1"),
        ("[farm]\nadress = 'lab:20408'\n", "[farm]: unknown key 'adress' (did you mean 'address'?)"),
        ("[sweep]\ntargets = ['a']\n", "'targets' item 1 must be float, got 'a'"),
        ("[sweep]\ntargets = []\n", "'targets' is empty"),
        ("[sweep]\ntargets = [0.5, 0.5]\n", "'targets' repeats a value"),
        ("[sweep]\nkernels = []\n", "'kernels' is empty"),
        ("[sweep]\nboards = []\n", "'boards' is empty"),
        ("[sweep]\ntask = 'regression'\n", "unknown task 'regression'"),
        ("[sweep]\nname = '../elsewhere'\n", "'name' '../elsewhere' cannot name a folder"),
        ("[sweep]\nseed = 1.5\n", "'seed' must be int, got 1.5"),
        ("[sweep]\ndevice = 3\n", "[sweep]: 'device' is a table of its own"),
        ("sweep = 3\n", "'sweep' must be a table"),
        ("[device]\naccuracy_samples = -5\n", "[device]: 'accuracy_samples' must be at least 0, got -5"),
        ("[device]\nwarmup = -1\n", "[device]: 'warmup' -1 is outside [0, 100]"),
        ("[device]\nwarmup = 20000\n", "[device]: 'warmup' 20000 is outside [0, 100]"),
        ("[device]\nruns = 0\n", "[device]: 'runs' 0 is outside [1, 10000]"),
        ("[device]\nruns = true\n", "[device]: 'runs' must be int, got True"),
        ("[device]\ntimeout_s = 0\n", "[device]: 'timeout_s' 0.0 is outside (0, 3600]"),
        ("[device]\ntimeout_s = '20'\n", "[device]: 'timeout_s' must be float, got '20'"),
        ("[device]\nport = '99999'\n", "[device]: 'port': TCP port 99999 is outside 1..65535"),
        (
            "[device]\nport = 'nucleo_f44re=/dev/ttyACM0'\n",
            "names unknown board 'nucleo_f44re' (did you mean 'nucleo_f446re'?)",
        ),
        ("[farm]\npoints_per_turn = 1.5\n", "[farm]: 'points_per_turn' must be int"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: no such config file"):
        load_config(tmp_path / "nothere.toml")


def test_every_weight_format_and_auto_are_kernels(tmp_path):
    kernels = [*KERNEL_FORMATS, "auto"]
    config = load_config(write(tmp_path, f"[sweep]\nkernels = {kernels}\nflash_budget = 4096\n"))
    assert config.kernels == tuple(kernels) and config.flash_budget == 4096


def test_a_flag_is_named_instead_of_the_file(tmp_path):
    path = write(tmp_path, "[sweep]\ntargets = [0.5]\n")
    with pytest.raises(ConfigError, match=r"^--targets: item 2 must be float, got 'a'$"):
        load_config(path, targets=(0.5, "a"))
    with pytest.raises(ConfigError, match=r"^--port: TCP port 99999 is outside 1\.\.65535$"):
        load_config(path, device={"port": "99999"})
    with pytest.raises(ConfigError, match=r"^--target: 1\.5 is outside \[0, 1\)$"):
        load_config(path, flags={"targets": "--target"}, targets=(1.5,))


def test_records_made_by_code_are_checked_too():
    from pydantic import ValidationError

    from harness.config import DeviceConfig

    with pytest.raises(ValidationError):
        DeviceConfig(warmup=20000)
