"""Captum-compatible attribution classes: ``from intellego.attr import IntegratedGradients``.

Porting Captum code means changing ``captum.attr`` to ``intellego.attr`` in the imports.
"""

from . import visualization
from ._base import (
    Attribution,
    GradientAttribution,
    InternalAttribution,
    LayerAttribution,
    NeuronAttribution,
    PerturbationAttribution,
)
from .ablation import FeatureAblation, FeaturePermutation, Occlusion
from .ablation_layer import LayerFeatureAblation, LayerFeaturePermutation, NeuronFeatureAblation
from .cam import GuidedGradCam, LayerCam, LayerGradCam, LayerGradCamPlusPlus, LayerHiResCam, LayerXGradCam
from .cam_score import LayerEigenCam, LayerScoreCam
from .dataloader import DataLoaderAttribution
from .deep_lift import DeepLift, DeepLiftShap
from .deep_lift_layer import LayerDeepLift, LayerDeepLiftShap, NeuronDeepLift, NeuronDeepLiftShap
from .gradient import InputXGradient, Saliency
from .gradient_layer import LayerActivation, LayerGradientXActivation, NeuronGradient
from .gradient_shap import GradientShap
from .gradient_shap_layer import LayerGradientShap, NeuronGradientShap
from .guided import Deconvolution, GuidedBackprop, NeuronDeconvolution, NeuronGuidedBackprop
from .integrated_gradients import IntegratedGradients
from .integrated_gradients_layer import (
    InternalInfluence,
    LayerConductance,
    LayerIntegratedGradients,
    NeuronConductance,
    NeuronIntegratedGradients,
)
from .interpretable_input import (
    ImageMaskInput,
    InterpretableInput,
    ProductBaselines,
    TextTemplateInput,
    TextTokenInput,
)
from .kernel_shap import KernelShap
from .lime import Lime, LimeBase, get_exp_kernel_similarity_function
from .linear_models import Lasso, LinearRegression, Ridge
from .llm import LLMAttribution, LLMGradientAttribution
from .llm_remote import RemoteLLMAttribution, RemoteLLMProvider, VLLMProvider
from .llm_result import LLMAttributionResult
from .lrp import LRP, LayerLRP
from .noise_tunnel import NoiseTunnel
from .partition_shapley import PartitionShapley
from .shapley import ShapleyValues, ShapleyValueSampling
from .sklearn_models import SkLearnLasso, SkLearnLinearModel, SkLearnLinearRegression, SkLearnRidge
from .summarizer import (
    MSE,
    ClassSummarizer,
    CommonStats,
    Count,
    Max,
    Mean,
    Min,
    Stat,
    StatValue,
    StdDev,
    Sum,
    Summarizer,
    SummarizerSingleTensor,
    Var,
)
from .text import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)

__all__ = [
    "Attribution",
    "GradientAttribution",
    "PerturbationAttribution",
    "InternalAttribution",
    "LayerAttribution",
    "NeuronAttribution",
    "Saliency",
    "InputXGradient",
    "IntegratedGradients",
    "GradientShap",
    "NoiseTunnel",
    "Occlusion",
    "FeatureAblation",
    "FeaturePermutation",
    "ShapleyValueSampling",
    "ShapleyValues",
    "PartitionShapley",
    "KernelShap",
    "LimeBase",
    "Lime",
    "LinearRegression",
    "Ridge",
    "Lasso",
    "SkLearnLinearModel",
    "SkLearnLasso",
    "SkLearnRidge",
    "SkLearnLinearRegression",
    "get_exp_kernel_similarity_function",
    "DeepLift",
    "DeepLiftShap",
    "GuidedBackprop",
    "Deconvolution",
    "LRP",
    "LayerActivation",
    "LayerGradientXActivation",
    "LayerGradCam",
    "InternalInfluence",
    "LayerConductance",
    "LayerIntegratedGradients",
    "LayerGradientShap",
    "NeuronGradient",
    "NeuronIntegratedGradients",
    "NeuronGradientShap",
    "NeuronConductance",
    "LayerGradCamPlusPlus",
    "LayerXGradCam",
    "LayerHiResCam",
    "LayerCam",
    "LayerScoreCam",
    "LayerEigenCam",
    "LayerDeepLift",
    "LayerDeepLiftShap",
    "GuidedGradCam",
    "NeuronDeepLift",
    "NeuronDeepLiftShap",
    "NeuronGuidedBackprop",
    "NeuronDeconvolution",
    "LayerFeatureAblation",
    "LayerFeaturePermutation",
    "NeuronFeatureAblation",
    "LayerLRP",
    "InterpretableEmbeddingBase",
    "TokenReferenceBase",
    "configure_interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
    "Summarizer",
    "SummarizerSingleTensor",
    "ClassSummarizer",
    "Stat",
    "StatValue",
    "CommonStats",
    "Count",
    "Mean",
    "MSE",
    "Var",
    "StdDev",
    "Min",
    "Max",
    "Sum",
    "visualization",
    "InterpretableInput",
    "TextTemplateInput",
    "TextTokenInput",
    "ImageMaskInput",
    "ProductBaselines",
    "LLMAttribution",
    "LLMGradientAttribution",
    "LLMAttributionResult",
    "RemoteLLMAttribution",
    "RemoteLLMProvider",
    "VLLMProvider",
    "DataLoaderAttribution",
]
