"""gan_trainer.metrics: FID, KID, precision/recall and class scores on cases with known answers,
the shipped digits classifier, and the ONNX (Inception-v3) feature path without a download."""

import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy
import pytest
import scipy.linalg

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.datasets import get_digits
from gan_trainer.metrics import (
    FeatureNetError,
    OnnxFeatures,
    RealStatistics,
    class_coverage,
    class_histogram,
    fid,
    frechet_distance,
    inception_features,
    inception_score,
    kid,
    label_accuracy,
    precision_recall,
)
from gan_trainer.metrics import classifier as classifier_module
from gan_trainer.metrics.classifier import WEIGHTS
from gan_trainer.metrics.distances import knn_radii, mmd2_unbiased
from gan_trainer.metrics.features import fit_images
from gan_trainer.metrics.onnx_features import FID_WEIGHTS_URL
from gan_trainer.metrics.quality import real_images
from gan_trainer.testing import fake_dataset

REPO = Path(__file__).resolve().parents[1]


def gaussian(n, mean, std, seed):
    rng = numpy.random.RandomState(seed)
    return mean + std * rng.standard_normal((n, len(std)))


# --- FID ---------------------------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero():
    x = gaussian(500, numpy.zeros(8), numpy.arange(1, 9.0), seed=0)
    assert fid(x, x) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_is_the_hand_computed_closed_form():
    # ||mu1 - mu2||^2 = 1 + 4 = 5; Tr(S1 + S2) = 1 + 4 + 4 + 9 = 18;
    # Tr((S1 S2)^(1/2)) = sqrt(1 * 4) + sqrt(4 * 9) = 2 + 6 = 8  ->  5 + 18 - 16 = 7.
    d = frechet_distance([0, 0], numpy.diag([1.0, 4.0]), [1, 2], numpy.diag([4.0, 9.0]))
    assert d == pytest.approx(7.0, abs=1e-12)


def test_frechet_distance_matches_the_scipy_sqrtm_formula_for_full_covariances():
    rng = numpy.random.RandomState(1)
    a, b = rng.standard_normal((2, 6, 6))
    s1, s2 = a @ a.T + 0.1 * numpy.eye(6), b @ b.T + 0.1 * numpy.eye(6)
    mu1, mu2 = rng.standard_normal((2, 6))
    reference = (
        (mu1 - mu2) @ (mu1 - mu2)
        + numpy.trace(s1 + s2)
        - 2 * numpy.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    )
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)


def test_fid_of_samples_approaches_the_closed_form():
    mean = numpy.array([1.0, -1.0, 0.0])
    x = gaussian(20000, numpy.zeros(3), numpy.ones(3), seed=2)
    y = gaussian(20000, mean, numpy.array([2.0, 1.0, 3.0]), seed=3)
    # 2 + (1 + 4 + 1 + 1 + 1 + 9) - 2 (2 + 1 + 3) = 2 + 17 - 12 = 7
    assert fid(x, y) == pytest.approx(7.0, rel=0.03)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    x, y = (
        gaussian(5, numpy.zeros(16), numpy.ones(16), 0),
        gaussian(5, numpy.ones(16), numpy.ones(16), 1),
    )
    assert math.isfinite(fid(x, y)) and fid(x, y) > 0


@pytest.mark.parametrize('mu2, sigma2', [([0, 0, 0], numpy.eye(2)), ([0, 0], numpy.eye(3))])
def test_frechet_distance_rejects_mismatched_shapes(mu2, sigma2):
    with pytest.raises(ValueError, match='shapes do not match'):
        frechet_distance([0, 0], numpy.eye(2), mu2, sigma2)


# --- KID ---------------------------------------------------------------------------------------


def test_unbiased_mmd_matches_a_hand_computation():
    # k(a, b) = (a b + 1)^3 in 1-d: within x: k(0, 1) = 1; within y: k(2, 3) = 343;
    # across: (1 + 1 + 27 + 64) / 4 = 23.25  ->  1 + 343 - 2 * 23.25 = 297.5.
    assert mmd2_unbiased(numpy.array([[0.0], [1.0]]), numpy.array([[2.0], [3.0]])) == 297.5


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    x = gaussian(1000, numpy.zeros(16), numpy.ones(16), seed=0)
    same = gaussian(800, numpy.zeros(16), numpy.ones(16), seed=1)
    other = gaussian(800, numpy.full(16, 0.5), numpy.ones(16), seed=2)
    mean_same, std_same = kid(x, same, n_subsets=20, subset_size=500)
    mean_other, _ = kid(x, other, n_subsets=20, subset_size=500)
    assert abs(mean_same) < 3 * std_same + 1e-3
    assert mean_other > 0.05 > abs(mean_same) * 10
    assert kid(x, other, n_subsets=3, seed=4) == kid(x, other, n_subsets=3, seed=4)


# --- precision / recall ------------------------------------------------------------------------


def test_knn_radii_exclude_the_point_itself():
    points = numpy.array([[0.0], [1.0], [3.0], [6.0]])
    numpy.testing.assert_allclose(knn_radii(points, 1), [1, 1, 2, 3])
    numpy.testing.assert_allclose(knn_radii(points, 2), [3, 2, 3, 5])


def modes(n_per_mode, centers, seed):
    rng = numpy.random.RandomState(seed)
    return numpy.concatenate([c + 0.1 * rng.standard_normal((n_per_mode, 2)) for c in centers])


CENTERS = [(10.0 * i, 10.0 * (i % 2)) for i in range(10)]


def test_precision_and_recall_of_identical_sets_are_one():
    x = modes(50, CENTERS, seed=0)
    assert precision_recall(x, x) == (1.0, 1.0)


def test_precision_and_recall_of_far_apart_sets_are_zero():
    x = modes(50, CENTERS, seed=0)
    assert precision_recall(x, x + 1000.0) == (0.0, 0.0)


def test_half_of_the_modes_gives_full_precision_and_half_recall():
    real = modes(100, CENTERS, seed=0)
    fake = modes(200, CENTERS[::2], seed=1)  # same count, only modes 0, 2, 4, 6, 8
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert recall == pytest.approx(0.5, abs=0.05)


# --- class scores ------------------------------------------------------------------------------


def test_inception_score_is_the_number_of_classes_for_confident_uniform_predictions():
    assert inception_score(numpy.eye(10)[numpy.arange(100) % 10]) == pytest.approx(10)
    assert inception_score(numpy.full((50, 10), 0.1)) == pytest.approx(1)
    assert inception_score(numpy.eye(10)[numpy.zeros(50, int)]) == pytest.approx(1)


def test_inception_score_matches_a_hand_computation():
    probs = numpy.array([[0.5, 0.5], [1.0, 0.0]])  # p(y) = (0.75, 0.25)
    kl = [0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25), math.log(1 / 0.75)]
    assert inception_score(probs) == pytest.approx(math.exp(numpy.mean(kl)))


def test_class_coverage_counts_classes_over_the_threshold_and_kl_to_uniform():
    uniform = numpy.eye(10)[numpy.arange(1000) % 10]
    assert class_coverage(uniform) == (10, pytest.approx(0, abs=1e-12))
    collapsed = numpy.eye(10)[numpy.zeros(1000, int)]
    assert class_coverage(collapsed) == (1, pytest.approx(math.log(10)))
    # 5 of 1,000 images (0.5%) do not make a class appear at the default 1%.
    almost = numpy.eye(10)[numpy.r_[numpy.zeros(995, int), numpy.ones(5, int)]]
    assert class_coverage(almost)[0] == 1
    assert class_coverage(almost, threshold=0.005)[0] == 2
    numpy.testing.assert_array_equal(class_histogram(almost), [995, 5, 0, 0, 0, 0, 0, 0, 0, 0])


def test_label_accuracy_is_the_share_of_agreeing_argmaxes():
    probs = numpy.eye(3)[[0, 1, 2, 2]]
    assert label_accuracy(probs, [0, 1, 2, 0]) == 0.75
    with pytest.raises(ValueError, match='3 labels for 4 images'):
        label_accuracy(probs, [0, 1, 2])


def test_real_statistics_of_the_same_features_give_perfect_scores():
    features = modes(30, CENTERS, seed=0)
    probs = numpy.eye(10)[numpy.arange(300) % 10]
    stats = RealStatistics(lambda images: (images, None), features)
    result = stats.compare(features, probs, labels=numpy.arange(300) % 10)
    assert result['fid'] == pytest.approx(0, abs=1e-8)
    # Not 0: the unbiased estimate leaves out k(x_i, x_i) within a set but not across.
    assert result['kid'] < 0
    assert (result['precision'], result['recall']) == (1.0, 1.0)
    assert result['classes'] == 10 and result['label_accuracy'] == 1.0
    assert result['is'] == pytest.approx(10)
    # Precision/recall compare equal counts: a fixed subset of the real set.
    subset, radii = stats.neighbourhood(100)
    assert subset.shape == (100, 2) and radii.shape == (100,)
    assert stats.neighbourhood(100)[0] is subset


def test_real_images_of_a_dataset_up_to_a_limit():
    data = fake_dataset(12)
    numpy.testing.assert_array_equal(real_images(data), data.images)
    subset = real_images(data, limit=5, seed=1)
    assert subset.shape == (5, 1, 8, 8)
    assert all(any((image == other).all() for other in data.images) for image in subset)
    numpy.testing.assert_array_equal(real_images(data.images), data.images)
    with pytest.raises(ValueError, match='empty'):
        real_images([])


# --- fitting images to a network ---------------------------------------------------------------


def test_fit_images_converts_channels_and_resizes():
    gray = numpy.zeros((2, 1, 32, 32), numpy.float32)
    assert fit_images(gray, size=28, channels=1).shape == (2, 1, 28, 28)
    assert fit_images(gray, size=16, channels=3).shape == (2, 3, 16, 16)
    rgb = numpy.ones((2, 3, 8, 8), numpy.float32)
    numpy.testing.assert_allclose(fit_images(rgb, size=8, channels=1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r'\(n, 1 or 3, H, W\)'):
        fit_images(numpy.zeros((2, 2, 8, 8)), size=8, channels=1)


# --- the digits classifier ---------------------------------------------------------------------


@pytest.fixture(scope='module')
def shipped():
    return classifier_module.load_digits_classifier()


def fixed_images(n=40, seed=0):
    """Digit-like inputs that depend on nothing but the seed: held-out digits, shifted, noised."""
    images = get_digits('test').images[:n]
    rng = numpy.random.RandomState(seed)
    return numpy.clip(numpy.roll(images, 1, axis=3) + rng.normal(0, 0.1, images.shape),
                      -1, 1).astype(numpy.float32)


def test_the_shipped_classifier_loads_without_training_or_a_cache(monkeypatch, tmp_path):
    def no_training(**kwargs):
        raise AssertionError('loading must not train')

    monkeypatch.setattr(classifier_module, 'train_digits_classifier', no_training)
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.cache to read or write
    monkeypatch.setenv('GAN_TRAINER_CACHE', str(tmp_path / 'cache'))
    model = classifier_module.load_digits_classifier()
    assert os.listdir(tmp_path) == []
    # The stored accuracy is what the weights score on the held-out digits here.
    test = get_digits('test')
    images, labels = test.images, test.labels
    assert model.accuracy(images, labels) == float(model.test_accuracy)
    assert float(model.test_accuracy) > 0.96


@pytest.mark.process
def test_the_shipped_weights_are_a_package_file_in_the_wheel(tmp_path):
    assert os.path.dirname(WEIGHTS) == os.path.dirname(classifier_module.__file__)
    # setup.py's build step (what a wheel is made of) copies it with the package.
    proc = subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    built = tmp_path / 'gan_trainer' / 'metrics' / 'digits_classifier.npz'
    assert built.read_bytes() == Path(WEIGHTS).read_bytes()


def test_the_embedding_of_fixed_inputs_is_deterministic(shipped):
    x = fixed_images()
    features, probs = shipped.embed(x)
    again = classifier_module.load_digits_classifier().embed(x, batchsize=7)
    numpy.testing.assert_array_equal(features, shipped.embed(x)[0])
    # Another batching (another BLAS call shape) changes at most the rounding.
    numpy.testing.assert_allclose(again[0], features, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(again[1], probs, rtol=1e-5, atol=1e-7)
    assert features.std() > 0.1 and (probs.argmax(1) == get_digits('test').labels[:40]).mean() > 0.5


def test_the_fid_of_fixed_samples_is_the_same_number_every_time(shipped):
    real = get_digits('train').images[:500]
    samples = fixed_images(200)
    first = RealStatistics(shipped.embed, real).measure(samples)['fid']
    rebuilt = classifier_module.load_digits_classifier()
    second = RealStatistics(rebuilt.embed, real.copy()).measure(samples.copy())['fid']
    assert first == second and first > 1


def test_a_bad_weights_file_is_a_one_line_error(tmp_path):
    (tmp_path / 'bad.npz').write_bytes(b'not an npz file')
    with pytest.raises(SnapshotError, match="'.*bad.npz' is not a readable .npz file") as error:
        classifier_module.load_digits_classifier(tmp_path / 'bad.npz')
    assert '\n' not in str(error.value)
    with pytest.raises(SnapshotError, match='does not exist'):
        classifier_module.load_digits_classifier(tmp_path / 'missing.npz')


def test_classifier_embeds_any_size_and_channel_count(shipped):
    for shape in [(5, 1, 28, 28), (5, 1, 32, 32), (5, 3, 28, 28)]:
        images = numpy.random.RandomState(0).uniform(-1, 1, shape).astype(numpy.float32)
        features, probs = shipped.embed(images, batchsize=2)
        assert features.shape == (5, 128) and probs.shape == (5, 10)
        numpy.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
        assert (features >= 0).all()  # after a ReLU


def test_a_little_training_already_beats_chance_on_held_out_digits():
    model = classifier_module.train_digits_classifier(n_train=1000, epochs=1)
    assert float(model.test_accuracy) > 0.5


#: How far a retrained classifier's held-out accuracy may be from the shipped
#: one's (97.2%, seed 0): ``benchmarks/digits_classifier.py --seeds 0,1,2,3,4``
#: measured 97.0% to 98.0% over seeds, and the same seed gave 97.2% and 97.6%
#: on two machines; 1.5 points (7 of the 500 digits) covers both with a margin.
RETRAIN_TOLERANCE = 0.015


@pytest.mark.slow
@pytest.mark.process  # the same proof on every stack: CI's first stack runs it
def test_retraining_reproduces_the_shipped_accuracy():
    # The full recipe (about 20 s on two idle cores), seed 0 as the shipped
    # file, by the script that made the file, as its user runs it.
    proc = subprocess.run([sys.executable, 'benchmarks/digits_classifier.py'], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # The first match of each line, or None: a changed output format fails the assertion
    # below with the script's output, not a StopIteration.
    retrained = next((m for x in lines if (m := re.match(r'seed 0: held-out accuracy ([\d.]+)%', x))),
                     None)
    shipped = next((m for x in lines
                    if x.startswith('shipped ') and (m := re.search(r'held-out accuracy ([\d.]+)% stored', x))),
                   None)
    assert retrained and shipped, proc.stdout
    assert abs(float(retrained[1]) - float(shipped[1])) / 100 <= RETRAIN_TOLERANCE


# --- ONNX / Inception-v3 without a download ----------------------------------------------------


def fake_inception(path, dim=2048, input_shape=('n', 3, 299, 299), logits=0):
    """An ONNX file shaped like the FID Inception: images -> mean per channel -> linear dim."""
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from onnx import TensorProto, helper, numpy_helper

    rng = numpy.random.RandomState(0)
    nodes = [
        helper.make_node('GlobalAveragePool', ['images'], ['pooled']),
        helper.make_node('Flatten', ['pooled'], ['flat']),
        helper.make_node('MatMul', ['flat', 'W'], ['pool3']),
    ]
    inits = [numpy_helper.from_array(rng.standard_normal((3, dim)).astype(numpy.float32), 'W')]
    outputs = [helper.make_tensor_value_info('pool3', TensorProto.FLOAT, ['n', dim])]
    if logits:
        nodes.append(helper.make_node('MatMul', ['flat', 'V'], ['logits']))
        inits.append(
            numpy_helper.from_array(rng.standard_normal((3, logits)).astype(numpy.float32), 'V')
        )
        outputs.append(helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['n', logits]))
    graph = helper.make_graph(
        nodes,
        'fake_inception',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, list(input_shape))],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_inception_features_run_an_onnx_file_of_the_right_shape(tmp_path):
    embed = inception_features(fake_inception(tmp_path / 'inception.onnx'), batchsize=4)
    images = numpy.random.RandomState(0).uniform(-1, 1, (6, 1, 28, 28)).astype(numpy.float32)
    features, probs = embed(images)
    assert features.shape == (6, 2048) and probs is None
    # Gray digits are repeated to RGB and resized to 299x299 first.
    expected, _ = embed(fit_images(images, size=299, channels=3))
    numpy.testing.assert_allclose(features, expected, rtol=1e-5)


def test_a_second_onnx_output_gives_class_probabilities(tmp_path):
    embed = OnnxFeatures(
        fake_inception(tmp_path / 'net.onnx', dim=8, input_shape=(2, 3, 16, 16), logits=5)
    )
    assert (embed.size, embed.batchsize, embed.dim) == (16, 2, 8)
    features, probs = embed(numpy.zeros((3, 3, 16, 16), numpy.float32))  # 3: padded to 2 + 2
    assert features.shape == (3, 8) and probs.shape == (3, 5)
    numpy.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


def one_line(error):
    text = str(error.value)
    assert '\n' not in text
    return text


def test_inception_without_a_file_says_where_to_get_the_weights(tmp_path):
    with pytest.raises(FeatureNetError) as e:
        inception_features(None)
    assert 'none was given' in one_line(e) and FID_WEIGHTS_URL in one_line(e)
    with pytest.raises(FeatureNetError) as e:
        inception_features(tmp_path / 'missing.onnx')
    assert 'missing.onnx' in one_line(e) and 'does not exist' in one_line(e)
    assert 'docs/metrics.md' in one_line(e)


def test_inception_file_of_the_wrong_shape_is_a_one_line_error(tmp_path):
    with pytest.raises(FeatureNetError) as e:
        inception_features(fake_inception(tmp_path / 'resnet.onnx', dim=1000))
    assert 'gives 1000-d features per image, not 2048-d' in one_line(e)
    assert FID_WEIGHTS_URL in one_line(e)
    with pytest.raises(FeatureNetError) as e:
        inception_features(fake_inception(tmp_path / 'flat.onnx', input_shape=('n', 3, 299)))
    assert 'takes input of shape' in one_line(e)


def test_a_file_that_is_not_onnx_is_a_one_line_error(tmp_path):
    pytest.importorskip('onnxruntime')
    path = tmp_path / 'weights.onnx'
    path.write_bytes(b'\x00garbage' * 10)
    with pytest.raises(FeatureNetError) as e, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        inception_features(path)
    assert 'cannot read Inception-v3 file' in one_line(e) and FID_WEIGHTS_URL in one_line(e)
