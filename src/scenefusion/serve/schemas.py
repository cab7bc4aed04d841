"""The API's response shapes: what `POST /predict`, `GET /health` answer, and the OpenAPI
schema at /docs (kept apart from the app so the routes read on their own)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClassProbability(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class")
    probability: float


class ModalityResult(BaseModel):
    model: str = Field(description="The saved model that gave these probabilities.")
    probabilities: list[ClassProbability] = Field(description="Every class, most likely first.")


class SaliencyMap(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class", description="The class explained.")
    probability: float = Field(description="The image model's probability of it.")
    grid: list[list[float]] = Field(description="Rows x columns over the backbone's input "
                                                "crop; higher = more evidence for the class.")
    method: str = Field(description="Grad-CAM or occlusion sensitivity (see scenefusion.explain).")
    model: str
    crop: float = Field(description="Share of the picture's shorter side the map covers (the "
                                    "backbone's centre crop).")


class MemberContribution(BaseModel):
    weight: float
    probability: float
    contribution: float


class Second(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    second: int
    class_: str | None = Field(None, alias="class")
    probability: float | None = None
    modalities: str | None = None
    warning: str = ""
    error: str = ""


class Prediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class", description="The predicted class (a video: of most "
                                                   "seconds).")
    probability: float
    top_k: list[ClassProbability] = Field(description="A video: mean over its seconds.")
    per_modality: dict[str, ModalityResult] = Field(
        description="Probabilities by input: 'image' (image-only model), 'audio' (audio-only "
                    "model), 'fused' (both); only those the run saved a model for.")
    modalities: list[str] = Field(description="Inputs the answering model used.")
    model: str
    members: dict[str, MemberContribution] = Field(
        default_factory=dict, description="A late / hybrid model: each member's weight, its "
        "own probability of the predicted class and their product (which modality decided).")
    warnings: list[str]
    timeline: list[Second] | None = Field(None, description="A video: one entry per second.")
    saliency: SaliencyMap | None = Field(None, description="With explain=true and an image: "
                                         "where in the picture the image model found the "
                                         "answer.")
    decisive_seconds: dict[str, list[tuple[float, float]]] | None = Field(
        None, description="A video, or a sound longer than two of the model's windows: the "
        "seconds (window starts) whose probability of the answer is highest ('toward') and "
        "lowest ('against'), as [second, probability].")
    audio_window_seconds: float | None = Field(
        None, description="A long sound: the length of the windows decisive_seconds starts.")


class Health(BaseModel):
    status: str
    model: str
