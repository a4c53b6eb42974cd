"""Using a trained model: predictions.csv for files and folders, and from Python for arrays."""
import csv

import numpy as np
from PIL import Image

from helpers import make_folder, truncate, write_image
from research.cli.main import main
from research.data.images import decode, read_bytes
from research.experiment.predict import predict_arrays
from research.experiment.run import restore
from test_train import train


def test_predict_writes_probabilities_skips_bad_images_and_matches_python(tmp_path, capsys):
  folder = make_folder(tmp_path / 'images', per_class=12)
  assert train(folder, tmp_path / 'run', 1) == 0
  new = tmp_path / 'new'
  good = [write_image(new / 'a' / f'{i}.png', v, size=57, seed=i) for i, v in enumerate((30, 220))]
  broken = truncate(write_image(new / 'broken.png', 100, size=200))
  single = write_image(tmp_path / 'one.jpg', 128)
  capsys.readouterr()
  assert main(['predict', str(tmp_path / 'run'), str(new), str(single)]) == 0
  out = capsys.readouterr().out
  assert 'skipping 1 unreadable images' in out
  assert out.strip().endswith(f'predictions: {tmp_path / "run" / "predictions.csv"}')
  skipped = (tmp_path / 'run' / 'predictions_skipped.txt').read_text()
  assert skipped.startswith(f'{broken}\t')

  with open(tmp_path / 'run' / 'predictions.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['path'] for r in rows] == [str(p) for p in good] + [str(single)]
  assert list(rows[0]) == ['path', 'predicted', 'p(bright)', 'p(dark)']
  probs = np.array([[float(r['p(bright)']), float(r['p(dark)'])] for r in rows])
  np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
  assert [r['predicted'] for r in rows] == [('bright', 'dark')[i] for i in probs.argmax(1)]

  run = restore(tmp_path / 'run')
  arrays = [np.asarray(decode(read_bytes(str(p)))) for p in (*good, single)]
  np.testing.assert_allclose(predict_arrays(run, arrays), probs, atol=1e-6)
  assert predict_arrays(run, [np.asarray(Image.open(single))]).shape == (1, 2)

  assert main(['predict', str(tmp_path / 'run'), str(tmp_path / 'nowhere')]) == 2
  assert capsys.readouterr().err == (f'error: {tmp_path / "nowhere"} does not exist: pass image '
                                     f'files or folders of images\n')
