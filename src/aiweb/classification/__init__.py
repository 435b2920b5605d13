"""Text classification: training (TF-IDF + LogisticRegression), evaluation, serving."""
