"""Reading a run's log: list of dicts, DataFrame, curves drawn again."""

import json

import pytest
from PIL import Image

from gan_trainer.logs import LogError, log_dataframe, plot_log, read_log, series

LOG = [
    {'gen/loss': 2.0, 'dis/loss': 0.5, 'epoch': 0, 'iteration': 50, 'elapsed_time': 1.0},
    {
        'gen/loss': 1.5,
        'dis/loss': 0.7,
        'epoch': 1,
        'iteration': 100,
        'elapsed_time': 2.0,
        'validation/gen/loss': 1.2,
    },
]


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / 'log').write_text(json.dumps(LOG, indent=4))
    return tmp_path


def test_read_log_takes_the_folder_or_the_file(run_dir):
    assert read_log(run_dir) == LOG
    assert read_log(run_dir / 'log') == LOG
    assert read_log(str(run_dir)) == LOG


def test_series_skips_entries_without_the_key(run_dir):
    entries = read_log(run_dir)
    assert series(entries, 'gen/loss') == ([50, 100], [2.0, 1.5])
    assert series(entries, 'validation/gen/loss') == ([100], [1.2])


def test_log_dataframe_is_indexed_by_iteration(run_dir):
    pytest.importorskip('pandas')
    frame = log_dataframe(run_dir)
    assert list(frame.index) == [50, 100]
    assert frame.loc[100, 'dis/loss'] == 0.7
    assert frame['validation/gen/loss'].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    'content, match',
    [
        (None, 'no log at'),
        ('{"not": "a list"}', 'not a list of dicts'),
        ('[1, 2]', 'not a list of dicts'),
        ('[{"a": 1', 'not valid JSON'),
    ],
    ids=['missing', 'dict', 'list_of_numbers', 'truncated'],
)
def test_bad_logs_are_one_line_errors_naming_the_file(tmp_path, content, match):
    if content is not None:
        (tmp_path / 'log').write_text(content)
    with pytest.raises(LogError, match=match) as info:
        read_log(tmp_path)
    assert str(tmp_path / 'log') in str(info.value) and '\n' not in str(info.value)


def test_plot_log_draws_a_png_of_the_keys_present(run_dir, tmp_path):
    path = plot_log(run_dir, tmp_path / 'plots' / 'loss.png', keys=['gen/loss', 'no/such'])
    with Image.open(path) as img:
        assert img.format == 'PNG' and img.size == (640, 400)


def test_plot_log_without_any_key_lists_what_the_log_has(run_dir, tmp_path):
    with pytest.raises(LogError, match='it has: dis/loss, elapsed_time, epoch, gen/loss'):
        plot_log(run_dir, tmp_path / 'x.png', keys=['no/such'])
    assert not (tmp_path / 'x.png').exists()
