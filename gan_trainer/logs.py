"""Reading a run's log back: ``OUT/log`` as a list of dicts or a DataFrame.

Chainer's ``LogReport`` writes ``OUT/log`` as one JSON list with a dict per
``--display_interval`` iterations (``iteration``, ``epoch``,
``elapsed_time``, ``gen/loss``, ``dis/loss``, ``validation/...``; keys that
were not reported in that interval are absent). These helpers read it for
notebooks and for ``examples/plot_log.py``; pandas is optional.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gan_trainer.files import atomic_write

LOG_NAME = 'log'


class LogError(ValueError):
    """A log file is missing, unreadable or not a LogReport log."""


def log_path(path_or_out_dir: str | os.PathLike) -> Path:
    """``OUT/log`` for a run's output folder, or the path itself for a file."""
    path = Path(path_or_out_dir)
    return path / LOG_NAME if path.is_dir() else path


def read_log(path_or_out_dir: str | os.PathLike) -> list[dict]:
    """Reads a ``LogReport`` log.

    Args:
        path_or_out_dir: The log file, or the run's output folder holding
            ``log``.

    Returns:
        list of dict: One dict per logged interval, in the order written.

    Raises:
        LogError: Naming the file, when it is missing, is not JSON, or is
            not a list of dicts.
    """
    path = log_path(path_or_out_dir)
    try:
        with open(path, encoding='utf-8') as f:
            entries = json.load(f)
    except FileNotFoundError:
        raise LogError(f"no log at '{path}': pass a run's output folder or its log file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"cannot read log '{path}': {e}") from None
    except ValueError as e:
        raise LogError(f"log '{path}' is not valid JSON ({e})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LogError(f"log '{path}' is not a list of dicts (a LogReport log)")
    return entries


def log_dataframe(path_or_out_dir: str | os.PathLike):
    """The log as a ``pandas.DataFrame`` indexed by ``iteration``.

    Values a line did not report are NaN.

    Raises:
        ImportError: When pandas is not installed (one line saying so).
        LogError: As :func:`read_log`.
    """
    try:
        import pandas
    except ImportError:
        raise ImportError('log_dataframe needs pandas: pip install pandas') from None
    frame = pandas.DataFrame(read_log(path_or_out_dir))
    return frame.set_index('iteration') if 'iteration' in frame.columns else frame


def series(entries: list[dict], key: str, *, x: str = 'iteration') -> tuple[list, list]:
    """The ``(x, value)`` pairs of ``key`` in the entries that reported it.

    Returns:
        tuple of two lists: x values and ``key`` values, of equal length.
    """
    pairs = [(e[x], e[key]) for e in entries if key in e and x in e]
    return [p[0] for p in pairs], [p[1] for p in pairs]


#: The curves ``plot_log`` draws by default: the ones ``loss.png`` shows.
DEFAULT_KEYS = ('gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss')


def plot_log(
    path_or_out_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    keys=DEFAULT_KEYS,
    x: str = 'iteration',
) -> Path:
    """Draws the curves of ``keys`` against ``x`` into an image file.

    The same picture as the run's ``loss.png`` (Chainer's ``PlotReport``),
    drawn again from the finished log, so you can choose the keys (e.g.
    ``dis/acc_real``) after training. Draws with matplotlib's Agg canvas,
    which needs no display.

    Args:
        path_or_out_dir: The log file, or the run's output folder.
        out_path: Image to write (``.png``, ``.svg``, ``.pdf``, ...).
        keys: Log keys, one curve each.
        x: Log key of the horizontal axis.

    Returns:
        pathlib.Path: The file written.

    Raises:
        LogError: If the log cannot be read, or none of ``keys`` is in it
            (the message lists the keys it has).
    """
    entries = read_log(path_or_out_dir)
    present = [k for k in keys if any(k in e for e in entries)]
    if not present:
        available = sorted({k for e in entries for k in e} - {x})
        raise LogError(
            f'none of {", ".join(keys)} is in the log; it has: {", ".join(available) or "nothing"}'
        )
    return draw_curves({key: series(entries, key, x=x) for key in present}, out_path, x=x)


def draw_curves(curves: dict, out_path: str | os.PathLike, *, x: str = 'iteration') -> Path:
    """Draws ``{label: (xs, ys)}`` into an image file (the picture of :func:`plot_log`).

    The run's ``loss.png`` (:class:`gan_trainer.extensions.LossPlot`) is
    drawn by this function too.
    """
    # A bare Figure with the Agg canvas: no display needed, and pyplot's
    # global backend (a notebook's, say) is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=key)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    kind = out_path.suffix.lstrip('.').lower() or 'png'
    if kind not in fig.canvas.get_supported_filetypes():
        raise LogError(f"cannot write a plot as '{out_path.name}': use one of "
                       f"{', '.join(sorted(fig.canvas.get_supported_filetypes()))}")
    # Atomically: a full disk leaves the old file (or none), never an empty one.
    with atomic_write(out_path) as f:
        fig.savefig(f, format=kind)
    return out_path
