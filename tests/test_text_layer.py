"""Text models: Layer IG on embeddings with integer tokens, output selection, interpretable embeddings."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego.attr.text import SelectOutput
from intellego.errors import IntellegoError

D = torch.float64


class TokenModel(nn.Module):
    def __init__(self, out="tensor"):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(30, 6)
        self.rnn = nn.GRU(6, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)
        self.out = out

    def forward(self, ids, mask):
        h, _ = self.rnn(self.embedding(ids) * mask.unsqueeze(-1))
        logits = self.fc(h[:, -1])
        if self.out == "tuple":
            return logits, h
        if self.out == "dict":
            return {"logits": logits, "hidden": h}
        return logits


def _ids():
    torch.manual_seed(1)
    ids = torch.randint(1, 30, (3, 7))
    mask = torch.ones(3, 7, dtype=D)
    mask[0, 5:] = 0
    ref = ia.TokenReferenceBase(0).generate_reference(7, "cpu").unsqueeze(0).expand(3, 7)
    return ids, mask, ref


def test_layer_ig_on_embedding_with_token_ids_matches_captum_and_is_complete():
    model = TokenModel().double()
    ids, mask, ref = _ids()
    ours, delta = ia.LayerIntegratedGradients(model, model.embedding).attribute(
        ids, ref, target=2, additional_forward_args=mask, n_steps=30, return_convergence_delta=True)
    theirs = ca.LayerIntegratedGradients(model, model.embedding).attribute(
        ids, ref, target=2, additional_forward_args=mask, n_steps=30)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    assert ours.shape == (3, 7, 6)
    assert delta.abs().max() < 1e-3
    assert ours[0, 5:].abs().max() == 0  # masked tokens get nothing


@pytest.mark.parametrize("kind,key", [("tuple", 0), ("dict", "logits")])
def test_output_selector_for_tuple_and_dict_outputs(kind, key):
    ids, mask, ref = _ids()
    plain = TokenModel().double()
    model = TokenModel(kind).double()
    model.load_state_dict(plain.state_dict())
    expected = ia.LayerIntegratedGradients(plain, plain.embedding).attribute(
        ids, ref, target=1, additional_forward_args=mask, n_steps=10)
    got = ia.LayerIntegratedGradients(SelectOutput(model, key), model.embedding).attribute(
        ids, ref, target=1, additional_forward_args=mask, n_steps=10)
    torch.testing.assert_close(got, expected)
    with pytest.raises(IntellegoError, match="cannot select"):
        ia.LayerIntegratedGradients(SelectOutput(model, "nope"), model.embedding).attribute(
            ids, ref, target=1, additional_forward_args=mask, n_steps=2)


def test_interpretable_embedding_round_trip_matches_layer_ig():
    model = TokenModel().double()
    ids, mask, ref = _ids()
    original = model.embedding
    lig = ia.LayerIntegratedGradients(model, model.embedding).attribute(ids, ref, target=0,
                                                                        additional_forward_args=mask, n_steps=12)
    with pytest.warns(UserWarning):
        emb = ia.configure_interpretable_embedding_layer(model, "embedding")
    assert isinstance(model.embedding, ia.InterpretableEmbeddingBase)
    x, b = emb.indices_to_embeddings(ids), emb.indices_to_embeddings(ref)
    ig = ia.IntegratedGradients(model).attribute(x, b, target=0, additional_forward_args=mask, n_steps=12)
    ia.remove_interpretable_embedding_layer(model, emb)
    assert model.embedding is original
    torch.testing.assert_close(ig, lig)
    with pytest.raises(IntellegoError, match="no submodule"):
        ia.configure_interpretable_embedding_layer(model, "missing")


def test_token_reference_base():
    ref = ia.TokenReferenceBase(reference_token_idx=3).generate_reference(4, device=torch.device("cpu"))
    assert ref.dtype == torch.long and ref.tolist() == [3, 3, 3, 3]


def test_shared_embedding_runs_twice():
    """A tied embedding applied to a question and a passage: one attribution per call, complete together."""
    torch.manual_seed(0)

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(20, 4)
            self.fc = nn.Linear(8, 2)

        def forward(self, q, p):
            return self.fc(torch.cat([self.embedding(q).mean(1), torch.tanh(self.embedding(p)).sum(1)], 1))

    model = Pair().double()
    q, p = torch.randint(1, 20, (2, 3)), torch.randint(1, 20, (2, 5))
    (aq, ap), delta = ia.LayerIntegratedGradients(model, model.embedding).attribute(
        (q, p), target=1, n_steps=40, return_convergence_delta=True)
    assert aq.shape == (2, 3, 4) and ap.shape == (2, 5, 4)
    assert delta.abs().max() < 1e-4
