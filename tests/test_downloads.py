import pytest

from engine.config import BackboneConfig
from engine.data import downloads
from engine.models.backbones import cached_imagenet_weights, imagenet_weights_filename, keras_cache_dir


def test_offline_download_says_what_to_do(monkeypatch):
    import keras

    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(Exception("URL fetch failure")))
    with pytest.raises(downloads.DownloadUnavailable, match="offline.*upload the zip or unzip it and give the folder path"):
        downloads.download_cats_and_dogs()


def test_download_finds_the_dataset_inside_the_extraction(monkeypatch, tmp_path):
    import keras

    root = tmp_path / "cats_and_dogs_filtered_extracted" / "cats_and_dogs_filtered"
    for split in ("train", "validation"):
        (root / split / "cats").mkdir(parents=True)
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: str(root.parent))
    assert downloads.download_cats_and_dogs() == root


def test_internet_check_is_false_for_a_closed_port():
    assert downloads.internet_available("127.0.0.1", 9, timeout=0.5) is False


def test_cached_weights_lookup(tmp_path, monkeypatch):
    cfg = BackboneConfig(name="vgg16")
    assert cached_imagenet_weights(cfg, 150) is None
    keras_cache_dir().mkdir(parents=True)
    (keras_cache_dir() / imagenet_weights_filename(cfg, 150)).write_bytes(b"x")
    assert cached_imagenet_weights(cfg, 150).name == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
