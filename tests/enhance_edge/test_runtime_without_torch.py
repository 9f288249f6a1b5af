"""The runtime must work where PyTorch is not installed: it never imports torch; the command line
and its help start without onnxruntime too."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from enhance_edge.apps.cli import main


def test_importing_and_upscaling_leaves_torch_unimported(tiny_onnx, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "import enhance_edge, enhance_edge.apps.cli, enhance_edge.core.batch\n"
        "from enhance_edge import Upscaler\n"
        f"out = Upscaler({str(tiny_onnx)!r}).upscale(np.zeros((5, 7), np.uint8))\n"
        "assert out.shape == (10, 14), out.shape\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    # cwd: not the checkout, whose enhance_edge/ would shadow the installed package.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command, feature", [(["export", "x.pt", "-o", "x.onnx"], "export"),
                                              (["train", "--data", ".", "--out", "run"], "training")])
def test_commands_needing_the_train_extra_say_how_to_install_it(monkeypatch, tmp_path, command, feature):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    assert result.output.strip() == (f'error: {feature} needs the \'train\' extra (torch is not installed): '
                                     'pip install "enhance-edge[train]"')
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [[], ["--help"], ["upscale", "--help"]])
def test_the_command_line_and_its_help_load_neither_torch_nor_onnxruntime(tmp_path, args):
    code = ("import sys\nfrom enhance_edge.apps.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            if args else "import sys, enhance_edge.apps.cli\n")
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnxruntime'}))\n"
    # cwd: not the checkout, whose enhance_edge/ would shadow the installed package (and its train/ etc.).
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    if args:
        assert "Usage:" in result.stdout, result.stdout
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_command_line_starts_on_the_runtime_package_alone():
    # train/, export/ and benchmarks/ install as enhance_edge.train etc. but live outside the
    # checkout's enhance_edge/ folder: a `python -c` started in the checkout (as the tests and the
    # benchmark start the CLI) imports that folder, where they do not exist.
    code = ("import sys, enhance_edge.apps.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['enhance_edge', 'train'], "
            "['enhance_edge', 'export'], ['enhance_edge', 'benchmarks'])))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
