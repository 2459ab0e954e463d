"""House_Prices_Regression_Interpret: fetch_california_housing downloads; here a generated table with the data
set's 8 columns, names and value ranges (the model's weights ship as models/california_model.pt)."""

REPLACE = {
    1: '''# stands in for fetch_california_housing(): 20640 generated block groups with its columns and ranges
from sklearn.utils import Bunch
rng = np.random.default_rng(0)
rows = 20640
occupancy = np.clip(rng.lognormal(1.05, 0.3, rows), 0.7, 1243.0)
rooms = np.clip(rng.lognormal(1.65, 0.25, rows), 0.85, 141.0)
income = np.clip(rng.lognormal(1.25, 0.45, rows), 0.5, 15.0)
california = Bunch(
    data=np.column_stack([
        income,                                                      # MedInc, tens of thousands of dollars
        rng.integers(1, 53, rows).astype(float),                     # HouseAge, years
        rooms,                                                       # AveRooms
        np.clip(rooms * rng.normal(0.2, 0.03, rows), 0.33, 34.0),    # AveBedrms
        np.clip(rng.lognormal(7.0, 0.75, rows), 3.0, 35682.0).round(),  # Population
        occupancy,                                                   # AveOccup
        rng.uniform(32.54, 41.95, rows),                             # Latitude
        rng.uniform(-124.35, -114.31, rows)]),                       # Longitude
    target=np.clip(0.4 * income + rng.normal(0.3, 0.5, rows), 0.15, 5.0),  # MedHouseVal, $100,000
    feature_names=["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude",
                   "Longitude"])
feature_names = california.feature_names
n = 600
X = california.data[:n]
y = california.target[:n]
''',
}
