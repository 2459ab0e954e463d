"""Bert_SQUAD_Interpret2: as Bert_SQUAD_Interpret, the notebook loads a BERT fine-tuned on SQuAD from a local path;
here the same classes offline (``_bert``: random weights, 12 layers and 12 heads as in bert-base, width 48, a
WordPiece vocabulary trained with ``tokenizers``), returning its attention matrices as the notebook asks, and its
encoder layers returning ``(hidden states, attention probabilities)`` as transformers 4's did (the notebook's
LayerConductance on a layer attributes to both; transformers 5's layers return the hidden states only, and cell 20
fails in both libraries without this). Cell 28 writes bert-base's head size (64) and width (768) as numbers; here
they are read from the model's config."""

REPLACE = {
    2: '''# stands in for from_pretrained(<a bert-base fine-tuned on SQuAD>, output_attentions=True): the same classes,
# random weights, a small config and a WordPiece vocabulary trained offline (scripts/captum_tutorial_specs/_bert.py)
from captum_tutorial_specs._bert import layers_return_attentions, squad_model, squad_tokenizer

# the encoder layers return (hidden states, attention probabilities), as in transformers 4, which the notebook uses
model = layers_return_attentions(squad_model(output_attentions=True, attn_implementation="eager"))
model.to(device)
model.eval()
model.zero_grad()

tokenizer = squad_tokenizer()
''',
    28: lambda cell: cell.replace("head_size = 64", "head_size = model.config.hidden_size // num_heads").replace(
        "all_head_size = 768", "all_head_size = model.config.hidden_size"),
}
