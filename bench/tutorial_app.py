"""The tutorial pattern, a baseline for ``bench.serving``: load a pickled pipeline at import
and call ``predict`` per request in a plain ``def`` route (run by uvicorn's thread pool).

Run as ``TUTORIAL_MODEL_PATH=model.joblib python -m uvicorn bench.tutorial_app:app``.
"""

import os

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(os.environ["TUTORIAL_MODEL_PATH"])
app = FastAPI()


class Item(BaseModel):
    text: str


@app.post("/predict")
def predict(item: Item) -> dict[str, str]:
    return {"label": str(model.predict([item.text])[0])}
