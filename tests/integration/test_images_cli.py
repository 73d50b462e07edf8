"""Image folders through the CLI: `deepad train`, `score`, `explain`, `report`, `info` and `bench --images`."""

from __future__ import annotations

import pytest
from sklearn.metrics import roc_auc_score

import image_data
from image_data import MNIST, make

image_folders = image_data.image_folders  # the module-scoped fixture: train/ and test/ folders of PNGs


# --------------------------------------------------------------------------- CLI on image folders
def test_cli_train_score_explain_report_on_image_folder(image_folders, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from deepad.cli import app

    runner = CliRunner()
    model = tmp_path / "model"
    r = runner.invoke(
        app,
        [
            "train",
            str(image_folders / "train"),
            "-o",
            str(model),
            "-p",
            '{"epochs": 4, "hidden_dims": [8, 16], "latent_dim": 8}',
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Trained ConvAutoEncoder on 80 images (1x20x20" in r.output
    r = runner.invoke(app, ["score", str(model), str(image_folders / "test"), "-o", str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "s.csv")
    assert list(df.columns) == ["image", "score", "p_value", "is_anomaly"] and len(df) == 14
    assert roc_auc_score(df["image"].str.contains("anom"), df["score"]) == 1.0
    r = runner.invoke(
        app, ["explain", str(model), str(image_folders / "test"), "--top", "2", "-o", str(tmp_path / "maps")]
    )
    assert r.exit_code == 0, r.output
    pngs = sorted((tmp_path / "maps").glob("*.png"))
    assert len(pngs) == 2 and all("anom" in p.name for p in pngs) and pngs[0].read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["report", str(model), str(image_folders / "test"), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    assert "anomaly map" in page.lower() and page.count("data:image/png;base64") >= 3
    r = runner.invoke(app, ["info", str(model)])
    assert r.exit_code == 0 and "80 images of 1x20x20" in r.output
    # a table detector on images, and an image number past the end, are one-line errors
    r = runner.invoke(app, ["train", str(image_folders / "train"), "-o", str(tmp_path / "x"), "-d", "KNN"])
    assert r.exit_code == 2 and "table detector" in r.output
    r = runner.invoke(
        app, ["explain", str(model), str(image_folders / "test"), "--rows", "99", "-o", str(tmp_path / "m2")]
    )
    assert r.exit_code == 2 and "out of range" in r.output


def test_cli_explain_images_output_dir_and_its_old_short_name(image_folders, tmp_path):
    """`deepad explain --output-dir DIR` writes the overlays to DIR; `-o DIR`, its old spelling, still does."""
    from typer.testing import CliRunner

    from deepad.cli import app
    from deepad.image_pipeline import ImagePipeline

    ImagePipeline(make("ConvAutoEncoder", epochs=2)).fit(image_folders / "train").save(tmp_path / "m")
    for option in ("--output-dir", "-o"):
        folder = tmp_path / f"maps{option}"
        r = CliRunner().invoke(
            app, ["explain", str(tmp_path / "m"), str(image_folders / "test"), "--top", "2", option, str(folder)]
        )
        assert r.exit_code == 0, r.output
        assert len(list(folder.glob("*.png"))) == 2
        assert ("-o is now --output-dir" in r.output) == (option == "-o")
    both = CliRunner().invoke(
        app,
        [
            "explain",
            str(tmp_path / "m"),
            str(image_folders / "test"),
            "--output-dir",
            str(tmp_path / "a"),
            "-o",
            str(tmp_path / "b"),
        ],
    )
    assert both.exit_code == 2 and "give --output-dir only" in both.output


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST data not available")
def test_cli_bench_images_mnist(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from deepad.cli import app

    r = CliRunner().invoke(
        app,
        [
            "bench",
            "--images",
            "mnist",
            "--data",
            str(MNIST),
            "--digits",
            "1",
            "--seeds",
            "1",
            "-d",
            'ConvAutoEncoder:{"epochs": 1, "hidden_dims": [4, 8], "latent_dim": 8}',
            "-o",
            str(tmp_path / "b"),
        ],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "b" / "results.csv")
    assert len(df) == 1 and df.loc[0, "status"] == "ok" and df.loc[0, "digit"] == 1 and df.loc[0, "roc_auc"] > 0.8
    assert df.loc[0, "fit_cpu_seconds"] > 0 and "| 1 |" in (tmp_path / "b" / "RESULTS.md").read_text()
