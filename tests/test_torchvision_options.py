"""``torchvision:NAME,KEY=VALUE,...``: constructor options, parsed as literals and never evaluated."""

from __future__ import annotations

import pytest

from nnviz_report.errors import ModelError
from nnviz_report.models import load_model, parse_torchvision_spec


def test_options_are_parsed_as_int_float_bool_or_string() -> None:
    name, options = parse_torchvision_spec("vit_b_16,image_size=32, dropout = 0.25,flag=True,norm=none,x=__import__")
    assert name == "vit_b_16"
    assert options == {"image_size": 32, "dropout": 0.25, "flag": True, "norm": "none", "x": "__import__"}
    assert type(options["image_size"]) is int and type(options["flag"]) is bool
    assert parse_torchvision_spec("resnet18") == ("resnet18", {})


@pytest.mark.parametrize(("spec", "message"), [
    ("vit_b_16,image_size", "must be KEY=VALUE"),
    ("vit_b_16,image_size=", "must be KEY=VALUE"),
    ("vit_b_16,a-b=1", "must be KEY=VALUE"),
    ("vit_b_16,image_size=32,image_size=16", "given twice"),
    ("vit_b_16,num_classes=100", "set by nnviz-report"),
    ("vit_b_16,weights=DEFAULT", "set by nnviz-report"),
    (",image_size=32", "no model name"),
])
def test_bad_options_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        parse_torchvision_spec(spec)
    assert "\n" not in str(caught.value)


def test_a_vit_runs_at_32_pixels_through_options() -> None:
    loaded = load_model("torchvision:vit_b_16,image_size=32", weights=None)
    assert loaded.module.image_size == 32  # type: ignore[union-attr]
    assert sum(p.numel() for p in loaded.module.parameters()) > 80_000_000


def test_an_option_the_constructor_refuses_is_a_one_line_model_error() -> None:
    with pytest.raises(ModelError, match=r"resnet18 could not be built with num_classes=10, bogus=1 .*bogus") as caught:
        load_model("torchvision:resnet18,bogus=1", weights=None)
    assert "\n" not in str(caught.value)
