"""Distributed_Attribution: on CPU (no CUDA here), two gloo processes on this machine instead of four GPUs; the
Titanic table is a generated CSV with the file's columns (the model's weights ship with the tutorial). The ranks
print their results from their own processes, so those numbers are not recorded; cell 6 (one process) is."""

# one intra-op thread: the ranks are forked, and a child forked after the parent used torch's OpenMP pool hangs in
# its first parallel op (seen here: both ranks stuck in the model's first Linear)
PRELUDE = '''import torch
torch.set_num_threads(1)
'''

_TITANIC_CSV = '''# stands in for titanic3.csv (downloaded by hand in the notebook): 1309 generated passengers
rng = np.random.default_rng(0)
n = 1309
pd.DataFrame({
    "pclass": rng.integers(1, 4, n), "survived": rng.integers(0, 2, n), "name": "x",
    "sex": rng.choice(["female", "male"], n), "age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0.2, 80, n)),
    "sibsp": rng.integers(0, 6, n), "parch": rng.integers(0, 5, n), "ticket": "t",
    "fare": rng.gamma(1.5, 20.0, n), "cabin": "", "embarked": rng.choice(["C", "Q", "S"], n), "boat": "",
    "body": np.nan, "home.dest": ""}).to_csv("titanic3.csv", index=False)
dataset_path = "titanic3.csv"
'''

_CPU = '''USE_CUDA = False  # the notebook: True, one GPU per rank; here CPU processes
WORLD_SIZE = 2
'''

# the notebook's load_dataset, with the table made numeric before torch.from_numpy: pandas 2's get_dummies gives
# bool columns, so the frame's array is of objects (the notebook was written for pandas 1's uint8 dummies)
_LOAD = '''def load_dataset():
    table = pd.read_csv(dataset_path)
    table = pd.concat([table, pd.get_dummies(table["sex"]), pd.get_dummies(table["embarked"], prefix="embark"),
                       pd.get_dummies(table["pclass"], prefix="class")], axis=1)
    for column in ("age", "fare"):
        table[column] = table[column].fillna(table[column].mean())
    table = table.drop(["name", "ticket", "cabin", "boat", "body", "home.dest", "sex", "embarked", "pclass"], axis=1)
    np.random.seed(131254)
    labels = table["survived"].to_numpy()
    features = table.drop(["survived"], axis=1).to_numpy(dtype=float)
    train_rows = np.random.choice(len(labels), int(0.7 * len(labels)), replace=False)
    test_rows = list(set(range(len(labels))) - set(train_rows))
    return TensorDataset(torch.from_numpy(features[test_rows]).type(torch.FloatTensor))
'''

REPLACE = {2: _CPU, 9: _TITANIC_CSV, 11: _LOAD, 12: _CPU}
SKIP = {7}  # nn.DataParallel over CUDA devices: there is no GPU here
