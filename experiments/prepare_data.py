r"""Prepares a TFDS dataset offline once, so runs can read it with `download=False`.

  pip install -e ".[prepare]"     # TensorFlow is needed only here
  python -m experiments.prepare_data --dataset=cifar10 [--data_dir=DIR] [--manual_dir=DIR]

Without --manual_dir this downloads the archives (needs network once); with --manual_dir it
builds from archives you copied there by hand (see BUILD.md).
"""
from absl import app, flags

from unlearn_jax.data.sources import TFDS_DATASETS

_DATASET = flags.DEFINE_enum("dataset", None, list(TFDS_DATASETS), "TFDS dataset to prepare.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default $TFDS_DATA_DIR or "
                                "~/tensorflow_datasets).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder holding the downloaded archives.")
flags.mark_flag_as_required("dataset")


def main(argv):
  del argv
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(_DATASET.value, data_dir=_DATA_DIR.value)
  config = tfds.download.DownloadConfig(manual_dir=_MANUAL_DIR.value) if _MANUAL_DIR.value else None
  # array_record lets runs read the data without TensorFlow (tfds.data_source).
  builder.download_and_prepare(download_config=config, file_format="array_record")
  print(f"prepared {_DATASET.value} in {builder.data_dir}")


if __name__ == "__main__":
  app.run(main)
