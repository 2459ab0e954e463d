"""CIFAR_TorchVision_Captum_Insights: CIFAR-10 is downloaded in the notebook; here the torchvision stand-in's
generated CIFAR-shaped images (the model's weights ship with the tutorial). The driver is no notebook: an IPython
shell with a kernel stand-in lets ``render()`` display its widget as in Jupyter. Captum 0.9's wheel has no
``captum.insights``, so only our run gets past the imports."""

PRELUDE = '''from captum_tutorial_specs import _torchvision
_torchvision.install()
from IPython.core.interactiveshell import InteractiveShell
InteractiveShell.instance().kernel = object()  # a notebook's kernel, as render() looks for one
'''

REPLACE = {
    # stands in for the screenshot shown when the notebook runs without a browser: the Fetch a user clicks in the
    # widget (4 samples, Integrated Gradients), run on the visualizer's session, and what it returns
    4: '''fetched = visualizer.session.run({"method": "IntegratedGradients", "count": 4})
print(len(fetched["samples"]), "samples:", sorted(fetched["samples"][0]))
''',
}
