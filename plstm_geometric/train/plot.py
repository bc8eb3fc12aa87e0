"""The learning curves of a run (``curves.png``): training loss, and the metric on validation and test."""

from pathlib import Path

from .files import atomic_write


def write_plot(path: Path, history: list, metric: str, best_epoch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], marker="o")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss", yscale="log")
    for split in ("valid", "test"):
        metric_axis.plot(epochs, [row[f"{split}_{metric}"] for row in history], marker="o", label=split)
    if best_epoch is not None:
        metric_axis.axvline(best_epoch, color="grey", linestyle="--", label="best valid")
    metric_axis.set(xlabel="epoch", ylabel=metric, title=metric)
    metric_axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
