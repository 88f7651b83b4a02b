"""The element-wise engine: element algebra over QQ(hyperparameters) for Adam-type rules and inner products."""
