"""Bert_SQUAD_Interpret: the notebook loads a BERT fine-tuned on SQuAD from a local path (the model and its
tokenizer). Here the same classes offline (``_bert``): random weights, 12 layers as in bert-base (the per-layer
plots are labelled 1..12), width 48, and a WordPiece vocabulary trained with ``tokenizers``. The answer the
random model predicts is meaningless; the attributions of the notebook's question and text are compared."""

REPLACE = {
    2: '''# stands in for from_pretrained(<a bert-base fine-tuned on SQuAD>): the same classes, random weights, a small
# config and a WordPiece vocabulary trained offline (scripts/captum_tutorial_specs/_bert.py)
from captum_tutorial_specs._bert import squad_model, squad_tokenizer

model = squad_model()
model.to(device)
model.eval()
model.zero_grad()

tokenizer = squad_tokenizer()
''',
}
