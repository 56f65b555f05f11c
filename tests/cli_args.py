"""Command-line arguments shared by the tests that run ``lmp-seg``."""

# Small and fast on two CPU cores: few tiny images of the embedded data set, no progress bar.
TINY = [
    "--data.num_train_images=4",
    "--data.num_val_images=2",
    "--data.image_size=[64, 80]",
    "--data.crop_size=64",
    "--data.batch_size=2",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
]
