"""The audit workflow: checks that fire on purpose-built models, the CI exit codes, reproducible
bytes, compare mode (two checkpoints, or one against an archived report.json) and the JSON Schema."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nnviz_report.checks import Thresholds
from nnviz_report.cli import main
from nnviz_report.compare import CHECKS_OF_SCHEMA_1_0, finding_changes
from nnviz_report.config import ReportSettings
from nnviz_report.data import load_sample, normalise
from nnviz_report.models import load_model
from nnviz_report.pipeline import capture_sample, statistics
from nnviz_report.progress import Progress
from nnviz_report.report_model import SCHEMA_VERSION, Finding
from nnviz_report.sections.anchors import Anchors

from .fixtures.models import tiny_cnn

TINY = "tests.fixtures.models:tiny_cnn"
ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 3


def cli(*args: str) -> int:
    return main([args[0], "--quiet", *args[1:]])


def read_json(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def load_make_schema() -> Any:
    spec = importlib.util.spec_from_file_location("make_schema", ROOT / "scripts" / "make_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "nnviz_report" / "schema" / f"report-{SCHEMA_VERSION}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator: Any, record: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(record)]
    assert not errors, errors[:5]


# ---- each check fires on the model built for it, and stays quiet on a healthy one -------------

def findings_of(spec: str, image_folder: Path, thresholds: Thresholds | None = None, *,
                weights: Path | None = None) -> list[tuple[str, str, str | None]]:
    settings = ReportSettings(model=spec, data=str(image_folder), per_class=2, progress=False)
    sample = load_sample(settings.data, per_class=2)
    capture = capture_sample(load_model(spec, weights=weights), sample, settings, torch.device("cpu"),
                             Progress(enabled=False))
    stats = statistics(capture, sample, thresholds or Thresholds(), Anchors())
    return [(f.check, f.severity, f.layer) for f in stats.findings]


@pytest.mark.parametrize(
    ("spec", "check", "layer"),
    [
        ("tests.fixtures.models:dead_relu_net", "dead-channels", "relu1"),
        ("tests.fixtures.audit_models:nan_weight_net", "non-finite", "conv2"),
        ("tests.fixtures.audit_models:saturated_sigmoid_net", "saturation", "sigmoid"),
        ("tests.fixtures.audit_models:deep_sigmoid_mlp", "vanishing-gradient", "body.1"),
        ("tests.fixtures.audit_models:deep_sigmoid_mlp", "gradient-spread", None),
    ],
)
def test_check_fires_on_its_model(image_folder: Path, spec: str, check: str, layer: str | None) -> None:
    found = findings_of(spec, image_folder)
    assert (check, layer) in {(c, where) for c, _, where in found}, found


def test_vanishing_gradient_is_marked_near_the_input_not_the_output(image_folder: Path) -> None:
    vanishing = [where for c, _, where in findings_of("tests.fixtures.audit_models:deep_sigmoid_mlp", image_folder)
                 if c == "vanishing-gradient"]
    assert "body.1" in vanishing and "body.39" not in vanishing  # the last Linear gets the full gradient




def test_healthy_model_has_no_findings(image_folder: Path, trained_tiny: Path) -> None:
    """Trained: an untrained model is not healthy, and the chance-level check says so."""
    assert findings_of(TINY, image_folder, weights=trained_tiny) == []
    assert {c for c, _, _ in findings_of(TINY, image_folder)} == {"chance-level"}


def test_thresholds_decide(image_folder: Path) -> None:
    lenient = Thresholds(dead_channels_warn=0.9, dead_channels_fail=0.95)
    assert "dead-channels" in {c for c, _, _ in findings_of("tests.fixtures.models:dead_relu_net", image_folder)}
    assert "dead-channels" not in {c for c, _, _ in findings_of("tests.fixtures.models:dead_relu_net", image_folder,
                                                                 lenient)}


def test_config_file_overrides_a_threshold(image_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "nnviz.toml"
    config.write_text("[thresholds]\ndead_channels_warn = 0.9\ndead_channels_fail = 0.95\n")
    args = ["report", "--model", "tests.fixtures.models:dead_relu_net", "--data", str(image_folder),
            "--per-class", "2", "--format", "json", "--fail-on", "warn"]
    assert cli(*args, "-o", str(tmp_path / "default")) == 1
    assert cli(*args, "--config", str(config), "-o", str(tmp_path / "lenient")) == 1  # untrained: chance level
    assert "dead-channels" in {f["check"] for f in read_json(tmp_path / "default")["findings"]}
    lenient = read_json(tmp_path / "lenient")
    assert "dead-channels" not in {f["check"] for f in lenient["findings"]}
    row = next(c for c in lenient["verdict"]["checks"] if c["id"] == "dead-channels")
    assert row["status"] == "pass" and row["threshold"] == "warn > 90%, fail > 95% of a layer"


# ---- reproducible and traceable ---------------------------------------------------------------

def test_same_inputs_give_identical_bytes_pdf_included(image_folder: Path, tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name / "nested"  # another folder each time: paths must not leak in
        assert cli("report", "--model", TINY, "--data", str(image_folder), "--per-class", "2", "--showcase", "2",
                   "-o", str(out)) == 0
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert sorted(outputs[0]) == ["report.html", "report.json", "report.md", "report.pdf"]
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], f"{name} differs between two identical runs"
    for name in ("report.html", "report.json", "report.md"):
        text = outputs[0][name].decode("utf-8")
        assert not re.search(r"20\d\d-\d\d-\d\d|\d\d:\d\d:\d\d", text), f"{name} holds a date or time"
        assert str(tmp_path) not in text
    assert b"/CreationDate" not in outputs[0]["report.pdf"] and b"/ModDate" not in outputs[0]["report.pdf"]


# ---- compare -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny_cnn after 2 and after 8 SGD steps on the synthetic sample."""
    folder = tmp_path_factory.mktemp("checkpoints")
    sample = load_sample(str(image_folder), per_class=6)
    x, y = normalise(sample.images), sample.labels
    model = tiny_cnn()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(8):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
        if step == 1:
            torch.save(model.state_dict(), folder / "base.pt")
    torch.save(model.state_dict(), folder / "head.pt")
    return folder / "base.pt", folder / "head.pt"


@pytest.fixture(scope="module")
def runs(image_folder: Path, checkpoints: tuple[Path, Path],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Plain reports of base and head, and their comparison."""
    base, head = checkpoints
    root = tmp_path_factory.mktemp("runs")
    common = ["--model", TINY, "--data", str(image_folder), "--per-class", str(PER_CLASS)]
    assert cli("report", *common, "--weights", str(base), "--format", "json", "-o", str(root / "base")) == 0
    assert cli("report", *common, "--weights", str(head), "--format", "json", "-o", str(root / "head")) == 0
    assert cli("compare", *common, "--base-weights", str(base), "--head-weights", str(head),
               "--format", "html,json,md", "-o", str(root / "compare")) == 0
    return {name: root / name for name in ("base", "head", "compare")}


def test_compare_relative_weight_change_matches_torch(runs: dict[str, Path], checkpoints: tuple[Path, Path]) -> None:
    base_state = torch.load(checkpoints[0], weights_only=True)
    head_state = torch.load(checkpoints[1], weights_only=True)
    compare = read_json(runs["compare"])["compare"]
    assert compare["mode"] == "checkpoints" and compare["weights_note"] == ""
    params = {p["name"]: p for p in compare["params"]}
    assert set(params) == {n for n in head_state if not n.startswith("bn.running") and n != "bn.num_batches_tracked"}
    for name, row in params.items():
        wb, wh = base_state[name].double(), head_state[name].double()
        assert row["delta_norm"] == pytest.approx(float((wh - wb).norm()), rel=1e-9)
        assert row["relative"] == pytest.approx(float((wh - wb).norm() / wb.norm()), rel=1e-9)
    layers = {row["name"]: row for row in compare["layers"]}
    assert layers["conv2"]["weight_change"] == pytest.approx(params["conv2.weight"]["relative"])
    assert layers["relu1"]["weight_change"] is None  # no weight of its own
    assert compare["weight_figure"] == {"figure": "compare-weight-change"}


def test_compare_performance_deltas_match_the_two_reports(runs: dict[str, Path]) -> None:
    base, head, compare = (read_json(runs[n]) for n in ("base", "head", "compare"))
    c = compare["compare"]
    assert c["accuracy"]["base"] == base["performance"]["accuracy"]
    assert c["accuracy"]["head"] == head["performance"]["accuracy"]
    assert c["accuracy"]["delta"] == pytest.approx(head["performance"]["accuracy"] - base["performance"]["accuracy"])
    assert c["loss"]["delta"] == pytest.approx(head["performance"]["loss"] - base["performance"]["loss"])
    for k, ch in enumerate(c["per_class_accuracy"]):
        assert ch["delta"] == pytest.approx(head["performance"]["per_class_accuracy"][k]
                                            - base["performance"]["per_class_accuracy"][k])
    # The rest of the compare report is the head's own report.
    for part in ("performance", "findings", "activations", "gradients", "weights", "sample", "model"):
        assert compare[part] == head[part], part


def test_compare_sides_are_the_plain_reports_numbers(runs: dict[str, Path]) -> None:
    """Both sides of a checkpoint comparison are built as a plain report builds them: every
    per-layer number on either side is that report's own."""
    base, head, compare = (read_json(runs[n]) for n in ("base", "head", "compare"))
    rows = {side: {row["name"]: row for row in record["activations"]["layers"]}
            for side, record in (("base", base), ("head", head))}
    ratios = {side: {p["name"]: p["ratio"] for p in record["gradients"]["params"]}
              for side, record in (("base", base), ("head", head))}
    layers = compare["compare"]["layers"]
    assert [row["name"] for row in layers] == list(rows["head"])
    for row in layers:
        for side in ("base", "head"):
            for metric in ("mean", "std", "zero_fraction", "dead_channels", "grad_rms"):
                assert row[metric][side] == rows[side][row["name"]][metric], (row["name"], side, metric)
            weight = f"{rows[side][row['name']]['module_path']}.weight"
            assert row["grad_ratio"][side] == ratios[side].get(weight), (row["name"], side)


def test_compare_changed_predictions_match_the_two_reports(runs: dict[str, Path]) -> None:
    base, head, compare = (read_json(runs[n]) for n in ("base", "head", "compare"))
    before, after = np.array(base["performance"]["predictions"]), np.array(head["performance"]["predictions"])
    labels = np.array(head["performance"]["labels"])
    moved = np.flatnonzero(before != after)
    assert moved.size > 0, "the fixture should change some predictions"
    c = compare["compare"]
    assert c["changed_total"] == moved.size
    assert c["changed_fixed"] == int(((before != labels) & (after == labels)).sum())
    assert c["changed_broken"] == int(((before == labels) & (after != labels)).sum())
    assert c["changed_fixed"] + c["changed_broken"] + c["changed_other"] == c["changed_total"]
    shown = c["changed"]
    assert len(shown) == min(moved.size, c["changed_limit"])
    positions = [p["position"] for p in shown]
    assert set(positions) <= set(moved.tolist())
    kinds = ["broken" if before[i] == labels[i] else "fixed" if after[i] == labels[i] else "other" for i in positions]
    assert kinds == sorted(kinds, key=["broken", "fixed", "other"].index)  # regressions first
    for p in shown:
        i = p["position"]
        assert (p["base"], p["head"], p["label"]) == (before[i], after[i], labels[i])
        assert p["index"] == head["sample"]["indices"][p["position"]]


def test_compare_statistics_and_cka(runs: dict[str, Path]) -> None:
    base, head, compare = (read_json(runs[n]) for n in ("base", "head", "compare"))
    base_layers = {row["name"]: row for row in base["activations"]["layers"]}
    head_layers = {row["name"]: row for row in head["activations"]["layers"]}
    base_ratio = {p["name"]: p["ratio"] for p in base["gradients"]["params"]}
    head_ratio = {p["name"]: p["ratio"] for p in head["gradients"]["params"]}
    rows = compare["compare"]["layers"]
    assert [r["name"] for r in rows] == list(head_layers)
    for r in rows:
        for metric in ("mean", "std", "zero_fraction", "dead_channels", "grad_rms"):
            b, h = base_layers[r["name"]][metric], head_layers[r["name"]][metric]
            assert r[metric]["base"] == b and r[metric]["head"] == h
            assert r[metric]["delta"] == (None if b is None or h is None else pytest.approx(h - b))
        assert 0.0 <= r["cka"] <= 1.0 + 1e-12
    conv2 = next(r for r in rows if r["name"] == "conv2")
    assert conv2["grad_ratio"]["base"] == base_ratio["conv2.weight"]
    assert conv2["grad_ratio"]["head"] == head_ratio["conv2.weight"]
    assert compare["compare"]["cka_figure"] == {"figure": "compare-cka"}


def test_compare_outputs_render(runs: dict[str, Path], validator: Any) -> None:
    html = (runs["compare"] / "report.html").read_text()
    assert '<section id="compare"' in html and "Predictions that changed" in html and "<script" not in html
    md = (runs["compare"] / "report.md").read_text()
    c = read_json(runs["compare"])["compare"]
    assert f"**{c['changed_total']} of {PER_CLASS * 10} predictions changed**" in md
    assert f"findings: {c['findings_new']} new, {c['findings_resolved']} resolved" in md
    # The change comes first: base → head, both accuracies with intervals, McNemar p with its counts.
    top = md.splitlines()[:4]
    assert top[2].startswith("**Change** base base.pt → head head.pt: accuracy ")
    assert f"({c['changed_fixed']} fixed, {c['changed_broken']} broken)" in top[2]
    assert (c["base_accuracy_interval"]["method"], c["head_accuracy_interval"]["method"]) == ("wilson-95",) * 2
    record = read_json(runs["compare"])
    assert c["base_accuracy_interval"] == read_json(runs["base"])["performance"]["accuracy_interval"]
    assert c["head_accuracy_interval"] == record["performance"]["accuracy_interval"]
    assert c["mcnemar_p"] == pytest.approx(mcnemar_by_enumeration(c["changed_fixed"], c["changed_broken"]))
    for name in ("base", "head", "compare"):
        assert_valid(validator, read_json(runs[name]))


def test_compare_against_archived_json(runs: dict[str, Path], image_folder: Path, checkpoints: tuple[Path, Path],
                                       tmp_path: Path, validator: Any) -> None:
    out = tmp_path / "from-json"
    assert cli("compare", "--model", TINY, "--data", str(image_folder), "--per-class", str(PER_CLASS),
               "--base-json", str(runs["base"] / "report.json"), "--head-weights", str(checkpoints[1]),
               "--format", "json,md", "-o", str(out)) == 0
    from_json, from_weights = read_json(out)["compare"], read_json(runs["compare"])["compare"]
    assert from_json["mode"] == "archived-json" and from_json["base"]["source"] == "report.json"
    assert from_json["params"] == [] and from_json["weight_figure"] is None and from_json["cka_figure"] is None
    assert "base checkpoint" in from_json["weights_note"]
    assert all(row["weight_change"] is None and row["cka"] is None for row in from_json["layers"])
    for key in ("accuracy", "loss", "per_class_accuracy", "changed_total", "changed_fixed", "changed_broken",
                "findings", "base_only_layers", "head_only_layers"):
        assert from_json[key] == from_weights[key], key
    strip = ("weight_change", "cka")
    assert [{k: v for k, v in r.items() if k not in strip} for r in from_json["layers"]] == \
           [{k: v for k, v in r.items() if k not in strip} for r in from_weights["layers"]]
    assert_valid(validator, read_json(out))


def mcnemar_by_enumeration(b: int, c: int) -> float:
    """Two-sided: every outcome of Binomial(b + c, ½) at least as far from the middle as b."""
    n = b + c
    return min(1.0, sum(math.comb(n, i) for i in range(n + 1) if abs(2 * i - n) >= abs(2 * b - n)) / 2**n)


def test_compare_reads_an_archive_of_the_previous_schema(runs: dict[str, Path], image_folder: Path,
                                                           checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    """A 1.0 report.json has no checklist and no intervals: compare recomputes the base's interval
    from its predictions and gives the same comparison as from a current archive."""
    record = read_json(runs["base"])
    record["schema_version"] = "1.0"
    del record["verdict"]
    for key in ("correct", "accuracy_interval", "per_class_count", "per_class_interval", "loss_interval", "loss_note"):
        del record["performance"][key]
    old = tmp_path / "old-report.json"
    old.write_text(json.dumps(record))
    outputs = {}
    for name, archive in (("old", old), ("current", runs["base"] / "report.json")):
        assert cli("compare", "--model", TINY, "--data", str(image_folder), "--per-class", str(PER_CLASS),
                   "--base-json", str(archive), "--head-weights", str(checkpoints[1]), "--format", "json",
                   "-o", str(tmp_path / name)) == 0
        outputs[name] = read_json(tmp_path / name)["compare"]
    assert outputs["old"]["base"]["schema_version"] == "1.0"
    for key in ("accuracy", "base_accuracy_interval", "head_accuracy_interval", "mcnemar_p", "changed_fixed",
                "changed_broken"):
        assert outputs["old"][key] == outputs["current"][key], key
    # A 1.0 archive does not say which of the newer checks ran: only the seven it knew are compared.
    assert outputs["old"]["findings"] == [f for f in outputs["current"]["findings"]
                                          if f["check"] in CHECKS_OF_SCHEMA_1_0]


def _bad_archive(runs: dict[str, Path], tmp_path: Path, **changes: Any) -> Path:
    record = read_json(runs["base"])
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = record
        for p in parents:
            target = target[p]
        target[key] = value
    path = tmp_path / "old-report.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": "9.9"}, r"schema version '9\.9'.*cannot read"),
        ({"model__spec": "resnet20"}, r"describes model 'resnet20'"),
        ({"sample__fingerprint": "0" * 64}, r"different sample"),
    ],
)
def test_archived_json_that_does_not_fit_is_refused(runs: dict[str, Path], image_folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], changes: dict[str, Any],
                                                    message: str) -> None:
    archive = _bad_archive(runs, tmp_path, **changes)
    out = tmp_path / "out"
    code = cli("compare", "--model", TINY, "--data", str(image_folder), "--per-class", str(PER_CLASS),
               "--base-json", str(archive), "--format", "json", "-o", str(out))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("nnviz-report: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_archived_json_from_another_per_class_is_refused(runs: dict[str, Path], image_folder: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("compare", "--model", TINY, "--data", str(image_folder), "--per-class", "2",
               "--base-json", str(runs["base"] / "report.json"), "--format", "json", "-o", str(tmp_path / "out"))
    assert code == 2 and "use the same --data and --per-class" in capsys.readouterr().err


def test_compare_exit_codes(image_folder: Path, trained_tiny: Path, tmp_path: Path) -> None:
    """The gate judges the head: a dead head fails --fail-on warn, a healthy head passes it even
    when the base was dead."""
    dead = tmp_path / "dead.pt"
    state = torch.load(trained_tiny, weights_only=True)
    state["conv1.bias"][:3] = -1e3
    torch.save(state, dead)
    # The tiny synthetic model is over-confident (ECE warns); this test is about the dead channels.
    config = tmp_path / "thresholds.toml"
    config.write_text("[thresholds]\nece_warn = 1.0\ncorruption_drop_warn = 1.0\n")
    common = ["--model", TINY, "--data", str(image_folder), "--per-class", "2", "--format", "json", "--fail-on", "warn",
              "--config", str(config)]
    assert cli("compare", *common, "--base-weights", str(dead), "--head-weights", str(trained_tiny),
               "-o", str(tmp_path / "healthy-head")) == 0
    assert cli("compare", *common, "--base-weights", str(trained_tiny), "--head-weights", str(dead),
               "-o", str(tmp_path / "dead-head")) == 1
    c = read_json(tmp_path / "dead-head")["compare"]
    assert ("new", "dead-channels") in {(f["status"], f["check"]) for f in c["findings"]}
    assert ("resolved", "dead-channels") in {(f["status"], f["check"])
                                             for f in read_json(tmp_path / "healthy-head")["compare"]["findings"]}
    assert cli("compare", *common, "--base-weights", str(tmp_path / "missing.pt"),
               "-o", str(tmp_path / "bad")) == 2


def test_compare_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--model", TINY])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["compare", "--model", TINY, "--base-weights", "a.pt", "--base-json", "b.json"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_findings_are_matched_on_check_and_layer() -> None:
    def f(check: str, layer: str | None, severity: str = "warn") -> Finding:
        return Finding(check, severity, layer, 1.0, "t", check, None)

    base = [f("dead-channels", "relu1", "fail"), f("non-finite", "conv1"), f("non-finite", "conv1")]
    head = [f("dead-channels", "relu1", "warn"), f("non-finite", "conv1"), f("saturation", "sig")]
    changes = finding_changes(base, head)
    assert [(c.status, c.check, c.layer) for c in changes] == [
        ("new", "saturation", "sig"), ("resolved", "non-finite", "conv1"),
        ("unchanged", "dead-channels", "relu1"), ("unchanged", "non-finite", "conv1")]
    assert (changes[2].base_severity, changes[2].head_severity) == ("fail", "warn")


# ---- the JSON Schema ---------------------------------------------------------------------------

def test_committed_schema_is_generated_from_the_report_model() -> None:
    make_schema = load_make_schema()
    committed = make_schema.schema_path().read_text(encoding="utf-8")
    assert committed == make_schema.dumps(make_schema.generate()), \
        "the report model changed: run python scripts/make_schema.py --update"


def test_schema_is_closed_and_nullable_for_floats() -> None:
    schema = load_make_schema().generate()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    for name, definition in schema["$defs"].items():
        assert definition["additionalProperties"] is False, name
        assert definition["required"] == list(definition["properties"]), name
    assert schema["$defs"]["LayerStats"]["properties"]["mean"]["type"] == ["number", "null"]
    assert "FlowSection" in schema["$defs"] and "CompareSection" in schema["$defs"]
