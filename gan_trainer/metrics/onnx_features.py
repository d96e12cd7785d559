"""Inception-v3 (or any network) as a feature network, from an ONNX file.

The FID that papers report uses the 2,048-d pool3 activations of the
Inception-v3 that Heusel et al. took from TensorFlow (``inception-2015-12-05``),
on images resized to 299x299, for 50,000 generated images against the
training set. This package does not download those weights. Export them
once (on any machine with PyTorch; ``pytorch-fid`` ports them) to ONNX and
pass the file; ``docs/metrics.md`` shows the export script::

    from gan_trainer.metrics import inception_features
    embed = inception_features('inception_fid.onnx')   # checks the file now
    features, _ = embed(images)                        # (n, 2048)

:class:`OnnxFeatures` runs the file with ONNX Runtime (``pip install -e
'.[onnx]'``). It scales nothing (the images are already in [-1, 1], the
range the FID Inception expects), repeats gray images to 3 channels and
resizes them bilinearly to the model's input side. The model's first output
is taken as the features (flattened per image); a second output, if there is
one, as class logits, which then give the class-based scores too.
"""

from __future__ import annotations

import os

import numpy

from gan_trainer.metrics.features import fit_images

#: The FID Inception-v3 weights as ported to PyTorch by pytorch-fid.
FID_WEIGHTS_URL = (
    'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
    'pt_inception-2015-12-05-6726825d.pth'
)
#: How to get the FID Inception-v3 file; the end of every error about it.
WHERE_TO_GET_WEIGHTS = (
    f'export the FID Inception-v3 ({FID_WEIGHTS_URL}, via pytorch-fid) to ONNX '
    'as docs/metrics.md shows'
)


class FeatureNetError(ValueError):
    """A feature network file is missing, unreadable or has the wrong shape."""


def _static(dim) -> int | None:
    """A fixed dimension of an ONNX shape, or None for a named/unknown one."""
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxFeatures:
    """A feature network (see :mod:`gan_trainer.metrics.features`) run by ONNX Runtime.

    The file is opened and run once on a blank image at construction, so a
    wrong file fails here, with one line, rather than at the first
    measurement hours into training.

    Args:
        path: The ``.onnx`` file; its first input takes ``(n, C, H, W)``
            float32 images in [-1, 1] (``C`` 1 or 3).
        dim: Required feature size (2048 for Inception-v3), or None for any.
        size: Input side to resize to when the model's input side is not
            fixed in the file (299 for Inception-v3).
        batchsize: Images per run; ignored when the file fixes the batch size.
        what: What the file should hold, for error messages.
        advice: Where to get a right file, for error messages.

    Raises:
        FeatureNetError: For a missing or unreadable file, an input that is
            not ``(n, 1 or 3, H, W)``, or features that are not ``dim``-d.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        *,
        dim: int | None = None,
        size: int = 299,
        batchsize: int = 50,
        what: str = 'feature network',
        advice: str = 'pass an ONNX file that maps (n, C, H, W) images to features',
    ):
        if path is None:
            raise FeatureNetError(f'{what} features need an ONNX file and none was given: {advice}')
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FeatureNetError(f"{what} file '{path}' does not exist: {advice}")
        try:
            import onnxruntime
        except ImportError:
            raise FeatureNetError(
                f"reading '{path}' needs onnxruntime: pip install -e '.[onnx]'"
            ) from None
        try:
            self.session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        # onnxruntime raises its own exception types (Fail, InvalidGraph, ...).
        except Exception as e:  # noqa: BLE001
            reason = ' '.join(str(e).split())[:200]
            raise FeatureNetError(
                f"cannot read {what} file '{path}' ({reason}): {advice}"
            ) from None
        self.path = path
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape)
        if len(shape) != 4 or _static(shape[1]) not in (1, 3):
            raise FeatureNetError(
                f"{what} file '{path}' takes input of shape {shape}, not (n, 3, H, W) "
                f'images: {advice}'
            )
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in outputs[:2]]
        self.channels = shape[1]
        self.size = _static(shape[2]) or size
        fixed_batch = _static(shape[0])
        self.batchsize = fixed_batch or batchsize
        features, _ = self._run(
            numpy.zeros((1, self.channels, self.size, self.size), numpy.float32)
        )
        self.dim = features.shape[1]
        if dim is not None and self.dim != dim:
            raise FeatureNetError(
                f"{what} file '{path}' gives {self.dim}-d features per image, not {dim}-d "
                f'(wrong model or output): {advice}'
            )

    def _run(self, x: numpy.ndarray):
        n = len(x)
        if n < self.batchsize and _static(self.session.get_inputs()[0].shape[0]):
            # A model exported with a fixed batch: pad with blanks, then drop them.
            x = numpy.concatenate([x, numpy.zeros((self.batchsize - n, *x.shape[1:]), x.dtype)])
        out = self.session.run(self.output_names, {self.input_name: x})
        features = numpy.asarray(out[0], numpy.float32)[:n].reshape(n, -1)
        probs = None
        if len(out) > 1:
            logits = numpy.asarray(out[1], numpy.float64)[:n].reshape(n, -1)
            e = numpy.exp(logits - logits.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        return features, probs

    def __call__(self, images):
        """``(features (n, dim), probs (n, K) or None)`` of images ``(n, C, H, W)`` in [-1, 1]."""
        n = len(images)
        if n == 0:
            raise ValueError('no images to embed')
        feats, probs = [], []
        for i in range(0, n, self.batchsize):
            x = fit_images(images[i : i + self.batchsize], size=self.size, channels=self.channels)
            f, p = self._run(x)
            feats.append(f)
            probs.append(p)
        return (numpy.concatenate(feats), None if probs[0] is None else numpy.concatenate(probs))


def inception_features(path: str | os.PathLike | None, *, batchsize: int = 50) -> OnnxFeatures:
    """The standard FID feature network: Inception-v3 pool3, 2048-d, 299x299 input.

    Args:
        path: ONNX export of the FID Inception-v3 (see the module docstring).
        batchsize: Images per run.

    Raises:
        FeatureNetError: One line that says what is wrong and where to get
            the weights.
    """
    return OnnxFeatures(
        path,
        dim=2048,
        size=299,
        batchsize=batchsize,
        what='Inception-v3',
        advice=WHERE_TO_GET_WEIGHTS,
    )
