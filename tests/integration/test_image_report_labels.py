"""The image report uses --label-column (the labels the images come with) and titles its loss plot truthfully."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from deepad.cli import app
from image_data import blobs


@pytest.fixture(scope="module")
def labelled_images(tmp_path_factory):
    """train/ (normal blobs) and test/0, test/1 class folders (1 = anomaly), plus test_named/ with other classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("labelled")
    groups = {
        "train": blobs(40, 1, size=16),
        "test/0": blobs(8, 2, size=16),
        "test/1": blobs(4, 3, patch=True, size=16),
        "test_named/good": blobs(3, 4, size=16),
        "test_named/crack": blobs(3, 5, patch=True, size=16),
    }
    for folder, images in groups.items():
        (root / folder).mkdir(parents=True)
        for i, a in enumerate(images):
            Image.fromarray((a * 255).astype(np.uint8)).save(root / folder / f"{i:02d}.png")
    model = root / "model"
    params = '{"epochs": 3, "hidden_dims": [8, 16], "latent_dim": 8, "validation_fraction": 0}'
    r = CliRunner().invoke(app, ["train", str(root / "train"), "-o", str(model), "-p", params])
    assert r.exit_code == 0, r.output
    return root


def test_image_report_uses_the_label_column(labelled_images, tmp_path):
    root, out = labelled_images, tmp_path / "r.html"
    args = ["report", str(root / "model"), str(root / "test"), "-o", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "ROC-AUC" not in out.read_text()
    r = CliRunner().invoke(app, [*args, "--label-column", "label"])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "12 labelled images, 4 anomalies: ROC-AUC" in page and "known label" in page


def test_image_report_label_column_errors_name_the_problem(labelled_images, tmp_path):
    root = labelled_images
    base = ["report", str(root / "model")]
    r = CliRunner().invoke(app, [*base, str(root / "test"), "-o", str(tmp_path / "r.html"), "-l", "is_anomaly"])
    assert r.exit_code == 2 and "no column 'is_anomaly'" in r.output and "--label-column label" in r.output
    r = CliRunner().invoke(app, [*base, str(root / "test_named"), "-o", str(tmp_path / "r.html"), "-l", "label"])
    assert r.exit_code == 2 and "['crack', 'good']" in r.output
    r = CliRunner().invoke(app, [*base, str(root / "train"), "-o", str(tmp_path / "r.html"), "-l", "label"])
    assert r.exit_code == 2 and "has no labels" in r.output
    assert not (tmp_path / "r.html").exists()


def test_loss_plot_title_says_validation_only_when_there_is_one():
    from deepad.report.plots import loss_curves

    train_only = loss_curves({"train_loss": [3.0, 2.0, 1.0]})
    both = loss_curves({"train_loss": [3.0, 2.0, 1.0], "val_loss": [3.2, 2.4, 1.5]})
    assert train_only.axes[0].get_title() == "Training loss (no validation split)"
    assert both.axes[0].get_title() == "Training and validation loss"


def test_table_and_series_options_on_images_are_refused(labelled_images, tmp_path):
    root = labelled_images
    r = CliRunner().invoke(app, ["train", str(root / "train"), "-o", str(tmp_path / "m"), "--label-column", "y"])
    assert r.exit_code == 2 and "--label-column applies to tables and series" in r.output
    assert not (tmp_path / "m").exists()
    r = CliRunner().invoke(
        app, ["score", str(root / "model"), str(root / "test"), "-o", str(tmp_path / "s.csv"), "--explain"]
    )
    assert r.exit_code == 2 and "--explain applies to tables and series" in r.output and "deepad explain" in r.output
    r = CliRunner().invoke(
        app, ["score", str(root / "model"), str(root / "test"), "-o", str(tmp_path / "s.csv"), "--batch-rows", "8"]
    )
    assert r.exit_code == 2 and "--batch-rows applies to tables and series" in r.output
    r = CliRunner().invoke(
        app, ["report", str(root / "model"), str(root / "test"), "-o", str(tmp_path / "r.html"), "--risk", "0.1"]
    )
    assert r.exit_code == 2 and "--risk applies to time-series models" in r.output
