"""`import lamina.text` stays light: Hugging Face libraries and matplotlib load only when used."""

import subprocess
import sys


def test_import_lamina_text_loads_neither_tokenizers_nor_transformers_nor_matplotlib():
    heavy = ("tokenizers", "transformers", "matplotlib")
    code = f"import sys, lamina.text; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
