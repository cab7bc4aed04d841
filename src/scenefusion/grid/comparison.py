"""The comparison grid: one row per (modality, features, model, fusion method), each fitted on
train, scored for selection and on test.

Selection (which unimodal model feeds late fusion, which early model feeds hybrid fusion,
which row is saved as best/) never looks at the test split. It uses validation accuracy when
the validation split holds at least MIN_VAL_GROUPS held-out groups (recordings, source videos)
of every class; with fewer it would pick whatever fits those one or two recordings, so it uses
grouped cross-validation over the training groups instead (out-of-fold predictions, which also
feed the learning combiners and the calibration check). Independent fits go to a runner in
batches (see runners.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.frozen import FrozenEstimator

from ..data import Split
from ..data.folds import row_groups, training_folds
from ..features.extract import DatasetFeatures
from ..models import EarlyFusion, HybridFusion, LateFusion, capabilities
from ..models.modalities import refittable
from ..models.out_of_fold import remember_out_of_fold, rows_of, share_out_of_fold
from ..models.pooling import guard_folds
from ..plan import GridPlan
from .jobs import FitJob, FoldJob, GridData, Inputs, fit_and_score, fold_input, run_part
from .rows import Candidate, RunSpec, pick, val_scores

#: (stage description, done, total) -> None; the CLI turns it into progress bars.
Progress = Callable[[str, int, int], None]

#: Held-out validation groups per class below which selection, tuning, learning combiners and
#: calibration use grouped cross-validation over the training groups instead.
MIN_VAL_GROUPS = 5
#: Folds over training groups for out-of-fold combiners: each fold refits every member, and
#: 3 folds cost the demo 2 s of training where 5 cost 4 s.
OOF_FOLDS = 3

class ComparisonGrid:
    """Fits every model of the grid on train, scores it on val (for selection) and keeps its
    test probabilities. Late and hybrid fusion reuse the best fitted unimodal members.

    Fits that do not depend on each other go to the runner as one batch (unimodal models;
    then per backbone early fusion); without a runner they run here one after the other,
    with per-epoch progress. Late and hybrid fusion run here: their members are fitted and
    their members' out-of-fold probabilities known, so only the combiners are fitted."""

    def __init__(self, plan: GridPlan, features: DatasetFeatures, split: Split,
                 progress: Progress | None = None, runner: Any = None,
                 on_candidate: Callable[[Candidate], None] | None = None) -> None:
        self.plan = plan
        self.features = features
        # folds hold out what the split holds out: source groups, or single rows (frame split)
        self.by_row = split.strategy == "frame"
        self.data = GridData(features.audio, features.images, features.dataset.labels,
                             row_groups(features.dataset.groups, split.strategy),
                             split.train, split.val, split.test)
        self.y = self.data.y
        self.has_val = len(split.val) > 0
        self.candidates: list[Candidate] = []
        self.notes: list[str] = []
        thin = self._thin_classes(features.dataset.classes)
        self.stack_on = self._combiner_source(plan.combiner_on, thin)
        self.cv_folds = self._selection_folds(plan.select_on, thin)
        self.selection = "val" if self.cv_folds is None else "cv"
        if self.selection == "val" and not self.has_val:
            self.notes.append("no validation set: selection falls back to the first model listed")
        self.progress = progress
        self.runner = runner
        self.on_candidate = on_candidate  # told of each fitted candidate, in job order
        self.n_done = 0
        self.modalities = tuple(features.dataset.modalities)
        self.fuses = len(self.modalities) == 2
        if not self.fuses:
            self.notes.append(
                f"one-modality data set ({self.modalities[0]} only): only the "
                f"{self.modalities[0]}-only rows were run (fusion needs an image and a sound "
                f"per item)")
        per_backbone = (len(plan.early_models) * len(plan.early_audio) + len(plan.late)
                        + len(plan.hybrid)) if self.fuses else 0
        per_backbone += len(plan.image_models) if "image" in self.modalities else 0
        n_backbones = len(plan.backbones) if "image" in self.modalities else 0
        self.total = (n_backbones * per_backbone
                      + (len(plan.audio_models) if "audio" in self.modalities else 0))

    def _thin_classes(self, classes: list[str]) -> list[str]:
        """Classes with fewer than MIN_VAL_GROUPS validation groups that are not also training
        groups: choosing on them would choose whatever fits those one or two recordings."""
        d = self.data
        if not self.has_val:
            return list(classes)
        held_out = set(d.groups[d.val].tolist()) - set(d.groups[d.train].tolist())
        per_class = {k: {g for g, lab in zip(d.groups[d.val], d.y[d.val], strict=True)
                         if lab == k and g in held_out} for k in range(len(classes))}
        return [classes[k] for k, found in per_class.items() if len(found) < MIN_VAL_GROUPS]

    def _combiner_source(self, choice: str, thin: list[str]) -> str:
        """Where late/hybrid combiners learn: validation predictions of the fitted members
        when validation is not thin; otherwise out-of-fold predictions over the training
        groups, since weights learned from one recording per class learn that recording
        (validation-chosen stacking fell far below image-only on real recordings)."""
        if not self.has_val or choice == "oof":
            return "oof"
        if choice == "val" or not thin:
            return "val"
        unit = "rows" if self.by_row else "groups"  # a frame-level split holds out rows
        self.notes.append(
            f"late/hybrid combiners learned out-of-fold over training {unit}: the validation "
            f"split holds fewer than {MIN_VAL_GROUPS} held-out {unit} of {', '.join(thin)}")
        return "oof"

    def _selection_folds(self, choice: str, thin: list[str]
                         ) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
        """Grouped folds over the training rows when selection uses cross-validation (None:
        selection uses the validation split)."""
        if choice == "val" and self.has_val:
            return None
        if choice == "auto" and self.has_val and not thin:
            return None
        d = self.data
        try:
            folds = training_folds(d.y[d.train], d.groups[d.train], OOF_FOLDS, self.plan.seed,
                                   self.features.dataset.classes)
        except ValueError as err:
            self.notes.append(f"selection by cross-validation impossible ({err}): it "
                              f"uses the validation split")
            return None
        why = ("models.select_on is cv" if choice == "cv" else
               f"the validation split holds fewer than {MIN_VAL_GROUPS} held-out "
               f"{'rows' if self.by_row else 'groups'} of {', '.join(thin)}" if self.has_val
               else "there is no validation split")
        how = ("stratified {}-fold cross-validation over the training rows (frame-level split)"
               if self.by_row else "grouped {}-fold cross-validation over the training groups")
        self.notes.append(f"models, tuned hyper-parameters, best/ and calibration chosen by "
                          f"{how.format(len(folds))}: {why}")
        self.notes += folds.notes
        return folds.splits

    def fit_batch(self, jobs: list[FitJob], here: bool = False) -> list[Candidate]:
        """Fit independent jobs (in the runner when there is one, unless ``here``);
        candidates in job order."""
        if self.runner is not None and len(jobs) > 1 and not here:
            fitted = self._fit_in_parts(jobs)
            for job, candidate in zip(jobs, fitted, strict=True):
                self._remember_folds(job, candidate)
                if self.on_candidate is not None:
                    self.on_candidate(candidate)
        else:
            fitted = [self._fit_here(job) for job in jobs]
        self.candidates += fitted
        return fitted

    def _fit_in_parts(self, jobs: list[FitJob]) -> list[Candidate]:
        """The runner fits every row's final model and each of its folds as separate parts
        (the final fits first: they are the longest), then each row's out-of-fold
        probabilities are put together from its folds."""
        folds = [FoldJob(job, k) for job in jobs for k in range(len(job.cv_folds or ()))]

        def done(part: FitJob | FoldJob) -> None:
            if isinstance(part, FitJob):
                self._report(part.spec)

        results = self.runner.map(run_part, [*jobs, *folds], self.data, on_done=done)
        fitted: list[Candidate] = results[:len(jobs)]
        by_job = {id(job): c for job, c in zip(jobs, fitted, strict=True)}
        y = self.data.y[self.data.train]
        for part, proba in zip(folds, results[len(jobs):], strict=True):
            candidate = by_job[id(part.job)]
            if candidate.oof_proba is None:
                candidate.oof_proba = np.zeros((len(y), proba.shape[1]))
            candidate.oof_proba[part.job.cv_folds[part.fold][1]] = proba
        for c in fitted:
            if c.oof_proba is not None:
                c.cv_accuracy, c.cv_log_loss = val_scores(c.oof_proba, c.model.classes_, y)
        return fitted

    def _remember_folds(self, job: FitJob, candidate: Candidate) -> None:
        """Out-of-fold probabilities a runner computed elsewhere, made known here: fusion over
        this row then takes them instead of refitting the member on the same folds."""
        if candidate.oof_proba is None or job.cv_folds is None:
            return
        d = self.data
        model = candidate.model
        rows = rows_of(d.inputs(job.inputs), d.train)
        remember_out_of_fold(refittable(model), fold_input(model, rows), d.y[d.train],
                             list(job.cv_folds), model.classes_, candidate.oof_proba)

    def _fit_here(self, job: FitJob) -> Candidate:
        epoch_progress = None
        if self.progress:
            done = self.n_done

            def epoch_progress(epoch: int, train_loss: float, val_loss: float | None) -> None:
                self.progress(f"training: {job.spec.name} (epoch {epoch})", done, self.total)

        candidate = fit_and_score(job, self.data, epoch_progress)
        self._report(job.spec)
        if self.on_candidate is not None:
            self.on_candidate(candidate)
        return candidate

    def _report(self, spec: RunSpec) -> None:
        self.n_done += 1
        if self.progress:
            self.progress(f"training: {spec.name}", self.n_done, self.total)

    def run(self) -> list[Candidate]:
        """Every row: the unimodal models, then per backbone early, late and hybrid fusion.
        Out-of-fold member probabilities are computed once per (member, folds) and shared by
        the rows' selection scores, every learning combiner and the guard."""
        with share_out_of_fold():
            return self._run()

    def _run(self) -> list[Candidate]:
        plan = self.plan
        unimodal = []
        if "audio" in self.modalities:
            unimodal += [FitJob(RunSpec("audio", audio_feature=plan.audio_id, model=m.id),
                                m.fresh(), Inputs.audio(), self.cv_folds)
                         for m in plan.audio_models]
        if "image" in self.modalities:
            unimodal += [FitJob(RunSpec("image", backbone=b, model=m.id), m.fresh(),
                                Inputs.image(b), self.cv_folds)
                         for b in plan.backbones for m in plan.image_models]
        self.fit_batch(unimodal)
        if not self.fuses:
            return self.candidates
        for b in plan.backbones:
            self._fusion(b)
        return self.candidates

    def _audio_encoder(self) -> Candidate | None:
        """The audio model whose learned embedding early fusion uses: the best on validation
        among the audio models that declare the embedding capability."""
        pool = [c for c in self.candidates
                if c.spec.family == "audio" and capabilities(c.model).embedding]
        return max(pool, key=lambda c: c.val_rank) if pool else None

    def _fusion(self, b: str) -> None:
        plan = self.plan
        both = Inputs.both(b)
        best_img, best_aud = pick(self.candidates, "image", b), pick(self.candidates, "audio")
        members = {"image": FrozenEstimator(best_img.model),
                   "audio": FrozenEstimator(best_aud.model)}
        encoder = self._audio_encoder()
        early_jobs: list[FitJob] = []
        for side in plan.early_audio:
            if side.learned and encoder is None:
                self.notes.append("early fusion on a learned audio embedding skipped: no audio "
                                  "model with an embedding (e.g. 'lstm') in models.audio")
                continue
            frozen = FrozenEstimator(encoder.model) if side.learned else None
            for m in plan.early_models:
                model = EarlyFusion(m.fresh(), pca_image=plan.early_pca_image,
                                    random_state=plan.seed, audio_encoder=frozen)
                spec = RunSpec("early", backbone=b, audio_feature=plan.audio_id, model=m.id,
                               early_audio=side.id)
                early_jobs.append(FitJob(spec, model, both, self.cv_folds))
        early_fitted = self.fit_batch(early_jobs)
        pair = (best_img.spec, best_aud.spec)
        late = self.fit_batch([
            FitJob(RunSpec("late", backbone=b, audio_feature=plan.audio_id, method=c.id,
                           members=pair),
                   LateFusion(members, combiner=c.prototype, stack_on=self.stack_on,
                              cv=OOF_FOLDS, random_state=plan.seed), both)
            for c in plan.late], here=True)  # members' folds are known here: combiner fits
        for c in late:
            self._score_fused(c, {"image": best_img, "audio": best_aud})
        if plan.hybrid and early_fitted:
            best_early = max(early_fitted, key=lambda c: c.val_rank)
            hybrid = self.fit_batch([
                FitJob(RunSpec("hybrid", backbone=b, audio_feature=plan.audio_id, method=c.id,
                               members=(*pair, best_early.spec)),
                       HybridFusion(FrozenEstimator(best_early.model), members,
                                    combiner=c.prototype, stack_on=self.stack_on, cv=OOF_FOLDS,
                                    random_state=plan.seed), both)
                for c in plan.hybrid], here=True)
            for c in hybrid:
                self._score_fused(c, {"early": best_early, "image": best_img, "audio": best_aud})

    def _score_fused(self, fused: Candidate, members: dict[str, Candidate]) -> None:
        """A fused row's grouped cross-validation estimate (where selection uses one), from its
        members' out-of-fold probabilities: the combiner is refitted without each fold's groups
        and scored on them, so a learning combiner is not scored on what it learnt from."""
        if self.cv_folds is None or any(m.oof_proba is None for m in members.values()):
            return
        model, y = fused.model, self.data.y[self.data.train]
        names = model.member_names_
        oof = {n: members[n].oof_proba for n in names}
        groups = self.data.groups[self.data.train]
        P = np.zeros((len(y), len(model.classes_)))
        for fit_rows, held_out in self.cv_folds:
            combiner = model.fresh_combiner()
            # the guard's own folds, inside this fold's fitting rows
            folds, thin = guard_folds(y[fit_rows], groups[fit_rows], OOF_FOLDS, self.plan.seed)
            combiner.learn({n: p[fit_rows] for n, p in oof.items()}, y[fit_rows],
                           model.classes_, folds=folds, thin=thin)
            P[held_out] = combiner.answer({n: p[held_out] for n, p in oof.items()}, True)
        fused.oof_proba = P
        fused.cv_accuracy, fused.cv_log_loss = val_scores(P, model.classes_, y)
