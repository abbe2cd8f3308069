"""The shape the developers' guide asks of product code: no function longer than 50 lines."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRODUCT = ("cga_kernels", "cga_model", "benchmarks", "examples")
LIMIT = 50


def _long_functions():
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > LIMIT:
                        yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"


def test_no_product_function_is_longer_than_50_lines():
    assert list(_long_functions()) == []
