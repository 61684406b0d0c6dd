"""`import workbook` is lazy (PEP 562): every exported name still imports, and the doctor does not load torch."""

import subprocess
import sys

import workbook


def test_every_exported_name_imports_from_the_package():
    for name in workbook.__all__:
        value = getattr(workbook, name)
        exec(f"from workbook import {name} as imported", namespace := {})
        assert namespace["imported"] is value, name
        assert getattr(value, "__module__", "").startswith("workbook."), name


def test_an_unknown_name_is_an_attribute_error():
    try:
        workbook.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("workbook.no_such_name did not raise AttributeError")


def test_the_doctor_on_its_default_tokenizer_does_not_load_torch():
    # A fresh interpreter: this test session may have imported torch already.
    code = ("import sys; from workbook.doctor import diagnose; "
            "diagnose('data/examples/anthropic_log.jsonl'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_model_still_brings_torch():
    code = "import sys, workbook; workbook.Transformer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_no_exported_name_is_hidden_by_its_submodule():
    # kv_memory is a function and a module: importing the module (as the server does) must not replace the function.
    code = ("import workbook, workbook.kv_memory, workbook.server; from workbook.kv_memory import KVMemory; "
            "from workbook import kv_memory; print(callable(kv_memory) and not isinstance(kv_memory, type(workbook)), "
            "workbook.kv_memory is kv_memory)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
