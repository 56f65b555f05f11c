"""Command-line arguments shared by the tests that run ``lmp-seg``."""

# Few tiny images of the embedded data set: the synthetic data set's own arguments, so they go
# before a flag or config file that picks another data set (which drops them).
TINY_SYNTHETIC = [
    "--data.dataset.num_train_images=4",
    "--data.dataset.num_val_images=2",
    "--data.dataset.image_size=[64, 80]",
]

# Small and fast on two CPU cores: the embedded data set's tiny images, no progress bar.
TINY = [
    *TINY_SYNTHETIC,
    "--data.crop_size=64",
    "--data.batch_size=2",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
]
