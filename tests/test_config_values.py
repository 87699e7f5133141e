"""Values that used to be accepted silently or to end in a traceback: each is one line naming the
key, before anything starts (issue 17's list of bad inputs; in process, so cheap)."""

import contextlib
import io

import pytest

from aunet_lab.config import ConfigError, load_config


@pytest.mark.parametrize("override, expected", [
    ("optim.lr=.nan", "optim.lr: expected a finite number, got nan"),
    ("optim.lr=.inf", "optim.lr: expected a finite number"),
    ("optim.lr=-0.001", "optim.lr: expected a positive learning rate"),
    ("data.mixture={en: .nan}", "data.mixture.en: expected a finite number"),
    ("data.max_epochs=.nan", "data.max_epochs: expected a finite number"),
    ("trainer.max_steps=-5", "trainer.max_steps: expected an integer >= 1 or null"),
    ("trainer.max_steps=0", "trainer.max_steps: expected an integer >= 1 or null"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every: expected an integer >= 1"),
    ("optim.accumulate=0", "optim.accumulate: expected an integer >= 1"),
    ("optim.warmup_steps=-10", "optim.warmup_steps: expected an integer >= 0"),
    ("trainer.precision=16-bogus", "trainer.precision: expected one of auto, 32-true"),
    ("trainer.devices=0", "trainer.devices: expected a count >= 1"),
    ("trainer.accelerator=bogus", "trainer.accelerator: expected one of auto, cpu"),
    ("optim.betas=[0.9, 1.5]", "optim.betas: expected two numbers in [0, 1)"),
])
def test_bad_values_are_one_line_naming_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides=[override])
    message = str(err.value)
    assert expected in message and "\n" not in message and len(message) < 300


def test_a_long_bad_value_is_cut_in_the_message():
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides=["optim.lr=" + "x" * 5000])
    assert len(str(err.value)) < 200


def test_window_of_one_byte_and_an_empty_config_are_refused(tmp_path):
    from aunet_lab.data.datamodule import DataConfigError

    with pytest.raises(DataConfigError, match="data.window_bytes: expected at least 8 bytes"):
        load_config(None, overrides=["data.window_bytes=1"]).data.validate()
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="the config file is empty"):
        load_config(empty)


def test_good_values_still_load():
    config = load_config(None, overrides=["trainer.max_steps=null", "trainer.devices=auto", "trainer.val_every=0",
                                          "optim.grad_clip=0", "trainer.precision=bf16-mixed"])
    assert config.trainer.max_steps is None and config.trainer.devices == "auto"


@pytest.mark.parametrize("args, expected", [
    (["--top-p", "0"], "--top-p: expected a number in (0, 1], got 0.0"),
    (["--top-p", "nan"], "--top-p: expected a number in (0, 1]"),
    (["--temperature", "nan"], "--temperature: expected a number >= 0"),
    (["--temperature", "-1"], "--temperature: expected a number >= 0"),
    (["--max-new", "-5"], "--max-new: expected at least 1 byte, got -5"),
    (["--prompt", "caf\udcc3"], "--prompt: not valid UTF-8 text"),  # invalid UTF-8 bytes in argv
])
def test_generate_arguments_are_checked_before_the_checkpoint_is_read(tmp_path, args, expected):
    from aunet_lab.cli import main

    missing = tmp_path / "never-read.ckpt"
    argv = ["generate", str(missing)] + (args if "--prompt" in args else ["--prompt", "x", *args])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines


def test_a_nan_mixture_weight_in_a_study_spec_is_refused(tmp_path):
    import yaml

    from aunet_lab.sweep.spec import load_spec

    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump({
        "name": "nan", "base": {"data": {"manifest": "data_manifests/udhr.yaml"}},
        "models": {"bpe": {"dim": 32, "layers": 1, "heads": 2}},
        "axes": {"arch": ["bpe"], "data_budget": ["6KB"], "mixture": {"en": {"en": float("nan")}}}}))
    with pytest.raises(ConfigError, match="axes.mixture.en.en: expected a positive weight, got nan"):
        load_spec(path)
    path.write_text(path.read_text().replace(".nan", "1.0") + "tune: {lr_factor: .nan}\n")
    with pytest.raises(ConfigError, match="tune.lr_factor: expected a finite number"):
        load_spec(path)
