"""Building blocks shared by the ported backbones.

Every `ConvBN` and `InvertedResidual` taps its output (see `tap`), so any of
them can be read back (block-by-block parity tests) or differentiated against
(Grad-CAM) by its module path, e.g. ``backbone/blocks_15`` or ``backbone/head``.
"""
import contextlib
import contextvars
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

TAP = 'out'
_PORTABLE = contextvars.ContextVar('portable_formulations', default=False)


@contextlib.contextmanager
def portable_formulations():
  """Traces, inside this block, the formulations every backend and converter understands
  (`lax` convolutions, grouped for depthwise) instead of the CPU ones (shifted
  multiply-adds with a hand-written backward, 1x1 convolutions as matrix products): the
  same function, as the graph an exporter writes (ONNX `Conv`, not thousands of slices)."""
  token = _PORTABLE.set(True)
  try:
    yield
  finally:
    _PORTABLE.reset(token)


def cpu_formulations() -> bool:
  """Whether the layers below trace their CPU formulations: on the CPU, outside
  `portable_formulations`."""
  return jax.default_backend() == 'cpu' and not _PORTABLE.get()


def tap(module: nn.Module, x: jnp.ndarray) -> jnp.ndarray:
  """Makes `x` readable ('intermediates') and differentiable ('perturbations').

  Both are no-ops unless the caller asks for those collections.
  """
  x = module.perturb(TAP, x)
  module.sow('intermediates', TAP, x, init_fn=lambda: None, reduce_fn=lambda _, v: v)
  return x


def call_order(model, *inputs) -> list[str]:
  """Module paths in the order the model first calls them (jax transforms sort dict keys)."""
  order = []

  def record(next_fun, args, kwargs, context):
    path = '/'.join(context.module.path)
    if path not in order:
      order.append(path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(model.init, jax.random.key(0), *inputs)
  return order


def pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
  """'SAME' is TensorFlow's (the odd pixel goes bottom/right); 'symmetric' is torch's k//2;
  'VALID' is none."""
  if padding == 'symmetric':
    return kernel // 2, kernel // 2
  if padding == 'VALID':
    return 0, 0
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def max_pool(x, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False):
  """torch's MaxPool2d: `padding` pixels of -inf on every side; with `ceil_mode` the output
  rounds up, but the last window still starts inside the (left-padded) input."""
  def out_and_pads(size):
    out = -(-(size + 2 * padding - kernel) // stride) if ceil_mode else (
        (size + 2 * padding - kernel) // stride)
    out += 1
    if ceil_mode and (out - 1) * stride >= size + padding:
      out -= 1
    return padding, max((out - 1) * stride + kernel - size - padding, 0)

  pads_hw = [out_and_pads(n) for n in x.shape[1:3]]
  x = jnp.pad(x, ((0, 0), *pads_hw, (0, 0)), constant_values=-jnp.inf)
  if cpu_formulations():
    return _max_pool(x, kernel, stride)
  return nn.max_pool(x, window_shape=(kernel, kernel), strides=(stride, stride))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(x, kernel: int, stride: int):
  return nn.max_pool(x, window_shape=(kernel, kernel), strides=(stride, stride))


def _max_pool_fwd(x, kernel, stride):
  y = _max_pool(x, kernel, stride)
  return y, (x, y)


def _max_pool_bwd(kernel, stride, residuals, dy):
  """Each window's gradient goes to its first largest input in row-major order, as XLA's
  select-and-scatter (and torch) send it: the window's taps in turn, each taking dy where
  it equals the maximum and no earlier tap did, added back at its strided positions.
  XLA:CPU's own backward is a variadic reduce-window over four index arrays, 5-10x slower."""
  x, y = residuals
  s, (out_h, out_w) = stride, y.shape[1:3]
  zero, taken = jnp.zeros((), dy.dtype), jnp.zeros(y.shape, bool)
  dx = jnp.zeros_like(x)
  for i in range(kernel):
    for j in range(kernel):
      window = x[:, i:i + (out_h - 1) * s + 1:s, j:j + (out_w - 1) * s + 1:s]
      here = (window == y) & ~taken
      taken = taken | here
      dx = dx + jax.lax.pad(jnp.where(here, dy, zero), zero, (
          (0, 0, 0), (i, x.shape[1] - i - (out_h - 1) * s - 1, s - 1),
          (j, x.shape[2] - j - (out_w - 1) * s - 1, s - 1), (0, 0, 0)))
  return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


Padding = str | tuple[tuple[int, int], tuple[int, int]]  # a `pads` mode, or explicit pixels


def _shifted_sum(x, w, stride: int, out_h: int, out_w: int):
  """sum over (i, j) of x[i::stride, j::stride] * w[i, j]: one fused loop on XLA."""
  k, s, out = w.shape[0], stride, 0
  for i in range(k):
    for j in range(k):
      out = out + x[:, i:i + (out_h - 1) * s + 1:s, j:j + (out_w - 1) * s + 1:s, :] * w[i, j, 0]
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, w, stride: int, padding):
  k = w.shape[0]
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return _shifted_sum(x, w, stride, (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1)


def _depthwise_fwd(x, w, stride, padding):
  return _depthwise(x, w, stride, padding), (x, w)


def _depthwise_bwd(stride, padding, residuals, dy):
  """The kernel gradient as one variadic reduction (one pass over x and dy, k*k sums)
  and the input gradient as the same shifted sum over the padded dy with the kernel
  flipped (by phases when strided): autodiff's k*k separate reductions and pads cost
  2-4x more. The reduction runs over images and rows first, then over columns: XLA:CPU
  reduces to (columns, channels) with contiguous reads, 1.5-3x faster than over all three
  at once; the barrier keeps XLA from fusing dy's producer (a BatchNorm backward) into
  that reduction, where it would run with strided reads."""
  x, w = residuals
  k, s = w.shape[0], stride
  x, dy = jax.lax.optimization_barrier((x, dy))
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  out_h, out_w = dy.shape[1:3]
  products = [xp[:, i:i + (out_h - 1) * s + 1:s, j:j + (out_w - 1) * s + 1:s, :] * dy
              for i in range(k) for j in range(k)]
  rows = jax.lax.reduce(products, [jnp.zeros((), dy.dtype)] * len(products),
                        lambda a, b: [p + q for p, q in zip(a, b)], (0, 1))
  dw = jnp.stack([r.sum(0) for r in rows]).reshape(w.shape).astype(w.dtype)
  size_h, size_w = xp.shape[1:3]
  if s == 1:
    dyp = jnp.pad(dy, ((0, 0), (k - 1, size_h - out_h), (k - 1, size_w - out_w), (0, 0)))
    dxp = _shifted_sum(dyp, w[::-1, ::-1], 1, size_h, size_w)
  else:
    dxp = _strided_input_gradient(dy, w, s, size_h, size_w)
  (top, _), (left, _) = padding
  return dxp[:, top:top + x.shape[1], left:left + x.shape[2]].astype(x.dtype), dw


def _strided_input_gradient(dy, w, s: int, size_h: int, size_w: int):
  """The padded input's gradient of a stride-`s` depthwise conv, one output phase (p, q) at
  a time: the pixels s*m + p, s*n + q receive dy through the taps w[p::s, q::s] only, a
  stride-1 shifted sum over dy; the s*s phases are then interleaved. (The same sum over
  dy dilated by s-1 zeros does s*s times the multiply-adds.)"""
  taps = -(-w.shape[0] // s)
  out_h, out_w = dy.shape[1:3]
  rows, cols = -(-size_h // s), -(-size_w // s)
  dyz = jnp.pad(dy, ((0, 0), (taps - 1, rows - out_h), (taps - 1, cols - out_w), (0, 0)))
  phases = []
  for p in range(s):
    for q in range(s):
      sub, y = w[p::s, q::s], jnp.zeros((dy.shape[0], rows, cols, dy.shape[3]), dy.dtype)
      for t in range(sub.shape[0]):
        for u in range(sub.shape[1]):
          y = y + dyz[:, taps - 1 - t:taps - 1 - t + rows,
                      taps - 1 - u:taps - 1 - u + cols, :] * sub[t, u, 0]
      phases.append(y)
  full = jnp.stack(phases, axis=3).reshape(dy.shape[0], rows, cols, s, s, dy.shape[3])
  full = full.transpose(0, 1, 3, 2, 4, 5).reshape(dy.shape[0], rows * s, cols * s, dy.shape[3])
  return full[:, :size_h, :size_w]


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def grouped_conv(x, w, stride: int, padding) -> jnp.ndarray:
  """A depthwise conv as XLA's grouped convolution (cuDNN's on a GPU)."""
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=x.shape[-1])


def depthwise_conv(x, w, stride: int, padding: Padding):
  """Depthwise conv with a (k, k, 1, C) kernel. On CPU: k*k shifted multiply-adds that XLA
  fuses into one loop, with a hand-written backward pass (XLA:CPU runs a
  `feature_group_count=C` convolution 5-12x slower, BENCHMARKS.md); elsewhere the grouped
  convolution."""
  k = w.shape[0]
  if isinstance(padding, str):
    padding = tuple(pads(n, k, stride, padding) for n in x.shape[1:3])
  padding, w = tuple(map(tuple, padding)), w.astype(x.dtype)
  if cpu_formulations():
    return _depthwise(x, w, stride, padding)
  return grouped_conv(x, w, stride, padding)


def conv2d(x, w, stride: int, padding: Padding):
  """A dense convolution, NHWC x (kh, kw, C_in, C_out). On CPU a 1x1 kernel is a (strided)
  slice and one matrix product: XLA:CPU runs it 2-3x faster than `lax.conv`, forward and
  backward (BENCHMARKS.md); other kernels and other backends use `lax.conv`."""
  w = w.astype(x.dtype)  # compute in the activations' dtype (float32 or bfloat16)
  if isinstance(padding, str):
    padding = tuple(pads(n, k, stride, padding) for n, k in zip(x.shape[1:3], w.shape[:2]))
  if w.shape[:2] == (1, 1) and not any(map(any, padding)) and cpu_formulations():
    return pointwise_conv(x, w, stride)
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def pointwise_conv(x, w, stride: int):
  """A 1x1 convolution without padding as a matrix product, with a hand-written backward."""
  return jnp.dot(x[:, ::stride, ::stride], w[0, 0])


def _pointwise_fwd(x, w, stride):
  xs = x[:, ::stride, ::stride]
  return jnp.dot(xs, w[0, 0]), (xs, w, x.shape)


def _pointwise_bwd(stride, residuals, dy):
  """The kernel gradient xs^T dy contracts over every pixel, so one operand is transposed.
  Autodiff's dot transposes dy, and XLA:CPU fuses that transpose into dy's producer (a
  BatchNorm backward), which then reads its inputs a whole row apart (docs/speed.md).
  Written as xs^T dy after a barrier, the transpose falls on xs, alone."""
  xs, w, shape = residuals
  xs, dy = jax.lax.optimization_barrier((xs, dy))
  pixels = lambda a: a.reshape(-1, a.shape[-1])
  dw = (pixels(xs).T @ pixels(dy)).reshape(w.shape)
  dxs = jnp.dot(dy, w[0, 0].T)
  if stride == 1:
    return dxs, dw
  (n, h, wd, c), (oh, ow) = shape, dxs.shape[1:3]
  zero = jnp.zeros((), dxs.dtype)
  dx = jax.lax.pad(dxs, zero, ((0, 0, 0), (0, h - (oh - 1) * stride - 1, stride - 1),
                               (0, wd - (ow - 1) * stride - 1, stride - 1), (0, 0, 0)))
  return dx, dw


pointwise_conv.defvjp(_pointwise_fwd, _pointwise_bwd)


class Conv(nn.Module):
  """`nn.Conv` (same parameters: a (kh, kw, C_in, C_out) 'kernel', optional 'bias', same
  initialisers) computed by `conv2d`."""
  features: int
  kernel: int | tuple[int, int] = 1
  stride: int = 1
  padding: Padding = 'SAME'
  use_bias: bool = False

  @nn.compact
  def __call__(self, x):
    k = (self.kernel,) * 2 if isinstance(self.kernel, int) else tuple(self.kernel)
    w = self.param('kernel', nn.initializers.lecun_normal(), (*k, x.shape[-1], self.features))
    y = conv2d(x, w, self.stride, self.padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y


class DepthwiseConv(nn.Module):
  """Same parameter as `nn.Conv(C, groups=C)`: a (k, k, 1, C) kernel, no bias."""
  kernel: int
  stride: int = 1
  padding: Padding = 'SAME'
  param_name: str = 'kernel'  # Keras ports name it 'depthwise_kernel', as Keras does

  @nn.compact
  def __call__(self, x):
    k = self.kernel
    w = self.param(self.param_name, nn.initializers.lecun_normal(), (k, k, 1, x.shape[-1]))
    return depthwise_conv(x, w, self.stride, self.padding)


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm -> optional activation."""
  features: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1  # 1, or the channel count for a depthwise conv
  padding: str = 'SAME'
  act: Callable | None = nn.relu6
  bn_eps: float = 1e-3
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.groups == 1:
      padding = tuple(pads(n, self.kernel, self.stride, self.padding) for n in x.shape[1:3])
      x = Conv(self.features, self.kernel, self.stride, padding, name='conv')(x)
    else:  # depthwise: groups == channels
      x = DepthwiseConv(self.kernel, self.stride, self.padding, name='conv')(x)
    x = nn.BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_eps, dtype=x.dtype, name='bn')(
        x, use_running_average=not train)
    if self.act is not None:
      x = self.act(x)
    return tap(self, x)


class InvertedResidual(nn.Module):
  """MobileNetV2 block = EfficientNet's MBConv without squeeze-excite.

  expand 1x1 (skipped when expand_ratio == 1) -> depthwise kxk -> project 1x1,
  with a residual connection when the shape is unchanged.
  """
  in_features: int
  out_features: int
  kernel: int
  stride: int
  expand_ratio: int
  padding: str = 'SAME'
  bn_eps: float = 1e-3
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda **kw: ConvBN(padding=self.padding, bn_eps=self.bn_eps,
                               bn_momentum=self.bn_momentum, **kw)
    hidden = self.in_features * self.expand_ratio
    y = x
    if self.expand_ratio != 1:
      y = conv(features=hidden, name='expand')(y, train)
    y = conv(features=hidden, kernel=self.kernel, stride=self.stride, groups=hidden,
             name='depthwise')(y, train)
    y = conv(features=self.out_features, act=None, name='project')(y, train)
    if self.stride == 1 and self.in_features == self.out_features:
      y = y + x
    return tap(self, y)

