"""Key tables: source module name (regex, full match) -> Flax module path.

Data only, in the style of jax-resnet's `pt2jax` tables. Leaf names are mapped
by `research.weights.port` (weight/bias/running_mean/running_var), which also
transposes kernels (torch OIHW -> Flax HWIO; depthwise (C,1,H,W) -> (H,W,1,C)
by the same transpose; Linear (out,in) -> (in,out)). First matching row wins;
a row whose target is None drops what it matches.
"""

# lukemelas / EfficientNet-Lite-PyTorch names.
EFFICIENTNET_LITE = (
    (r'_conv_stem', 'backbone/stem/conv'),
    (r'_bn0', 'backbone/stem/bn'),
    (r'_blocks\.(\d+)\._expand_conv', 'backbone/blocks_{0}/expand/conv'),
    (r'_blocks\.(\d+)\._bn0', 'backbone/blocks_{0}/expand/bn'),
    (r'_blocks\.(\d+)\._depthwise_conv', 'backbone/blocks_{0}/depthwise/conv'),
    (r'_blocks\.(\d+)\._bn1', 'backbone/blocks_{0}/depthwise/bn'),
    (r'_blocks\.(\d+)\._project_conv', 'backbone/blocks_{0}/project/conv'),
    (r'_blocks\.(\d+)\._bn2', 'backbone/blocks_{0}/project/bn'),
    (r'_conv_head', 'backbone/head/conv'),
    (r'_bn1', 'backbone/head/bn'),
    (r'_fc', 'head/logits'),
)

# torchvision names. features.1 has no expansion conv, so its indices shift.
MOBILENET_V2 = (
    (r'features\.0\.0', 'backbone/features_0/conv'),
    (r'features\.0\.1', 'backbone/features_0/bn'),
    (r'features\.1\.conv\.0\.0', 'backbone/features_1/depthwise/conv'),
    (r'features\.1\.conv\.0\.1', 'backbone/features_1/depthwise/bn'),
    (r'features\.1\.conv\.1', 'backbone/features_1/project/conv'),
    (r'features\.1\.conv\.2', 'backbone/features_1/project/bn'),
    (r'features\.(\d+)\.conv\.0\.0', 'backbone/features_{0}/expand/conv'),
    (r'features\.(\d+)\.conv\.0\.1', 'backbone/features_{0}/expand/bn'),
    (r'features\.(\d+)\.conv\.1\.0', 'backbone/features_{0}/depthwise/conv'),
    (r'features\.(\d+)\.conv\.1\.1', 'backbone/features_{0}/depthwise/bn'),
    (r'features\.(\d+)\.conv\.2', 'backbone/features_{0}/project/conv'),
    (r'features\.(\d+)\.conv\.3', 'backbone/features_{0}/project/bn'),
    (r'features\.18\.0', 'backbone/features_18/conv'),
    (r'features\.18\.1', 'backbone/features_18/bn'),
    (r'classifier\.1', 'head/logits'),
)

# torchvision ResNet names; `layerS.B` is Flax `layerS_B`.
RESNET = (
    (r'conv1', 'backbone/stem/conv'),
    (r'bn1', 'backbone/stem/bn'),
    (r'layer(\d)\.(\d+)\.conv(\d)', 'backbone/layer{0}_{1}/conv{2}/conv'),
    (r'layer(\d)\.(\d+)\.bn(\d)', 'backbone/layer{0}_{1}/conv{2}/bn'),
    (r'layer(\d)\.(\d+)\.downsample\.0', 'backbone/layer{0}_{1}/downsample/conv'),
    (r'layer(\d)\.(\d+)\.downsample\.1', 'backbone/layer{0}_{1}/downsample/bn'),
    (r'fc', 'head/logits'),
)

# torchvision GoogLeNet names; the auxiliary classifiers (training-time only) are not ported.
GOOGLENET = (
    (r'conv(\d)\.conv', 'backbone/conv{0}/conv'),
    (r'conv(\d)\.bn', 'backbone/conv{0}/bn'),
    (r'(inception\w+)\.branch1\.conv', 'backbone/{0}/branch1/conv'),
    (r'(inception\w+)\.branch1\.bn', 'backbone/{0}/branch1/bn'),
    (r'(inception\w+)\.branch(\d)\.(\d)\.conv', 'backbone/{0}/branch{1}_{2}/conv'),
    (r'(inception\w+)\.branch(\d)\.(\d)\.bn', 'backbone/{0}/branch{1}_{2}/bn'),
    (r'aux[12]\..*', None),
    (r'fc', 'head/logits'),
)
