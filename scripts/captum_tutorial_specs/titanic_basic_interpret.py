"""Titanic_Basic_Interpret: the passenger table is downloaded by hand in the notebook; here a generated table
with the same columns and value ranges (the model's weights ship with the tutorial)."""

REPLACE = {
    2: '''# stands in for pd.read_csv("titanic3.csv"): 1309 generated passengers with the file's columns
rng = np.random.default_rng(0)
n = 1309
titanic_data = pd.DataFrame({
    "pclass": rng.integers(1, 4, n), "survived": rng.integers(0, 2, n), "name": "x",
    "sex": rng.choice(["female", "male"], n), "age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0.2, 80, n)),
    "sibsp": rng.integers(0, 6, n), "parch": rng.integers(0, 5, n), "ticket": "t",
    "fare": rng.gamma(1.5, 20.0, n), "cabin": "", "embarked": rng.choice(["C", "Q", "S"], n), "boat": "",
    "body": np.nan, "home.dest": ""})
''',
}
