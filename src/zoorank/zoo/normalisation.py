"""Input normalisation constants shared by the built-in configs and the general sources (one place)."""

#: torchvision / timm ImageNet statistics (RGB, [0, 1] pixels)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: HED's Caffe mean (BGR, [0, 255] pixels)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
