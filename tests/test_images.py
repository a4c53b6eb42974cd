"""Every kind of bad image either loads correctly or is skipped and listed: never a crash,
a hang or unbounded memory. Explicit cases, then 1,200 fuzzed files (hypothesis)."""
import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from PIL import Image

from research.data.images import MAX_PIXELS, scan_images, inspect_image, load_image

GRADIENT = np.tile(np.linspace(0, 255, 24).astype(np.uint8), (16, 1))  # bright on the right


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def rgb(value=(200, 50, 10)) -> Image.Image:
  return Image.new('RGB', (24, 16), value)


def loads_as(tmp_path, name: str, data: bytes, size: int = 8):
  path = tmp_path / name
  path.write_bytes(data)
  assert inspect_image(str(path))[0] is None
  return load_image(str(path), size)


def skipped(tmp_path, name: str, data: bytes) -> str:
  path = tmp_path / name
  path.write_bytes(data)
  bad = scan_images([str(path)], 'skip')[0]
  assert list(bad) == [str(path)]
  return bad[str(path)]


def test_greyscale_palette_cmyk_and_tiny_images_load_as_rgb(tmp_path):
  assert (loads_as(tmp_path, 'grey.png', encoded(Image.new('L', (5, 5), 90), 'PNG')) == 90).all()
  palette = rgb().convert('P', palette=Image.ADAPTIVE)
  assert (loads_as(tmp_path, 'p.png', encoded(palette, 'PNG')) == (200, 50, 10)).all()
  cmyk = loads_as(tmp_path, 'cmyk.jpg', encoded(rgb().convert('CMYK'), 'JPEG', quality=100))
  assert np.abs(cmyk.astype(int) - (200, 50, 10)).max() <= 3
  assert (loads_as(tmp_path, 'tiny.png', encoded(Image.new('RGB', (1, 1), (1, 2, 3)), 'PNG'))
          == (1, 2, 3)).all()


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
  image = Image.fromarray(np.full((4, 4), 32896, np.uint16))  # 32896 / 257 = 128
  assert (loads_as(tmp_path, 'sixteen.png', encoded(image, 'PNG')) == 128).all()


def test_transparent_pixels_become_white(tmp_path):
  image = Image.new('RGBA', (4, 4), (10, 20, 30, 0))
  image.putpixel((0, 0), (10, 20, 30, 255))
  pixels = loads_as(tmp_path, 'alpha.png', encoded(image, 'PNG'), size=4)
  assert (pixels[0, 0] == (10, 20, 30)).all() and (pixels[3, 3] == 255).all()
  palette = Image.new('P', (4, 4), 0)
  palette.putpalette([0, 0, 0, 9, 9, 9])
  palette.info['transparency'] = 0
  assert (loads_as(tmp_path, 'ptrans.png', encoded(palette, 'PNG', transparency=0)) == 255).all()


def test_exif_orientation_is_applied(tmp_path):
  image = Image.fromarray(np.stack([GRADIENT] * 3, -1))  # 24 wide, 16 high, bright on the right
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 clockwise to view"
  pixels = loads_as(tmp_path, 'rotated.jpg', encoded(image, 'JPEG', exif=exif, quality=95),
                    size=16)
  row_means = pixels[..., 0].mean(axis=1)  # rotated: the bright right side is now the bottom
  assert row_means[0] < row_means[-1] - 100


@pytest.mark.parametrize('name,data,reason', [
    ('empty.jpg', b'', 'UnidentifiedImageError'),
    ('notes.png', b'these are my notes, not an image\n' * 10, 'UnidentifiedImageError'),
    ('cut.png', encoded(rgb(), 'PNG')[:60], 'OSError'),
    ('cut.jpg', encoded(Image.fromarray(np.stack([GRADIENT] * 3, -1)), 'JPEG')[:300], 'OSError'),
])
def test_broken_files_are_skipped_with_their_reason(tmp_path, name, data, reason):
  assert skipped(tmp_path, name, data).startswith(reason)


PEAK_GROWTH = """
import re, sys
from research.data.images import inspect_image
kib = lambda key: int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read())[1])
open('/proc/self/clear_refs', 'w').write('5')  # the peak (VmHWM) starts again from here
before = kib('VmRSS')
reason, _ = inspect_image(sys.argv[1])
print(kib('VmHWM') - before, reason)
"""


def peak_growth_kib(path) -> tuple[int, str]:
  """(growth of the peak memory, reason) of checking `path`, in a fresh process with its peak
  reset (Linux): a lifetime peak (ru_maxrss) says nothing after imports and earlier tests."""
  out = subprocess.run([sys.executable, '-c', PEAK_GROWTH, str(path)], capture_output=True,
                       text=True, check=True).stdout.split(' ', 1)
  return int(out[0]), out[1].strip()


def test_a_huge_declared_image_is_refused_before_decoding(tmp_path):
  (tmp_path / 'huge.png').write_bytes(encoded(Image.new('1', (20_000, 20_000)), 'PNG'))
  growth, reason = peak_growth_kib(tmp_path / 'huge.png')  # 400 M pixels, 50 KB on disk
  assert reason.startswith(('ImageTooLarge', 'DecompressionBomb')) and growth < 50_000  # KiB
  (tmp_path / 'large.png').write_bytes(encoded(Image.new('1', (6_000, 6_000)), 'PNG'))
  growth, reason = peak_growth_kib(tmp_path / 'large.png')  # decoded: the probe sees it
  assert reason == 'None' and growth > 100_000  # 108 MB as RGB
  just_over = int(MAX_PIXELS ** 0.5) + 1
  assert skipped(tmp_path, 'big.png', encoded(Image.new('1', (just_over, just_over)), 'PNG')
                 ).startswith('ImageTooLarge')


SEEDS = [encoded(rgb(), 'PNG'), encoded(rgb(), 'JPEG'), encoded(rgb(), 'GIF'),
         encoded(rgb(), 'BMP'), encoded(rgb(), 'TIFF'), encoded(rgb(), 'WEBP'),
         encoded(Image.new('L', (9, 7), 3), 'PNG'), encoded(Image.new('RGBA', (9, 7)), 'PNG'),
         encoded(Image.fromarray(np.zeros((5, 5), np.uint16)), 'PNG')]


@st.composite
def damaged(draw):
  """A valid file of some format and mode, truncated, overwritten and/or spliced."""
  data = bytearray(draw(st.sampled_from(SEEDS)))
  for _ in range(draw(st.integers(1, 4))):
    action = draw(st.sampled_from(['truncate', 'overwrite', 'insert', 'delete']))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if action == 'truncate':
      data = data[:at]
    elif action == 'overwrite':
      chunk = draw(st.binary(min_size=1, max_size=8))
      data[at:at + len(chunk)] = chunk
    elif action == 'insert':
      data[at:at] = draw(st.binary(min_size=1, max_size=64))
    else:
      del data[at:at + draw(st.integers(1, 64))]
  return bytes(data)


@settings(max_examples=1200, deadline=2000,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=damaged(), suffix=st.sampled_from(['.png', '.jpg', '.gif', '.tif', '.webp']))
def test_fuzzed_files_load_as_rgb_or_are_skipped(tmp_path, data, suffix):
  path = tmp_path / f'fuzzed{suffix}'
  path.write_bytes(data)
  reason = inspect_image(str(path))[0]
  event('skipped' if reason else 'loaded')  # counts: pytest --hypothesis-show-statistics
  if reason is None:  # passed the check: training must be able to load it
    pixels = load_image(str(path), 8)
    assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
