"""Segmentation_Interpret: torchvision's pretrained fcn_resnet101 is the stand-in's small FCN (random weights, the
same output dict and layer names: backbone.layer4[2].conv3; the bus and train scores lifted so that they are
predicted somewhere, as in the notebook's photo); the photo the notebook downloads is a generated scene; the input
is resized to 128 (640 in the notebook) so that the ablations run in seconds on this CPU. FeatureAblation's
feature_mask is the predicted class per pixel, ids with gaps (intellego took only 0 .. n - 1 before)."""

PRELUDE = "from captum_tutorial_specs import _torchvision\n_torchvision.install()\n"

REPLACE = {
    1: '''# the stand-in FCN (random weights), its bus (6) and train (19) scores lifted so that the scene shows them
fcn = models.segmentation.fcn_resnet101(pretrained=True).to(device).eval()
with torch.no_grad():
    fcn.classifier[4].bias[6] += 0.2
    fcn.classifier[4].bias[19] += 0.1
''',
    2: '''# the notebook's preprocessing at 128 instead of Resize(640)
preprocessing = transforms.Compose([transforms.Resize(128),
                                    transforms.ToTensor()])
normalize = transforms.Normalize(mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225])
''',
    5: '''# stands in for the downloaded photo: a generated scene with a bus (6) and a train (19)
_torchvision.SCENE_CLASSES[7] = (6, 19)
img = _torchvision.voc_scene(7, size=(320, 240))[0]
preproc_img = preprocessing(img)
plt.imshow(preproc_img.permute(1,2,0)); plt.axis('off'); plt.show()
''',
}
