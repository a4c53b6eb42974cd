"""The embedded data's 4-level task (ELPV solar cells: defect probability 0, 1/3, 2/3, 1;
p=2/3 has 106 of 2,624 images), small, imbalanced and not ImageNet-like: the careful
practitioner's recipe, step by step from the main config.

    ./run.sh configs/elpv_levels.py                # the step chosen on validation: unweighted
    ./run.sh configs/elpv_levels.py:baseline       # any step
    ./run.sh sweep configs/elpv_levels.py          # every step: the ablation table
    ./run.sh tune configs/elpv_levels.py --trials 20   # the knobs searched (get_search_space)

Each step adds to the one before:
  baseline  the main config (EfficientNet-Lite0 from blocks_12, Adam 1e-3, 224 px, 6 epochs)
  weighted  + class-weighted loss ('balanced': rare classes count as much as common ones)
  native    + the cells' native 300 px (cracks are a few pixels wide)
  schedule  + warm-up and cosine decay, AdamW, label smoothing 0.1
  recipe    + fine-tuning from blocks_8, 8 epochs, flip test-time augmentation
  unweighted  the recipe without class weights

Split 60/15/25, so that choosing the checkpoint (best validation accuracy) and the step
rests on 394 validation images; the test split is scored once per run.
"""
from research.config import base_config, set_value, variant

STEPS = {
    'baseline': {},
    'weighted': {'loss.class_weights': 'balanced'},
    'native': {'data.image_size': 300},
    'schedule': {'optimizer.name': 'adamw', 'optimizer.weight_decay': 1e-4,
                 'optimizer.cosine': True, 'optimizer.warmup_epochs': 1.0,
                 'loss.label_smoothing': 0.1},
    'recipe': {'freeze.before': 'backbone/blocks_8', 'num_epochs': 8,
               'optimizer.learning_rate': 5e-4, 'evaluation.tta_flip': True},
    # the weights cost more overall accuracy on validation than they bought the rare classes
    'unweighted': {'loss.class_weights': ''},
}


def get_config(arg='unweighted'):
  step = variant(arg, STEPS, 'elpv_levels.py')
  config = base_config()
  config.num_epochs = 6
  config.batch_size = 20
  config.model.name = 'efficientnet_lite0'
  config.freeze.before = 'backbone/blocks_12'
  config.optimizer.update(dict(name='adam', learning_rate=1e-3))
  config.data.elpv_task = 'levels'
  config.data.split = (0.6, 0.15, 0.25)
  config.data.augment.update(dict(rotation=40.0, shear=0.2, zoom=0.2, hflip=True))
  config.checkpoint.keep = 1
  for name, values in STEPS.items():
    for key, value in values.items():
      set_value(config, key, value)
    if name == step:
      return config


def get_sweep():
  return [{'variant': name} for name in STEPS]


def get_search_space():
  """What `./run.sh tune` searches around the chosen step (research/experiment/tune.py):
  how deep to fine-tune, how long, at which resolution, the rate, the loss and flip TTA —
  sized for a 2-core CPU, where a trial takes 5-10 minutes (from blocks_8 at the native
  300 px a 3-epoch trial took 14: add them on a bigger machine). The median pruner stops
  poor trials early."""
  return {
      'optimizer.learning_rate': ('loguniform', 1e-4, 3e-3),
      'freeze.before': ['backbone/blocks_12', 'backbone/blocks_15', 'head'],
      'num_epochs': [3, 4],
      'data.image_size': [224, 260],
      'loss.class_weights': ['', 'balanced'],
      'loss.label_smoothing': ('uniform', 0.0, 0.2),
      'evaluation.tta_flip': [False, True],
  }
