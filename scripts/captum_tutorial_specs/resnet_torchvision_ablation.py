"""Resnet_TorchVision_Ablation: torchvision's pretrained resnet18 is the stand-in's class (random weights); VOC 2012
is the stand-in's generated scenes (scene 91 with a bottle and a tv monitor, the classes the notebook groups);
the ImageNet class index is generated; OpenCV (not installed) is replaced by the same masking in NumPy."""

PRELUDE = ("from captum_tutorial_specs import _torchvision\n_torchvision.install()\n"
           "_torchvision.SCENE_CLASSES[91] = (5, 20)  # bottle, tvmonitor\n")

REPLACE = {
    5: '''# stands in for imagenet_class_index.json: {"i": [wordnet id, label]}
idx_to_labels = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
''',
    6: '''# the notebook's cell, with the class index from the cell above instead of re-reading the json file
img_to_resnet_input = T.Compose([
 T.ToTensor(),
 T.Normalize(
     mean=[0.485, 0.456, 0.406],
     std=[0.229, 0.224, 0.225]
 )
])

def classify(img, print_result=True):
    output = resnet(img_to_resnet_input(img).unsqueeze(0))
    output = F.softmax(output, dim=1)
    prediction_score, pred_label_idx = torch.topk(output, 1)
    prediction_score.squeeze_()
    pred_label_idx.squeeze_()
    if print_result:
        predicted_label = idx_to_labels[str(pred_label_idx.item())][1]
        print('Predicted:', predicted_label, "id =", pred_label_idx.item(), 'with a score of:',
              prediction_score.squeeze().item())
    return pred_label_idx.item(), prediction_score.item()
''',
    14: '''# the notebook's cell with cv2.bitwise_and(img_arr, img_arr, mask=m) as NumPy (OpenCV is not installed)
cV2_mask = np.array(feature_mask)
cV2_mask[feature_mask == 0] = 1
cV2_mask[feature_mask == 1] = 0
cV2_mask[feature_mask == 2] = 1
cV2_mask[feature_mask == 3] = 0
cV2_mask = np.expand_dims(cV2_mask.squeeze(), axis=2).astype(np.uint8)

img_arr = np.transpose(T.ToTensor()(img).numpy(),  (1,2,0))
img_without_bottles = np.where(cV2_mask != 0, img_arr, 0).astype(img_arr.dtype)
plt.imshow(img_without_bottles); plt.axis('off'); plt.show()
''',
}
